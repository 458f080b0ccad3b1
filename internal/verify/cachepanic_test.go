package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/testimage"
)

// A panic while a verification reads a layer for the run-wide Cache is a
// bug reached through one image's bytes; the resolver makes it that image's
// error (image.recovered). The layers below fake it: a real registry cannot
// make archfit's code panic, so these readers do it themselves.

// faultLayer is a plain-tar layer under the digest of good; its stream
// panics on open (panicOpen) or after the first n bytes.
type faultLayer struct {
	good      plainLayer
	panicOpen bool
	n         int
}

func (l faultLayer) Digest() (v1.Hash, error)             { return l.good.Digest() }
func (l faultLayer) DiffID() (v1.Hash, error)             { return l.good.Digest() }
func (l faultLayer) Size() (int64, error)                 { return int64(len(l.good)), nil }
func (l faultLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
func (l faultLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l faultLayer) Compressed() (io.ReadCloser, error) {
	if l.panicOpen {
		panic("fault injected: opening the layer")
	}
	return io.NopCloser(&panicReader{r: bytes.NewReader(l.good[:l.n])}), nil
}

type panicReader struct{ r io.Reader }

func (p *panicReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == io.EOF {
		panic("fault injected: reading the layer")
	}
	return n, err
}

// panicLayerImage is an amd64 image running /app, the last of many files
// of its one layer.
func panicLayerImage(t *testing.T) (plainLayer, func(v1.Layer) v1.Image) {
	t.Helper()
	var files []testimage.File
	for i := range 20 {
		files = append(files, testimage.File{Path: fmt.Sprintf("/usr/share/f%02d", i), Data: bytes.Repeat([]byte{'x'}, 1000)})
	}
	files = append(files, testimage.File{Path: "/app", Data: testimage.ELF("amd64")})
	b, err := testimage.Tar(files)
	if err != nil {
		t.Fatal(err)
	}
	build := func(l v1.Layer) v1.Image {
		img, err := mutate.AppendLayers(empty.Image, l)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Config.Entrypoint = []string{"/app"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		return img
	}
	return plainLayer(b), build
}

// verifyRecovered runs a cached verification of img with the layer key k,
// turning a panic into an error as the resolver does.
func verifyRecovered(ctx context.Context, c *Cache, img v1.Image, k layerKey) (ep *image.Entrypoint, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	keys := func(v1.Image, int) []layerKey { return []layerKey{k} }
	return entrypoint(ctx, img, keys, WithArch("amd64"), WithCache(c))
}

func TestPanicWhileIndexingPublishesNothing(t *testing.T) {
	good, build := panicLayerImage(t)
	d, _ := good.Digest()
	k := layerKey{origin: "registry test.invalid", digest: d.String()}
	c := NewCache(CacheLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Half the layer indexed, then a panic.
	if _, err := verifyRecovered(ctx, c, build(faultLayer{good: good, n: len(good) / 2}), k); err == nil {
		t.Fatal("the injected panic did not happen")
	}
	c.mu.Lock()
	_, kept := c.layers.get(k)
	_, busy := c.inflight[k]
	c.mu.Unlock()
	if kept {
		t.Error("the half-built index of the layer that panicked was published")
	}
	if busy {
		t.Error("the layer that panicked is still marked as being read")
	}
	// The next reader reads the layer again, whole, and gets the answer.
	ep, err := verifyRecovered(ctx, c, build(good), k)
	if err != nil || ep.Verdict != image.VerdictOK {
		t.Fatalf("after the panic: %+v, %v", ep, err)
	}
}

func TestPanicOnOpenReleasesWaiters(t *testing.T) {
	good, build := panicLayerImage(t)
	d, _ := good.Digest()
	k := layerKey{origin: "registry test.invalid", digest: d.String()}
	c := NewCache(CacheLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := verifyRecovered(ctx, c, build(faultLayer{good: good, panicOpen: true}), k); err == nil {
		t.Fatal("the injected panic did not happen")
	}
	// A verification that needs the layer now must not wait for a read
	// that will never end (it would wait until its context does).
	start := time.Now()
	ep, err := verifyRecovered(ctx, c, build(good), k)
	if err != nil || ep.Verdict != image.VerdictOK {
		t.Fatalf("after the panic on open: %+v, %v (after %s)", ep, err, time.Since(start).Round(time.Millisecond))
	}
}

// A verification already waiting for the layer when its reader panics
// is let go too, and reads the layer itself.
func TestPanicReleasesWaitingVerification(t *testing.T) {
	good, build := panicLayerImage(t)
	d, _ := good.Digest()
	k := layerKey{origin: "registry test.invalid", digest: d.String()}
	c := NewCache(CacheLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	opened, gate := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := verifyRecovered(ctx, c, build(gatedLayer{opened: opened, gate: gate}), k)
		first <- err
	}()
	<-opened // the first verification holds the layer
	done := make(chan error, 1)
	go func() {
		ep, err := verifyRecovered(ctx, c, build(good), k)
		if err == nil && ep.Verdict != image.VerdictOK {
			err = fmt.Errorf("verdict %s", ep.Verdict)
		}
		done <- err
	}()
	for { // until the second one waits for the layer
		c.mu.Lock()
		_, busy := c.inflight[k]
		c.mu.Unlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate) // now the first one's open panics
	if err := <-first; err == nil {
		t.Fatal("the injected panic did not happen")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter is still waiting for the layer whose reader panicked")
	}
}

// gatedLayer panics on open once gate is closed, after saying it opened.
type gatedLayer struct {
	faultLayer
	opened, gate chan struct{}
}

func (l gatedLayer) Compressed() (io.ReadCloser, error) {
	close(l.opened)
	<-l.gate
	panic("fault injected: opening the layer")
}
