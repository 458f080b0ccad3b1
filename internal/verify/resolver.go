package verify

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/image"
)

// Verifier is Entrypoint as the resolver's image.Verifier: the pod's
// command, args and PATH (image.Override) decide which program is checked.
func Verifier(ctx context.Context, img v1.Image, wantArch string, o *image.Override) (*image.Entrypoint, error) {
	opts := []Option{WithArch(wantArch)}
	if o != nil {
		opts = append(opts, WithCommand(o.Command, o.Args))
		if o.PathSet {
			opts = append(opts, WithEnv([]string{"PATH=" + o.Path}))
		}
	}
	return Entrypoint(ctx, img, opts...)
}
