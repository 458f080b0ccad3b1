package verify

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/image"
)

// Verifier is Entrypoint as the resolver's image.Verifier: the pod's
// command, args and PATH (image.Override) decide which program is checked.
// Each call reads its layers anew; Cache.Verifier shares them over a run.
func Verifier(ctx context.Context, img v1.Image, wantArch string, o *image.Override) (*image.Entrypoint, error) {
	return Entrypoint(ctx, img, verifierOptions(wantArch, o)...)
}

func verifierOptions(wantArch string, o *image.Override) []Option {
	opts := []Option{WithArch(wantArch)}
	if o != nil {
		opts = append(opts, WithCommand(o.Command, o.Args))
		if o.PathSet {
			opts = append(opts, WithEnv([]string{"PATH=" + o.Path}))
		}
	}
	return opts
}
