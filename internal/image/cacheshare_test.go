package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/testimage"
)

// Same manifest reached by two references at once on a warm cache.
func TestWarmRunReadsEachEntryFileOnce(t *testing.T) {
	reg := newCountingRegistry(t)
	a, b := reg.host()+"/x:a", reg.host()+"/y:b"
	push(t, a, testimage.App("linux/amd64", "amd64"))
	push(t, b, testimage.App("linux/amd64", "amd64"))
	ctx := context.Background()
	reqs := []Request{{Ref: a, Verify: true}, {Ref: b, Verify: true}}
	bad := 0
	for i := 0; i < 100; i++ {
		dir := t.TempDir()
		newResolver(t, dir, WithVerifier(headerVerifier)).InspectAll(ctx, reqs)
		reg.take()
		r := newResolver(t, dir, WithVerifier(headerVerifier), WithTagTTL(time.Hour), WithNodes(platform.Node("linux", "arm")))
		r.InspectAll(ctx, reqs)
		if got := reg.take(); len(got) != 0 {
			bad++
			if bad == 1 {
				t.Logf("run %d sent %v", i, got)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d/100 warm runs went to the registry", bad)
	}
}

// Two runs sharing a cache directory (two serve replicas' resolvers, two CI
// jobs) verify one manifest with different commands, their runs
// overlapping: each read the entry file before the other wrote it. The one
// that writes last keeps the other's verdict instead of writing over it.
func TestRunsSharingACacheKeepEachOthersVerdicts(t *testing.T) {
	dir := t.TempDir()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	sum := sha256.Sum256(manifest)
	d := "sha256:" + hex.EncodeToString(sum[:])
	first, second := newCache(dir), newCache(dir)
	first.loadEntry(d)
	second.loadEntry(d)
	first.putVerdict(d, d+"|/app", map[string]string{"arch": "amd64"})
	first.putEntry(d, entryFile{Manifest: manifest})
	first.flush()
	second.putVerdict(d, d+"|/other", map[string]string{"arch": "arm64"})
	second.putEntry(d, entryFile{Manifest: manifest})
	second.flush()
	later := newCache(dir)
	if !later.loadEntry(d) {
		t.Fatal("the entry file was not read back")
	}
	for _, k := range []string{d + "|/app", d + "|/other"} {
		if _, ok := later.mem["verify "+k]; !ok {
			t.Errorf("verdict %s lost: the later writer wrote the file over the earlier one's", k)
		}
	}
}
