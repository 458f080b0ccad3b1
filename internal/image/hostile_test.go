package image

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	specsgo "github.com/opencontainers/image-spec/specs-go"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/testimage"
)

// hostileRegistry is the real in-process registry behind a hand-written
// handler for the hostile part only: manifests it holds in docs (by tag or
// digest, of any algorithm, whatever their content) are served as they are,
// everything else goes to the real registry.
type hostileRegistry struct {
	*httptest.Server
	mu   sync.Mutex
	docs map[string][]byte // "repo/manifests/ref" -> body
	gen  func(ref string) ([]byte, bool)
	hits int
}

func newHostileRegistry(t *testing.T) *hostileRegistry {
	t.Helper()
	h := &hostileRegistry{docs: map[string][]byte{}}
	real := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits++
		key := strings.TrimPrefix(r.URL.Path, "/v2/")
		b, ok := h.docs[key]
		if !ok && h.gen != nil && strings.Contains(key, "/manifests/") {
			b, ok = h.gen(key[strings.LastIndex(key, "/")+1:])
		}
		h.mu.Unlock()
		if !ok {
			real.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", specs.MediaTypeImageIndex)
		w.Write(b)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hostileRegistry) host() string { return strings.TrimPrefix(h.URL, "http://") }

func indexOf(t testing.TB, descs ...specs.Descriptor) []byte {
	t.Helper()
	b, err := json.Marshal(specs.Index{Versioned: specsgo.Versioned{SchemaVersion: 2}, MediaType: specs.MediaTypeImageIndex, Manifests: descs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha512Of(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(s[:])
}

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestIndexFanOutIsCapped: four levels of 30 distinct nested indexes
// (810,000 manifests) took 64 s and 3.5 GiB. An image is read up to
// MaxManifestsPerImage manifests and MaxNestedIndexes nested indexes; the
// rest is one skipped entry per index cut, and the other images of the run
// are reported as usual.
func TestIndexFanOutIsCapped(t *testing.T) {
	reg := newHostileRegistry(t)
	app := testimage.App("linux/amd64", "amd64")
	push(t, reg.host()+"/app:1", app)
	leaf, _ := app.Digest()
	leafSize, _ := app.Size()
	const fan = 30
	amd := &specs.Platform{OS: "linux", Architecture: "amd64"}
	// Indexes are generated on demand from their level and number: the
	// registry keeps digest -> (level, n), not 27,931 documents.
	type node struct{ level, n int }
	type named struct {
		digest string
		size   int64
	}
	leaves := slices.Repeat([]specs.Descriptor{{MediaType: specs.MediaTypeImageManifest, Digest: digest.Digest(leaf.String()), Size: leafSize, Platform: amd}}, fan)
	var doc func(level, n int) []byte
	nodes, names := map[string]node{}, map[node]named{}
	doc = func(level, n int) []byte {
		if level == 3 {
			b, _ := json.Marshal(specs.Index{Versioned: specsgo.Versioned{SchemaVersion: 2}, MediaType: specs.MediaTypeImageIndex, Manifests: leaves,
				Annotations: map[string]string{"n": fmt.Sprint(n)}})
			return b
		}
		var ds []specs.Descriptor
		for j := range fan {
			c := node{level + 1, n*fan + j}
			nm, ok := names[c]
			if !ok {
				b := doc(c.level, c.n)
				nm = named{sha256Of(b), int64(len(b))}
				names[c], nodes[nm.digest] = nm, c
			}
			ds = append(ds, specs.Descriptor{MediaType: specs.MediaTypeImageIndex, Digest: digest.Digest(nm.digest), Size: nm.size})
		}
		return indexOf(t, ds...)
	}
	reg.docs["fan/manifests/1"] = doc(0, 0)
	reg.gen = func(ref string) ([]byte, bool) {
		nd, ok := nodes[ref]
		if !ok {
			return nil, false
		}
		return doc(nd.level, nd.n), true
	}
	push(t, reg.host()+"/ok:1", testimage.MultiArch("linux/amd64", "linux/arm64"))

	start := time.Now()
	reps := newResolver(t, "").InspectAll(context.Background(), []Request{{Ref: reg.host() + "/fan:1"}, {Ref: reg.host() + "/ok:1"}})
	el := time.Since(start)
	fanRep, ok := reps[0], reps[1]
	t.Logf("fan-out: %d entries, %d requests in %s", len(fanRep.Entries), reg.hits, el)
	if fanRep.Error != nil {
		t.Fatalf("fan-out: %+v", fanRep.Error)
	}
	var capped, examined int
	for _, e := range fanRep.Entries {
		switch e.SkipReason {
		case SkipTooManyEntries:
			capped++
		case "":
			examined++
		}
	}
	if capped == 0 || examined > MaxManifestsPerImage || len(fanRep.Entries) > MaxManifestsPerImage+2*MaxNestedIndexes {
		t.Errorf("fan-out: %d entries, %d examined, %d marked %s", len(fanRep.Entries), examined, capped, SkipTooManyEntries)
	}
	if !cacheable(fanRep) {
		t.Errorf("a capped image is a definitive answer: it should be cacheable")
	}
	if ok.Error != nil || strings.Join(ok.Architectures, ",") != "amd64,arm64" {
		t.Errorf("the other image: %+v %v", ok.Error, ok.Architectures)
	}
	if el > 20*time.Second {
		t.Errorf("took %s", el)
	}
}

// TestSHA512Digests: children addressed by sha512 are verified like sha256
// ones. An index whose sha512 children point back to itself ran out of
// memory: the content does not match the digest, so the entry is skipped.
// Honest sha512 children are read.
func TestSHA512Digests(t *testing.T) {
	reg := newHostileRegistry(t)
	app := testimage.App("linux/arm64", "arm64")
	push(t, reg.host()+"/x:app", app)
	raw, _ := app.RawManifest()
	mt, _ := app.MediaType()
	honest := sha512Of(raw)
	reg.docs["x/manifests/"+honest] = raw

	bogus := "sha512:" + strings.Repeat("ab", 64)
	var selfRefs []specs.Descriptor
	for range 30 {
		selfRefs = append(selfRefs, specs.Descriptor{MediaType: specs.MediaTypeImageIndex, Digest: digest.Digest(bogus), Size: 100})
	}
	loop := indexOf(t, append(selfRefs, specs.Descriptor{MediaType: string(mt), Digest: digest.Digest(honest), Size: int64(len(raw))})...)
	reg.docs["x/manifests/loop"] = loop
	reg.docs["x/manifests/"+bogus] = loop // served for the child: content of another digest

	rep := newResolver(t, "").Inspect(context.Background(), Request{Ref: reg.host() + "/x:loop"})
	if rep.Error != nil {
		t.Fatal(rep.Error)
	}
	var mismatched, repeated int
	for _, e := range rep.Entries {
		switch {
		case e.Digest == bogus && strings.Contains(e.Skipped, "does not match its digest"):
			mismatched++
		case e.Digest == bogus && e.SkipReason == SkipRepeatedIndex:
			repeated++
		}
	}
	if mismatched != 1 || repeated != 29 {
		t.Errorf("self-referencing sha512 children: %d mismatched, %d repeated, want 1 and 29: %+v", mismatched, repeated, rep.Entries)
	}
	if strings.Join(rep.Architectures, ",") != "arm64" {
		t.Errorf("the honest sha512 child was not read: architectures %v", rep.Architectures)
	}

	// Digests of other algorithms are refused, not fetched.
	reg.docs["x/manifests/md5"] = indexOf(t, specs.Descriptor{MediaType: string(mt), Digest: "md5:d41d8cd98f00b204e9800998ecf8427e", Size: 1, Platform: &specs.Platform{OS: "linux", Architecture: "amd64"}})
	rep = newResolver(t, "").Inspect(context.Background(), Request{Ref: reg.host() + "/x:md5", Verify: true})
	if rep.Error != nil || len(rep.Entries) != 1 || rep.Entries[0].SkipReason != SkipInvalid {
		t.Errorf("md5 digest: %+v %+v", rep.Error, rep.Entries)
	}
}

// TestIndexCycle: a nested index that is its own parent is skipped, not
// walked until the depth limit. Digests are verified, so only content
// that was not (a cache poisoned by an older version) can form a cycle;
// the walk refuses it all the same.
func TestIndexCycle(t *testing.T) {
	reg := newHostileRegistry(t)
	app := testimage.App("linux/amd64", "amd64")
	push(t, reg.host()+"/c:app", app)
	ad, _ := app.Digest()
	as, _ := app.Size()
	child := "sha512:" + strings.Repeat("cd", 64)
	self := specs.Descriptor{MediaType: specs.MediaTypeImageIndex, Digest: digest.Digest(child), Size: 100}
	real := specs.Descriptor{MediaType: specs.MediaTypeImageManifest, Digest: digest.Digest(ad.String()), Size: as, Platform: &specs.Platform{OS: "linux", Architecture: "amd64"}}
	reg.docs["c/manifests/1"] = indexOf(t, self, real)
	r := newResolver(t, "")
	r.cache.putBlob(child, indexOf(t, self, real)) // poisoned: not the content of child
	rep := r.Inspect(context.Background(), Request{Ref: reg.host() + "/c:1"})
	if rep.Error != nil {
		t.Fatal(rep.Error)
	}
	var cycles int
	for _, e := range rep.Entries {
		if e.SkipReason == SkipCycle {
			cycles++
		}
		if e.SkipReason == SkipNestedTooDeep {
			t.Errorf("walked the cycle down to the depth limit: %+v", e)
		}
	}
	if cycles != 1 {
		t.Errorf("%d entries skipped as %s, want 1: %+v", cycles, SkipCycle, rep.Entries)
	}
}

// TestPanicIsTheImagesError: a panic while judging one image is that
// image's error (no stack in it); the other images of the run are reported.
func TestPanicIsTheImagesError(t *testing.T) {
	reg := newCountingRegistry(t)
	push(t, reg.host()+"/arm:1", testimage.App("linux/arm64", "arm64"))
	push(t, reg.host()+"/amd:1", testimage.App("linux/amd64", "amd64"))
	v := func(ctx context.Context, img v1.Image, want string, o *Override) (*Entrypoint, error) {
		if want == "arm64" {
			var m map[string]int
			m["boom"]++ //lint:ignore SA5000 a nil map write on purpose: a bug, as a crafted layer could trigger
		}
		return readAppArch(img, want)
	}
	r := newResolver(t, t.TempDir(), WithVerifier(v))
	reps := r.InspectAll(context.Background(), []Request{{Ref: reg.host() + "/arm:1", Verify: true}, {Ref: reg.host() + "/amd:1", Verify: true}})
	arm, amd := reps[0], reps[1]
	if arm.Error == nil || arm.Error.Reason != "internal-error" || !strings.Contains(arm.Error.Detail, "assignment to entry in nil map") || strings.Contains(arm.Error.Detail, "goroutine") {
		t.Errorf("panicking image: %+v", arm.Error)
	}
	if amd.Error != nil || amd.Entries[0].Entrypoint == nil || amd.Entries[0].Entrypoint.Verdict != VerdictOK {
		t.Errorf("the other image: %+v %+v", amd.Error, amd.Entries)
	}
}
