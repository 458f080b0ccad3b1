package image

import (
	"bytes"
	"context"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// sourceImage presents one image manifest of a source as a
// go-containerregistry v1.Image whose layers stream from the source on
// demand, so a verifier reads only the layers (and bytes) it needs.
type sourceImage struct {
	ctx    context.Context
	src    source
	repo   name.Repository
	raw    []byte
	mt     types.MediaType
	config []byte
}

func (i *sourceImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *sourceImage) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *sourceImage) RawManifest() ([]byte, error)        { return i.raw, nil }

func (i *sourceImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(i.raw))
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &sourceLayer{img: i, desc: l}, nil
		}
	}
	if m.Config.Digest == h {
		return &sourceLayer{img: i, desc: m.Config}, nil
	}
	return nil, io.ErrUnexpectedEOF
}

type sourceLayer struct {
	img  *sourceImage
	desc v1.Descriptor
}

func (l *sourceLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *sourceLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *sourceLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *sourceLayer) Compressed() (io.ReadCloser, error) {
	return l.img.src.BlobStream(l.img.ctx, l.img.repo, l.desc.Digest.String())
}

// toV1Image presents a manifest read from src; origin names where its
// layer bytes come from (see Resolver.origin and LayerOrigin).
func toV1Image(ctx context.Context, src source, repo name.Repository, raw []byte, mt string, config []byte, origin string) (v1.Image, error) {
	img, err := partial.CompressedToImage(&sourceImage{ctx: ctx, src: src, repo: repo, raw: raw, mt: types.MediaType(mt), config: config})
	if err != nil {
		return nil, err
	}
	return originImage{Image: img, origin: origin}, nil
}

// originImage is an image that says where its layers stream from.
type originImage struct {
	v1.Image
	origin string
}

// LayerOrigin names where the layer bytes of an image the Resolver hands
// to its Verifier come from: "registry HOST:PORT" or "oci-layout DIR"; ""
// for any other image. Layers are streamed and never checked against their
// digests, so what was read from a layer may answer for another image's
// layer of the same digest only within one origin.
func LayerOrigin(img v1.Image) string {
	if o, ok := img.(originImage); ok {
		return o.origin
	}
	return ""
}
