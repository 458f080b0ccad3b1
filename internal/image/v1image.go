package image

import (
	"bytes"
	"context"
	"io"
	"sync"

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
	slot   *streamSlot
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
	if err := l.img.slot.acquire(l.img.ctx); err != nil {
		return nil, err
	}
	rc, err := l.img.src.BlobStream(l.img.ctx, l.img.repo, l.desc.Digest.String())
	if err != nil {
		l.img.slot.release()
		return nil, err
	}
	return &slotBody{ReadCloser: rc, slot: l.img.slot}, nil
}

// streamSlot is the one concurrency slot (Resolver.sem) a verification
// holds while it has a layer stream open: taken when its first stream
// opens, given back when its last open stream closes, and in any case when
// the verification ends (done). A verification that waits for a layer
// another one is streaming (verify.Cache), or works on what it has read,
// holds none, so it never keeps the registry requests of other images
// waiting; and it never holds two (a second stream of the same
// verification, a reread, shares the slot), so verifications cannot wait
// on each other for slots.
type streamSlot struct {
	r    *Resolver
	take sync.Mutex // serializes acquire
	mu   sync.Mutex
	open int
	held bool
}

func (s *streamSlot) acquire(ctx context.Context) error {
	s.take.Lock()
	defer s.take.Unlock()
	s.mu.Lock()
	if s.held {
		s.open++
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	select {
	case s.r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.held, s.open = true, 1
	s.mu.Unlock()
	return nil
}

// release ends one open stream; the last gives the slot back.
func (s *streamSlot) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open > 0 {
		s.open--
	}
	if s.open == 0 && s.held {
		s.held = false
		<-s.r.sem
	}
}

// done gives the slot back whatever streams the verification left open
// (they close with its context).
func (s *streamSlot) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = 0
	if s.held {
		s.held = false
		<-s.r.sem
	}
}

// slotBody is a layer stream that releases its slot once, when closed
// (verify closes a stream from its context's AfterFunc too).
type slotBody struct {
	io.ReadCloser
	slot *streamSlot
	once sync.Once
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.slot.release)
	return err
}

// toV1Image presents a manifest read from src; origin names where its
// layer bytes come from (see Resolver.origin and LayerOrigin). Its layer
// streams take slot (see streamSlot).
func toV1Image(ctx context.Context, slot *streamSlot, src source, repo name.Repository, raw []byte, mt string, config []byte, origin string) (v1.Image, error) {
	img, err := partial.CompressedToImage(&sourceImage{ctx: ctx, slot: slot, src: src, repo: repo, raw: raw, mt: types.MediaType(mt), config: config})
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
