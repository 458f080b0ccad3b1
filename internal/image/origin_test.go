package image

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/archfit/archfit/internal/testimage"
)

// TestVerdictsAreKeyedByOrigin: two registries serve the same manifest; the
// honest one's layer holds an arm64 binary (the image is mislabeled amd64),
// the hostile one serves an amd64 binary for the same layer digest. The
// hostile registry's "ok" must not answer for the honest registry's image,
// within a run or through the disk cache.
func TestVerdictsAreKeyedByOrigin(t *testing.T) {
	mislabeled := testimage.App("linux/amd64", "arm64")
	honest := newCountingRegistry(t)
	push(t, honest.host()+"/app:1", mislabeled)

	layers, _ := mislabeled.Layers()
	ld, _ := layers[0].Digest()
	good, _ := testimage.App("linux/amd64", "amd64").Layers()
	rc, _ := good[0].Compressed()
	goodBytes, _ := io.ReadAll(rc)
	real := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	// Hand-written for the hostile part only: the layer blob is answered
	// with other bytes (a real registry verifies uploads, so cannot be told).
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			w.Write(goodBytes)
			return
		}
		real.ServeHTTP(w, r)
	}))
	t.Cleanup(hostile.Close)
	hostileRef := strings.TrimPrefix(hostile.URL, "http://") + "/app:1"
	push(t, hostileRef, mislabeled)
	honestRef := honest.host() + "/app:1"

	verdict := func(rep *Report) string {
		if rep.Error != nil || len(rep.Entries) != 1 || rep.Entries[0].Entrypoint == nil {
			t.Fatalf("%s: %+v %+v", rep.Reference, rep.Error, rep.Entries)
		}
		return rep.Entries[0].Entrypoint.Verdict
	}
	dir := t.TempDir()
	r := newResolver(t, dir, WithVerifier(headerVerifier))
	if got := verdict(r.Inspect(context.Background(), Request{Ref: hostileRef, Verify: true})); got != VerdictOK {
		t.Fatalf("hostile registry: verdict %s, want ok (its bytes say amd64)", got)
	}
	if got := verdict(r.Inspect(context.Background(), Request{Ref: honestRef, Verify: true})); got != VerdictWrongArch {
		t.Errorf("same run: honest registry's image judged %s from the other registry's bytes, want %s", got, VerdictWrongArch)
	}
	// Through the disk cache: a new run that saw only the hostile registry.
	dir2 := t.TempDir()
	newResolver(t, dir2, WithVerifier(headerVerifier)).Inspect(context.Background(), Request{Ref: hostileRef, Verify: true})
	if got := verdict(newResolver(t, dir2, WithVerifier(headerVerifier)).Inspect(context.Background(), Request{Ref: honestRef, Verify: true})); got != VerdictWrongArch {
		t.Errorf("disk cache: honest registry's image judged %s, want %s", got, VerdictWrongArch)
	}
}
