package image

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// TestTransientSkipIsNotCached: an entry whose config read timed out is
// reported as unreadable, and the next run against a healthy registry reads
// it again instead of serving "runnable platforms: none" from the cache.
// The registry is the real in-process one; only the stall is added by hand
// (a real server cannot be told to hang on one blob).
func TestTransientSkipIsNotCached(t *testing.T) {
	var stall atomic.Bool
	var blobs atomic.Int64
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			blobs.Add(1)
			if stall.Load() {
				select { // hang until the client gives up
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/noplat:1"
	// An entry that declares no platform: its config must be read to know it.
	push(t, ref, testimage.Index(testimage.Entry{Image: testimage.App("linux/arm64", "arm64")}))

	dir := t.TempDir()
	resolver := func(timeout time.Duration) *Resolver {
		r, err := NewResolver(WithCacheDir(dir), WithRegistryClient(regclient.New(regclient.WithTimeout(timeout), regclient.WithRetry(0, 0, 0))))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	stall.Store(true)
	rep := resolver(300*time.Millisecond).Inspect(context.Background(), Request{Ref: ref})
	if rep.Error != nil || len(rep.Entries) != 1 {
		t.Fatalf("first run: error %v, %d entries", rep.Error, len(rep.Entries))
	}
	if got := rep.Entries[0].SkipReason; got != SkipUnreadable {
		t.Fatalf("first run: skip reason %q (%s), want %q", got, rep.Entries[0].Skipped, SkipUnreadable)
	}
	if len(rep.Architectures) != 0 {
		t.Fatalf("first run: architectures %v from an unread entry", rep.Architectures)
	}

	stall.Store(false)
	before := blobs.Load()
	rep = resolver(30*time.Second).Inspect(context.Background(), Request{Ref: ref})
	if blobs.Load() == before {
		t.Fatal("second run read no blob: the transient failure was served from the cache")
	}
	if rep.Entries[0].SkipReason != "" || strings.Join(rep.Architectures, ",") != "arm64" {
		t.Fatalf("second run: skip %q, architectures %v; want the entry read, arm64", rep.Entries[0].Skipped, rep.Architectures)
	}

	// A definitive answer is cached: a third run reads no blob.
	before = blobs.Load()
	resolver(30*time.Second).Inspect(context.Background(), Request{Ref: ref})
	if n := blobs.Load() - before; n != 0 {
		t.Errorf("third run read %d blob(s); the healthy answer should be cached", n)
	}
}
