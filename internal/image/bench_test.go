package image

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// BenchmarkInspect200 inspects 200 distinct images (100 multi-arch indexes,
// 100 single-arch manifests) on a real in-process registry that adds 20 ms
// to every request, cold and then warm from the disk cache. Run with
//
//	go test -run '^$' -bench Inspect200 -benchtime 1x ./internal/image/
func BenchmarkInspect200(b *testing.B) {
	const latency = 20 * time.Millisecond
	const concurrency = 16
	var reqs, manifestGets atomic.Int64
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var slow atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			reqs.Add(1)
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				manifestGets.Add(1)
			}
			time.Sleep(latency)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	var refs, pinned []string
	for i := 0; i < 200; i++ {
		ref := fmt.Sprintf("%s/bench/img%03d:1", host, i)
		r, _ := name.ParseReference(ref)
		var err error
		var dig string
		if i%2 == 0 {
			idx := testimage.Index(testimage.For(testimage.Must(testimage.Spec{Platform: "linux/amd64", Layers: [][]testimage.File{{{Path: "/app", Data: append(testimage.ELF("amd64"), byte(i))}}}, Entrypoint: []string{"/app"}}.Build()), "linux/amd64"),
				testimage.For(testimage.Must(testimage.Spec{Platform: "linux/arm64/v8", Layers: [][]testimage.File{{{Path: "/app", Data: append(testimage.ELF("arm64"), byte(i))}}}, Entrypoint: []string{"/app"}}.Build()), "linux/arm64/v8"))
			err = remote.WriteIndex(r, idx)
			d, _ := idx.Digest()
			dig = d.String()
		} else {
			img := testimage.Must(testimage.Spec{Platform: "linux/amd64", Layers: [][]testimage.File{{{Path: "/app", Data: append(testimage.ELF("amd64"), byte(i))}}}, Entrypoint: []string{"/app"}}.Build())
			err = remote.Write(r, img)
			d, _ := img.Digest()
			dig = d.String()
		}
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, ref)
		pinned = append(pinned, fmt.Sprintf("%s/bench/img%03d@%s", host, i, dig))
	}
	toReqs := func(rs []string) []Request {
		out := make([]Request, len(rs))
		for i, r := range rs {
			out[i] = Request{Ref: r}
		}
		return out
	}
	slow.Store(true)
	for n := 0; n < b.N; n++ {
		dir := b.TempDir()
		reqs.Store(0)
		res, _ := NewResolver(WithRegistryClient(regclient.New()), WithCacheDir(dir), WithConcurrency(concurrency))
		start := time.Now()
		reps := res.InspectAll(context.Background(), toReqs(refs))
		cold := time.Since(start)
		for _, rep := range reps {
			if rep.Error != nil {
				b.Fatalf("%s: %+v", rep.Reference, rep.Error)
			}
		}
		coldReqs := reqs.Load()
		// Lower bound: round trips per image (1 for an index, 2 for a single
		// manifest: manifest then config) x images x latency / concurrency.
		bound := time.Duration(100*1+100*2) * latency / concurrency

		reqs.Store(0)
		manifestGets.Store(0)
		res, _ = NewResolver(WithRegistryClient(regclient.New()), WithCacheDir(dir), WithConcurrency(concurrency))
		start = time.Now()
		res.InspectAll(context.Background(), toReqs(pinned))
		warm := time.Since(start)

		b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
		b.ReportMetric(float64(coldReqs)/200, "cold-req/image")
		b.ReportMetric(float64(cold)/float64(bound), "cold/lower-bound")
		b.ReportMetric(float64(warm.Microseconds())/1000, "warm-ms")
		b.ReportMetric(float64(manifestGets.Load()), "warm-manifest-GETs")
		b.ReportMetric(float64(reqs.Load()), "warm-requests")
	}
}

// BenchmarkInspectWarm inspects 300 images (half two-platform indexes, half
// single manifests, verified, each with a pod's command) from a warm disk
// cache, as a warm `archfit audit` does: a new Resolver per iteration (one
// per process), every answer from the cache, no registry request. Run with
//
//	go test -run '^$' -bench InspectWarm -benchmem ./internal/image/
func BenchmarkInspectWarm(b *testing.B) {
	const images = 300
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	reqs := make([]Request, images)
	for i := range images {
		ref := fmt.Sprintf("%s/team%02d/svc%03d:1.%d", host, i%20, i, i%7)
		r, _ := name.ParseReference(ref)
		app := func(arch string) []testimage.File {
			return []testimage.File{{Path: "/app", Data: append(testimage.ELF(arch), byte(i), byte(i>>8))}}
		}
		var err error
		if i%2 == 0 {
			err = remote.WriteIndex(r, testimage.Index(
				testimage.For(testimage.Must(testimage.Spec{Platform: "linux/amd64", Layers: [][]testimage.File{app("amd64")}, Entrypoint: []string{"/app"}}.Build()), "linux/amd64"),
				testimage.For(testimage.Must(testimage.Spec{Platform: "linux/arm64/v8", Layers: [][]testimage.File{app("arm64")}, Entrypoint: []string{"/app"}}.Build()), "linux/arm64/v8")))
		} else {
			err = remote.Write(r, testimage.Must(testimage.Spec{Platform: "linux/amd64", Layers: [][]testimage.File{app("amd64")}, Entrypoint: []string{"/app"}}.Build()))
		}
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = Request{Ref: ref, Verify: true, Override: &Override{Args: []string{"--port", fmt.Sprint(8000 + i)}}}
	}
	dir := b.TempDir()
	resolver := func() *Resolver {
		res, err := NewResolver(WithRegistryClient(regclient.New()), WithCacheDir(dir), WithVerifier(headerVerifier), WithTagTTL(100*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	for _, rep := range resolver().InspectAll(context.Background(), reqs) {
		if rep.Error != nil {
			b.Fatalf("%s: %+v", rep.Reference, rep.Error)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	// The machine is shared: the CPU time the process spent (GC included)
	// says more than the wall time.
	cpu0 := processCPU()
	for n := 0; n < b.N; n++ {
		res := resolver()
		res.InspectAll(context.Background(), reqs)
		if res.Requests() != 0 || res.CacheHits() != 2*images {
			b.Fatalf("warm run: %d request(s), %d cache hit(s), want 0 and %d", res.Requests(), res.CacheHits(), 2*images)
		}
	}
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}
