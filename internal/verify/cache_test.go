package verify_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/image"
	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

const loader = "/lib64/ld-linux-x86-64.so.2"

// baseFiles is a small rootfs: the loader comes first in the tar, /bin/sh
// after it and a few hundred other files after that (incompressible, 1 MB
// in all), so a verification that needs only the loader stops early in
// this layer.
func baseFiles() []testimage.File {
	files := []testimage.File{
		{Path: "/lib64", Dir: true},
		{Path: loader, Data: testimage.ELF("amd64")},
		{Path: "/bin", Link: "usr/bin"},
		{Path: "/usr/bin/sh", Data: testimage.DynamicELF("amd64", loader)},
	}
	for i := range 250 {
		files = append(files, testimage.File{Path: fmt.Sprintf("/usr/share/doc/pkg%d/f", i), Data: fixedNoise(i, 4<<10)})
	}
	return files
}

// fixedNoise is incompressible and the same in every call, so layers built
// from it have one digest.
func fixedNoise(seed, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// appOn is an image on the shared base layer, with its own top layer.
func appOn(t *testing.T, app string, entry string) v1.Image {
	t.Helper()
	return testimage.Must(testimage.Spec{
		Platform: "linux/amd64",
		Layers: [][]testimage.File{baseFiles(), {
			{Path: "/app/" + app, Data: append(testimage.DynamicELF("amd64", loader), app...)},
		}},
		Entrypoint: []string{entry},
	}.Build())
}

func newCountingHost(t *testing.T) (*blobCounter, string) {
	t.Helper()
	c := &blobCounter{bytes: map[string]int64{}, gets: map[string]int{}}
	srv := httptest.NewServer(c.wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	return c, strings.TrimPrefix(srv.URL, "http://")
}

func pushImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// runResolver is one archfit run: a resolver with no disk cache and one
// verify.Cache, as the CLI builds it.
func runResolver(t *testing.T) *image.Resolver {
	t.Helper()
	r, err := image.NewResolver(image.WithRegistryClient(regclient.New(regclient.WithPlainHTTP())), image.WithCacheDir(""),
		image.WithVerifier(verify.NewCache(verify.CacheLimits{}).Verifier))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func verdictOf(t *testing.T, rep *image.Report) *image.Entrypoint {
	t.Helper()
	if rep.Error != nil || len(rep.Entries) != 1 || rep.Entries[0].Entrypoint == nil {
		t.Fatalf("%s: %+v %+v", rep.Reference, rep.Error, rep.Entries)
	}
	return rep.Entries[0].Entrypoint
}

func baseDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestSharedLayerReadOncePerRun: images on one base layer, each with its
// entrypoint in its own top layer and the loader in the base. In one run
// the base layer is fetched once, however many images (inspected one
// after another or at the same time) need its loader.
func TestSharedLayerReadOncePerRun(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		name := map[bool]string{false: "sequential", true: "concurrent"}[concurrent]
		t.Run(name, func(t *testing.T) {
			c, host := newCountingHost(t)
			apps := []string{"one", "two", "three", "four"}
			var base string
			for _, a := range apps {
				img := appOn(t, a, "/app/"+a)
				base = baseDigest(t, img)
				pushImage(t, host+"/"+a+":1", img)
			}
			c.mu.Lock()
			clear(c.gets)
			c.mu.Unlock()

			r := runResolver(t)
			eps := make([]*image.Entrypoint, len(apps))
			inspect := func(i int) {
				eps[i] = verdictOf(t, r.Inspect(context.Background(), image.Request{Ref: host + "/" + apps[i] + ":1", Verify: true}))
			}
			if concurrent {
				var wg sync.WaitGroup
				for i := range apps {
					wg.Go(func() { inspect(i) })
				}
				wg.Wait()
			} else {
				for i := range apps {
					inspect(i)
				}
			}
			for i, ep := range eps {
				if ep.Verdict != image.VerdictOK || ep.InterpreterArch != "amd64" {
					t.Errorf("%s: %s, loader %q (%s)", apps[i], ep.Verdict, ep.InterpreterArch, ep.Detail)
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if got := c.gets[base]; got != 1 {
				t.Errorf("base layer fetched %d times for %d images, want 1", got, len(apps))
			}
			// Each image's own top layer (and config) is still read.
			if others := len(c.gets) - 1; others != 2*len(apps) {
				t.Errorf("%d other blobs fetched, want the %d top layers and configs: %v", others, len(apps), c.gets)
			}
		})
	}
}

// TestPartlyReadLayerIsReadWholeTheSecondTime: the first image needs only
// the base layer's loader (its read stops there). The second runs /bin/sh,
// which lies past that point: the base layer is read again, this time to
// its end. A third image that also runs /bin/sh reads nothing of the base
// layer: its index and /bin/sh's ELF header are known.
func TestPartlyReadLayerIsReadWholeTheSecondTime(t *testing.T) {
	c, host := newCountingHost(t)
	first := appOn(t, "first", "/app/first")
	base := baseDigest(t, first)
	pushImage(t, host+"/first:1", first)
	pushImage(t, host+"/shell:1", appOn(t, "shell", "/bin/sh"))
	pushImage(t, host+"/shell2:1", appOn(t, "shell2", "sh"))
	c.mu.Lock()
	clear(c.gets)
	clear(c.bytes)
	c.mu.Unlock()

	r := runResolver(t)
	gets := func() (int, int64) { c.mu.Lock(); defer c.mu.Unlock(); return c.gets[base], c.bytes[base] }
	ep := verdictOf(t, r.Inspect(context.Background(), image.Request{Ref: host + "/first:1", Verify: true}))
	n1, _ := gets()
	if ep.Verdict != image.VerdictOK || n1 != 1 {
		t.Fatalf("first: %s (%s), base fetched %d times", ep.Verdict, ep.Detail, n1)
	}
	for _, ref := range []string{"/shell:1", "/shell2:1"} {
		ep := verdictOf(t, r.Inspect(context.Background(), image.Request{Ref: host + ref, Verify: true}))
		if ep.Verdict != image.VerdictOK || ep.Path != "/usr/bin/sh" {
			t.Fatalf("%s: %s %s (%s)", ref, ep.Verdict, ep.Path, ep.Detail)
		}
	}
	if n, _ := gets(); n != 2 {
		t.Errorf("base fetched %d times, want 2 (a partial read, then a whole one)", n)
	}
	// The registry may have sent more than the client read before it
	// hung up; what the verification read tells that it stopped early.
	sizes := layerSizes(t, first)
	t.Logf("layers %v bytes; the first verification read %d", sizes, ep.BytesRead)
	if ep.BytesRead >= sizes[0] {
		t.Errorf("the first verification read %d bytes, the base layer is %d: it did not stop early", ep.BytesRead, sizes[0])
	}
}

// TestLayerCacheIsPerOrigin: a hostile registry serves other bytes for the
// digest of an honest registry's layer. What was read from the hostile one
// must not answer for the honest image in the same run.
func TestLayerCacheIsPerOrigin(t *testing.T) {
	mislabeled := testimage.App("linux/amd64", "arm64")
	ls, _ := mislabeled.Layers()
	ld, _ := ls[0].Digest()
	good, _ := testimage.App("linux/amd64", "amd64").Layers()
	rc, _ := good[0].Compressed()
	goodBytes, _ := io.ReadAll(rc)
	real := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	// Hand-written for the hostile part only: a real registry verifies
	// uploads, so it cannot be told to serve other bytes for a digest.
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			w.Write(goodBytes)
			return
		}
		real.ServeHTTP(w, r)
	}))
	t.Cleanup(hostile.Close)
	_, honest := newCountingHost(t)
	hostileRef := strings.TrimPrefix(hostile.URL, "http://") + "/app:1"
	pushImage(t, hostileRef, mislabeled)
	pushImage(t, honest+"/app:1", mislabeled)
	// Different commands, so the resolver's own verdict memo does not answer.
	r := runResolver(t)
	if ep := verdictOf(t, r.Inspect(context.Background(), image.Request{Ref: hostileRef, Verify: true})); ep.Verdict != image.VerdictOK {
		t.Fatalf("hostile: %s (%s), want ok: its bytes say amd64", ep.Verdict, ep.Detail)
	}
	if ep := verdictOf(t, r.Inspect(context.Background(), image.Request{Ref: honest + "/app:1", Verify: true})); ep.Verdict != image.VerdictWrongArch {
		t.Errorf("honest: %s (%s), want %s from its own bytes", ep.Verdict, ep.Detail, image.VerdictWrongArch)
	}
}

