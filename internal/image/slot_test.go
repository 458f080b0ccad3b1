package image

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/testimage"
)

// A verification holds a concurrency slot only while it streams a layer:
// one that waits (as verify.Cache makes a verification wait for a layer
// another one is reading) must not keep the other images' requests from
// the registry. With one slot, the first verification waits until the
// second image has been read: it can only finish if it holds no slot.
func TestWaitingVerificationHoldsNoSlot(t *testing.T) {
	reg := newCountingRegistry(t)
	a, b := reg.host()+"/a:1", reg.host()+"/b:1"
	push(t, a, testimage.App("linux/amd64", "amd64"))
	push(t, b, testimage.App("linux/arm64/v8", "arm64"))
	otherDone := make(chan struct{})
	var calls atomic.Int32
	verifier := func(ctx context.Context, img v1.Image, want string, o *Override) (*Entrypoint, error) {
		if calls.Add(1) == 1 {
			select {
			case <-otherDone:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return readAppArch(img, want)
	}
	r := newResolver(t, "", WithConcurrency(1), WithVerifier(verifier))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := make(chan *Report, 1)
	go func() { first <- r.Inspect(ctx, Request{Ref: a, Verify: true}) }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	rb := r.Inspect(ctx, Request{Ref: b, Verify: true})
	close(otherDone)
	ra := <-first
	for _, rep := range []*Report{ra, rb} {
		if rep.Error != nil || len(rep.Entries) != 1 || rep.Entries[0].Entrypoint == nil || rep.Entries[0].Entrypoint.Verdict != VerdictOK {
			var ep any
			if len(rep.Entries) == 1 {
				ep = rep.Entries[0].Entrypoint
			}
			t.Fatalf("%s: error %v, entrypoint %+v (a verification waiting with the only slot keeps the other image from being read)", rep.Reference, rep.Error, ep)
		}
	}
	if len(r.sem) != 0 {
		t.Fatalf("%d slots still held", len(r.sem))
	}
}

// A verification's streams share its one slot (a reread while the first
// stream is open takes no second one), and the slot is given back when the
// last one closes, or when the verification ends with a stream left open.
func TestVerificationStreamsShareOneSlot(t *testing.T) {
	reg := newCountingRegistry(t)
	ref := reg.host() + "/c:1"
	push(t, ref, testimage.App("linux/amd64", "amd64"))
	var during []int
	var r *Resolver
	verifier := func(ctx context.Context, img v1.Image, want string, o *Override) (*Entrypoint, error) {
		ls, err := img.Layers()
		if err != nil {
			return nil, err
		}
		rc1, err := ls[0].Compressed()
		if err != nil {
			return nil, err
		}
		during = append(during, len(r.sem))
		rc2, err := ls[0].Compressed() // with concurrency 1, a second slot would never come
		if err != nil {
			return nil, err
		}
		during = append(during, len(r.sem))
		_, _ = io.Copy(io.Discard, rc2)
		rc2.Close()
		rc2.Close() // closed twice (verify's context AfterFunc does): released once
		during = append(during, len(r.sem))
		// rc1 left open: the slot comes back when the verification ends.
		_ = rc1
		return readAppArch(img, want)
	}
	r = newResolver(t, "", WithConcurrency(1), WithVerifier(verifier))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep := r.Inspect(ctx, Request{Ref: ref, Verify: true})
	if rep.Error != nil || rep.Entries[0].Entrypoint == nil || rep.Entries[0].Entrypoint.Verdict != VerdictOK {
		t.Fatalf("%+v", rep)
	}
	if want := []int{1, 1, 1}; len(during) != 3 || during[0] != 1 || during[1] != 1 || during[2] != 1 {
		t.Fatalf("slots held while streaming: %v, want %v", during, want)
	}
	if len(r.sem) != 0 {
		t.Fatalf("%d slots still held after the verification", len(r.sem))
	}
}
