package image

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/archfit/archfit/internal/platform"
	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// countingRegistry is a real in-process OCI registry that counts the
// requests it serves, by method and path kind.
type countingRegistry struct {
	*httptest.Server
	mu  sync.Mutex
	log []string
}

func newCountingRegistry(t *testing.T) *countingRegistry {
	t.Helper()
	c := &countingRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.log = append(c.log, r.Method+" "+kind(r.URL.Path))
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

func kind(p string) string {
	switch {
	case strings.Contains(p, "/manifests/sha256:"):
		return "manifest-by-digest"
	case strings.Contains(p, "/manifests/"):
		return "manifest-by-tag"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	}
	return p
}

func (c *countingRegistry) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log
	c.log = nil
	return l
}

func (c *countingRegistry) host() string { return strings.TrimPrefix(c.URL, "http://") }

func push(t *testing.T, ref string, obj any) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	switch o := obj.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, o)
	case v1.Image:
		err = remote.Write(r, o)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func newResolver(t *testing.T, cacheDir string, opts ...Option) *Resolver {
	t.Helper()
	opts = append([]Option{WithRegistryClient(regclient.New()), WithCacheDir(cacheDir)}, opts...)
	r, err := NewResolver(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrips(t *testing.T) {
	reg := newCountingRegistry(t)
	multi := reg.host() + "/multi:1"
	single := reg.host() + "/single:1"
	push(t, multi, testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	push(t, single, testimage.App("linux/amd64", "amd64"))
	reg.take()
	ctx := context.Background()
	dir := t.TempDir()

	// Cold: a tag resolving to an index is one GET; a single manifest needs
	// its config too.
	r := newResolver(t, dir)
	rep := r.Inspect(ctx, Request{Ref: multi})
	if diff := cmp.Diff([]string{"GET manifest-by-tag"}, reg.take()); diff != "" {
		t.Errorf("index requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64/v8"}, rep.Platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	r.Inspect(ctx, Request{Ref: single})
	if diff := cmp.Diff([]string{"GET manifest-by-tag", "GET blob"}, reg.take()); diff != "" {
		t.Errorf("single requests (-want +got):\n%s", diff)
	}

	// Warm, tag TTL expired: one HEAD per tag, content from the cache.
	r = newResolver(t, dir, WithTagTTL(0))
	r.Inspect(ctx, Request{Ref: multi})
	r.Inspect(ctx, Request{Ref: single})
	if diff := cmp.Diff([]string{"HEAD manifest-by-tag", "HEAD manifest-by-tag"}, reg.take()); diff != "" {
		t.Errorf("warm requests (-want +got):\n%s", diff)
	}
	// Warm, within the TTL, or pinned by digest: nothing at all.
	r = newResolver(t, dir, WithTagTTL(time.Hour))
	r.Inspect(ctx, Request{Ref: multi})
	r.Inspect(ctx, Request{Ref: reg.host() + "/multi@" + rep.Digest})
	if got := reg.take(); len(got) != 0 {
		t.Errorf("warm within TTL: want no requests, got %v", got)
	}
}

func TestIndexShapes(t *testing.T) {
	reg := newCountingRegistry(t)
	amd := testimage.App("linux/amd64", "amd64")
	arm := testimage.App("linux/arm64", "arm64")
	mislabeled := testimage.App("linux/amd64", "amd64") // config says amd64
	cases := []struct {
		name          string
		obj           any
		verify        bool
		wantKind      string
		wantPlatforms []string
		wantArches    []string
		singleArch    bool
		wantProblems  []string
	}{
		{name: "single", obj: amd, wantKind: KindManifest, wantPlatforms: []string{"linux/amd64"}, wantArches: []string{"amd64"}},
		{name: "attested-single", obj: testimage.Index(testimage.For(amd, "linux/amd64"), testimage.Attestation(amd)),
			wantKind: KindIndex, wantPlatforms: []string{"linux/amd64"}, wantArches: []string{"amd64"}, singleArch: true},
		{name: "docker-list", obj: testimage.DockerList(testimage.For(amd, "linux/amd64"), testimage.For(arm, "linux/arm64/v8")),
			wantKind: KindIndex, wantPlatforms: []string{"linux/amd64", "linux/arm64/v8"}, wantArches: []string{"amd64", "arm64"}},
		{name: "no-platform-entry", obj: testimage.Index(testimage.Entry{Image: arm}, testimage.For(amd, "linux/amd64")),
			wantKind: KindIndex, wantPlatforms: []string{"linux/arm64", "linux/amd64"}, wantArches: []string{"amd64", "arm64"}},
		{name: "mislabeled-config", obj: testimage.Index(testimage.For(amd, "linux/amd64"), testimage.For(mislabeled, "linux/arm64")), verify: true,
			wantKind: KindIndex, wantPlatforms: []string{"linux/amd64", "linux/arm64"}, wantArches: []string{"amd64"}, wantProblems: []string{"mislabeled-platform"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := reg.host() + "/" + tc.name + ":1"
			push(t, ref, tc.obj)
			r := newResolver(t, "")
			rep := r.Inspect(context.Background(), Request{Ref: ref, Verify: tc.verify})
			if rep.Error != nil {
				t.Fatalf("error: %+v", rep.Error)
			}
			if rep.Kind != tc.wantKind {
				t.Errorf("kind %q, want %q", rep.Kind, tc.wantKind)
			}
			if diff := cmp.Diff(tc.wantPlatforms, rep.Platforms); diff != "" {
				t.Errorf("platforms (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantArches, rep.Architectures); diff != "" {
				t.Errorf("architectures (-want +got):\n%s", diff)
			}
			if rep.EffectivelySingleArch != tc.singleArch {
				t.Errorf("effectively single-arch %v, want %v", rep.EffectivelySingleArch, tc.singleArch)
			}
			var codes []string
			for _, p := range rep.Problems {
				codes = append(codes, p.Code)
			}
			if diff := cmp.Diff(tc.wantProblems, codes); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPullsPerRuntime(t *testing.T) {
	reg := newCountingRegistry(t)
	amd := testimage.App("linux/amd64", "amd64")
	arm7 := testimage.App("linux/arm/v7", "arm")
	ref := reg.host() + "/armv7:1"
	// amd64 + arm/v7 only: containerd's local path falls back to arm/v7 on
	// an arm64 node; the transfer service and CRI-O do not.
	push(t, ref, testimage.Index(testimage.For(amd, "linux/amd64"), testimage.For(arm7, "linux/arm/v7")))
	rep := newResolver(t, "").Inspect(context.Background(), Request{Ref: ref})
	got := map[string]string{}
	for _, p := range rep.Pulls {
		v := p.Platform
		if p.Error != "" {
			v = "ERR " + p.Error
		}
		got[p.Node+" "+string(p.Runtime)] = v
	}
	// The transfer service downloads the exact matches only; the config
	// lookup then picks the arm/v7 entry it never fetched (real 2.1.9, with
	// no "failed to pull and unpack image" prefix).
	d, _ := arm7.Digest()
	want := map[string]string{
		"linux/amd64 " + string(platform.ContainerdLocal):       "linux/amd64",
		"linux/amd64 " + string(platform.ContainerdTransfer):    "linux/amd64",
		"linux/amd64 " + string(platform.CRIO):                  "linux/amd64",
		"linux/arm64/v8 " + string(platform.ContainerdLocal):    "linux/arm/v7",
		"linux/arm64/v8 " + string(platform.ContainerdTransfer): "ERR get image config descriptor: content digest " + d.String() + ": not found",
		"linux/arm64/v8 " + string(platform.CRIO):               "ERR choosing an image from manifest list docker://" + ref + ": no image found in image index for architecture \"arm64\", variant \"v8\", OS \"linux\"",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pulls (-want +got):\n%s", diff)
	}
}

func TestBrokenImageDoesNotStopOthers(t *testing.T) {
	reg := newCountingRegistry(t)
	good := reg.host() + "/good:1"
	push(t, good, testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	r := newResolver(t, "")
	reps := r.InspectAll(context.Background(), []Request{{Ref: reg.host() + "/missing:1"}, {Ref: good}, {Ref: "127.0.0.1:1/unreachable:1"}, {Ref: "UPPER/Case::x"}})
	want := []string{"not-found", "", "unreachable", "invalid-reference"}
	for i, rep := range reps {
		got := ""
		if rep.Error != nil {
			got = rep.Error.Reason
		}
		if got != want[i] {
			t.Errorf("%s: reason %q, want %q (%+v)", rep.Reference, got, want[i], rep.Error)
		}
	}
}

func TestNestedUnknownAndSchema1(t *testing.T) {
	reg := newCountingRegistry(t)
	amd := testimage.App("linux/amd64", "amd64")
	arm := testimage.App("linux/arm64", "arm64")
	inner := testimage.Index(testimage.For(arm, "linux/arm64"))
	// An outer index whose arm64 side is itself an index.
	outer := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: inner, Descriptor: v1.Descriptor{MediaType: types.OCIImageIndex}},
	)
	ref := reg.host() + "/nested:1"
	push(t, ref, outer)
	rep := newResolver(t, "").Inspect(context.Background(), Request{Ref: ref})
	if rep.Error != nil {
		t.Fatal(rep.Error)
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, rep.Platforms); diff != "" {
		t.Errorf("nested platforms (-want +got):\n%s", diff)
	}
	innerDigest, _ := inner.Digest()
	if len(rep.Entries) != 2 || len(rep.Entries[1].Nested) != 1 || rep.Entries[1].Nested[0] != innerDigest.String() {
		t.Errorf("nested entries: %+v", rep.Entries)
	}

	// Unknown media types in an index are skipped with a reason, not fatal.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/unknown"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
			fmt.Fprint(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+
				`{"mediaType":"application/vnd.example.wasm.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":10,"platform":{"os":"wasip1","architecture":"wasm"}}]}`)
		case strings.HasSuffix(r.URL.Path, "/manifests/old"):
			// Schema 1 cannot be pushed with current clients: served by hand.
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
			fmt.Fprint(w, `{"schemaVersion":1,"name":"old","tag":"old","architecture":"amd64","fsLayers":[],"history":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	r := newResolver(t, "")
	unk := r.Inspect(context.Background(), Request{Ref: host + "/x:unknown"})
	if unk.Error != nil || len(unk.Entries) != 1 || !strings.Contains(unk.Entries[0].Skipped, "unknown media type") || len(unk.Platforms) != 0 {
		t.Errorf("unknown media type: %+v", unk)
	}
	old := r.Inspect(context.Background(), Request{Ref: host + "/x:old"})
	if old.Error != nil || len(old.Notes) == 0 || !strings.Contains(old.Notes[0], "schema 1") || strings.Join(old.Architectures, ",") != "amd64" {
		t.Errorf("schema 1: %+v", old)
	}
}

func TestDedupAcrossReferences(t *testing.T) {
	reg := newCountingRegistry(t)
	idx := testimage.MultiArch("linux/amd64", "linux/arm64/v8")
	for _, tag := range []string{"a", "b", "c"} {
		push(t, reg.host()+"/same:"+tag, idx)
	}
	reg.take()
	d, _ := idx.Digest()
	reqs := []Request{
		{Ref: reg.host() + "/same:a", Verify: true}, {Ref: reg.host() + "/same:b", Verify: true},
		{Ref: reg.host() + "/same:c", Verify: true}, {Ref: reg.host() + "/same:a", Verify: true},
	}
	r, _ := NewResolver(WithRegistryClient(regclient.New()), WithVerifier(headerVerifier))
	reps := r.InspectAll(context.Background(), reqs)
	for _, rep := range reps {
		if rep.Error != nil || strings.Join(rep.Architectures, ",") != "amd64,arm64" {
			t.Fatalf("%s: %+v %v", rep.Reference, rep.Error, rep.Architectures)
		}
	}
	counts := map[string]int{}
	for _, l := range reg.take() {
		counts[l]++
	}
	// Three tags are three GETs; everything below them (2 child manifests,
	// 2 configs, 2 layers) is fetched once however many references share it.
	want := map[string]int{"GET manifest-by-tag": 3, "GET manifest-by-digest": 2, "GET blob": 4}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	// The same index pinned by digest afterwards: all from memory.
	rep := r.Inspect(context.Background(), Request{Ref: reg.host() + "/same@" + d.String(), Verify: true})
	if got := reg.take(); rep.Error != nil || len(got) != 0 {
		t.Errorf("digest-pinned after tags: %v requests, error %+v", got, rep.Error)
	}
}

func TestReportCacheKeepsTheReference(t *testing.T) {
	reg := newCountingRegistry(t)
	amdOnly := testimage.Index(testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64"))
	push(t, reg.host()+"/one:1", amdOnly)
	push(t, reg.host()+"/one:2", amdOnly)
	dir := t.TempDir()
	newResolver(t, dir).Inspect(context.Background(), Request{Ref: reg.host() + "/one:1"})
	rep := newResolver(t, dir).Inspect(context.Background(), Request{Ref: reg.host() + "/one:2"})
	if rep.Reference != reg.host()+"/one:2" || rep.Stats.CacheHits == 0 {
		t.Fatalf("reference %s, cache hits %d", rep.Reference, rep.Stats.CacheHits)
	}
	for _, p := range rep.Pulls {
		if strings.Contains(p.Error, "one:1") {
			t.Errorf("pull message quotes the other reference: %s", p.Error)
		}
	}
}

// TestVerifyOncePerProgram: pods that run the same image's same program
// with other arguments share one verification (one layer read).
func TestVerifyOncePerProgram(t *testing.T) {
	reg := newCountingRegistry(t)
	ref := reg.host() + "/busybox:1"
	push(t, ref, testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	reg.take()
	var calls atomic.Int32
	v := func(ctx context.Context, img v1.Image, want string, o *Override) (*Entrypoint, error) {
		calls.Add(1)
		return readAppArch(img, want)
	}
	r, _ := NewResolver(WithRegistryClient(regclient.New()), WithVerifier(v))
	var reqs []Request
	for i := 0; i < 10; i++ {
		reqs = append(reqs, Request{Ref: ref, Verify: true, Override: &Override{Command: []string{"/app"}, Args: []string{fmt.Sprint("--shard=", i)}}})
	}
	reqs = append(reqs, Request{Ref: ref, Verify: true, Override: &Override{Command: []string{"/other"}}})
	r.InspectAll(context.Background(), reqs)
	// Two entries x two programs (/app, /other).
	if got := calls.Load(); got != 4 {
		t.Errorf("verifications: %d, want 4", got)
	}
}

// TestPullsOSFeaturesVariant: an amd64 entry listing os.features is refused by
// containerd/platforms rc.5 (containerd >= 2.3) and pulled by older releases;
// the report lists the @pre-rc.5 pulls because they differ, and PullRuntime
// maps a variant the report does not list to its base.
func TestPullsOSFeaturesVariant(t *testing.T) {
	reg := newCountingRegistry(t)
	amd := testimage.App("linux/amd64", "amd64")
	ref := reg.host() + "/feat:1"
	e := testimage.For(amd, "linux/amd64")
	e.Platform.OSFeatures = []string{"sse4"}
	push(t, ref, testimage.Index(e))
	rep := newResolver(t, "").Inspect(context.Background(), Request{Ref: ref})
	got := map[platform.Runtime]string{}
	for _, p := range rep.Pulls {
		if p.Node != "linux/amd64" {
			continue
		}
		v := p.Platform
		if p.Error != "" {
			v = "ERR"
		}
		got[p.Runtime] = v
	}
	want := map[platform.Runtime]string{
		platform.ContainerdLocal: "ERR", platform.ContainerdTransfer: "ERR", platform.CRIO: "linux/amd64",
		platform.ContainerdLocalPreRC5: "linux/amd64", platform.ContainerdTransferPreRC5: "linux/amd64",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pulls (-want +got):\n%s", diff)
	}
	if rt := PullRuntime(rep, "linux/amd64", platform.ContainerdLocalPreRC5); rt != platform.ContainerdLocalPreRC5 {
		t.Errorf("PullRuntime listed variant: %s", rt)
	}
	plainRef := reg.host() + "/plain:1"
	push(t, plainRef, testimage.Index(testimage.For(amd, "linux/amd64")))
	plain := newResolver(t, "").Inspect(context.Background(), Request{Ref: plainRef})
	for _, p := range plain.Pulls {
		if p.Runtime != p.Runtime.Base() {
			t.Errorf("variant pull listed where it chooses as its base: %+v", p)
		}
	}
	if rt := PullRuntime(plain, "linux/amd64", platform.ContainerdLocalPreRC5); rt != platform.ContainerdLocal {
		t.Errorf("PullRuntime unlisted variant: %s", rt)
	}
}

func TestRegistryOf(t *testing.T) {
	for ref, want := range map[string]string{
		"nginx": "docker.io", "docker.io/library/nginx:1": "docker.io", "index.docker.io/foo/bar@sha256:" + strings.Repeat("a", 64): "docker.io",
		"ghcr.io/o/r:v1": "ghcr.io", "127.0.0.1:5000/a/b": "127.0.0.1:5000", "UPPER/case": "invalid",
	} {
		if got := RegistryOf(ref); got != want {
			t.Errorf("RegistryOf(%q) = %q, want %q", ref, got, want)
		}
	}
}