// TestCacheLimits: a cache too small for the base layer's index keeps
// nothing and every image reads the layer again, with the same verdicts.
func TestCacheLimits(t *testing.T) {
	c, host := newCountingHost(t)
	var base string
	for _, a := range []string{"one", "two"} {
		img := appOn(t, a, "/app/"+a)
		base = baseDigest(t, img)
		pushImage(t, host+"/"+a+":1", img)
	}
	c.mu.Lock()
	clear(c.gets)
	c.mu.Unlock()
	r, err := image.NewResolver(image.WithRegistryClient(regclient.New(regclient.WithPlainHTTP())), image.WithCacheDir(""),
		image.WithVerifier(verify.NewCache(verify.CacheLimits{Entries: 2, FileBytes: 10}).Verifier))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"one", "two"} {
		if ep := verdictOf(t, r.Inspect(context.Background(), image.Request{Ref: host + "/" + a + ":1", Verify: true})); ep.Verdict != image.VerdictOK {
			t.Fatalf("%s: %s (%s)", a, ep.Verdict, ep.Detail)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gets[base] != 2 {
		t.Errorf("base fetched %d times with a cache too small for it, want 2", c.gets[base])
	}
}

// TestLoaderBeforeItsSymlinkIsReadOnce: as in Debian's rootfs, the loader
// file (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2) comes earlier in
// the tar than the symlinks that lead to it (/lib64 -> usr/lib64,
// /usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...). Its head
// is kept on the way, so the base layer is not read a second time.
func TestLoaderBeforeItsSymlinkIsReadOnce(t *testing.T) {
	const real = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	i := img(t, ep("/app"), nil,
		[]file{
			{Path: "/lib", Link: "usr/lib"},
			{Path: "/lib64", Link: "usr/lib64"},
			{Path: real, Data: amd64},
			{Path: "/usr/lib64/ld-linux-x86-64.so.2", Link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		},
		[]file{exe("/app", testimage.DynamicELF("amd64", loader))},
	)
	got, err := verify.Entrypoint(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != image.VerdictOK || got.InterpreterArch != "amd64" {
		t.Fatalf("got %s, loader %q (%s)", got.Verdict, got.InterpreterArch, got.Detail)
	}
	if got.LayersRead != 2 {
		t.Errorf("%d layer reads, want 2 (each layer once)", got.LayersRead)
	}
}
