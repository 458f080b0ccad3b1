package image

import (
	"archive/tar"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type v1Image = v1.Image

// readAppArch finds /app in the top layer and maps its e_machine; enough to
// exercise the resolver's verify plumbing without internal/verify.
func readAppArch(img v1.Image, want string) (*Entrypoint, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for i := len(layers) - 1; i >= 0; i-- {
		rc, err := layers[i].Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			if h.Name != "app" {
				continue
			}
			hdr := make([]byte, 20)
			if _, err := io.ReadFull(tr, hdr); err != nil {
				rc.Close()
				return nil, err
			}
			rc.Close()
			arch := map[uint16]string{62: "amd64", 183: "arm64", 40: "arm", 3: "386"}[uint16(hdr[18])|uint16(hdr[19])<<8]
			v := VerdictOK
			if arch != want {
				v = VerdictWrongArch
			}
			return &Entrypoint{Path: "/app", Format: "elf", Arch: arch, Verdict: v}, nil
		}
		rc.Close()
	}
	return &Entrypoint{Verdict: VerdictNotFound}, nil
}
