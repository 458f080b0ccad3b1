package cli

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/verify"
)

// verifyEntrypoint adapts internal/verify to the resolver's Verifier.
func verifyEntrypoint(ctx context.Context, img v1.Image, wantArch string, o *image.Override) (*image.Entrypoint, error) {
	opts := []verify.Option{verify.WithArch(wantArch)}
	if o != nil {
		opts = append(opts, verify.WithCommand(o.Command, o.Args))
		if o.PathSet {
			opts = append(opts, verify.WithEnv([]string{"PATH=" + o.Path}))
		}
	}
	return verify.Entrypoint(ctx, img, opts...)
}
