package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

// Scale of issue 6: 5,000 pods, 1,000 workloads, 300 distinct images on a
// registry that adds 20 ms to every request; issue 13 adds 100,000 pods,
// 20,000 workloads, 2,000 images (benchLarge).
const (
	benchLatency     = 20 * time.Millisecond
	benchConcurrency = 16
)

// benchScale is the size of a synthetic fleet.
type benchScale struct{ images, workloads, podsPerWL int }

var (
	benchSmall = benchScale{images: 300, workloads: 1000, podsPerWL: 5}
	benchLarge = benchScale{images: 2000, workloads: 20000, podsPerWL: 5}
)

type slowRegistry struct {
	h        http.Handler
	latency  atomic.Bool
	requests atomic.Int64
}

func (s *slowRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.latency.Load() {
		s.requests.Add(1)
		time.Sleep(benchLatency)
	}
	s.h.ServeHTTP(w, r)
}

type benchEnv struct {
	srv  *httptest.Server
	reg  *slowRegistry
	refs []string
	snap *cluster.Snapshot
}

var (
	benchMu sync.Mutex
	benchE  = map[benchScale]*benchEnv{}
)

// setupBench pushes sc.images distinct images (a third single-arch
// manifests, a third multi-arch indexes with attestations, a third plain
// multi-arch indexes) to an in-process registry, then turns the latency on.
func setupBench(tb testing.TB) *benchEnv { return setupBenchScale(benchSmall) }

func setupBenchScale(sc benchScale) *benchEnv {
	benchMu.Lock()
	defer benchMu.Unlock()
	if e := benchE[sc]; e != nil {
		return e
	}
	{
		reg := &slowRegistry{h: ggcrregistry.New(ggcrregistry.Logger(nopLogger()))}
		srv := httptest.NewServer(reg)
		host := strings.TrimPrefix(srv.URL, "http://")
		var refs []string
		for i := 0; i < sc.images; i++ {
			ref := fmt.Sprintf("%s/team%02d/svc%03d:1.%d", host, i%20, i, i%7)
			r, err := name.ParseReference(ref, name.Insecure)
			if err != nil {
				panic(err)
			}
			label := func(img v1.Image) v1.Image {
				cf, _ := img.ConfigFile()
				cf = cf.DeepCopy()
				if cf.Config.Labels == nil {
					cf.Config.Labels = map[string]string{}
				}
				cf.Config.Labels["bench.archfit.io/n"] = fmt.Sprint(i)
				out, err := mutate.ConfigFile(img, cf)
				if err != nil {
					panic(err)
				}
				return out
			}
			switch i % 3 {
			case 0:
				err = remote.Write(r, label(testimage.App("linux/amd64", "amd64")))
			case 1:
				amd, arm := label(testimage.App("linux/amd64", "amd64")), label(testimage.App("linux/arm64/v8", "arm64"))
				err = remote.WriteIndex(r, testimage.Index(testimage.For(amd, "linux/amd64"), testimage.For(arm, "linux/arm64/v8"),
					testimage.Attestation(amd), testimage.Attestation(arm)))
			default:
				amd, arm := label(testimage.App("linux/amd64", "amd64")), label(testimage.App("linux/arm64/v8", "arm64"))
				err = remote.WriteIndex(r, testimage.Index(testimage.For(amd, "linux/amd64"), testimage.For(arm, "linux/arm64/v8")))
			}
			if err != nil {
				panic(err)
			}
			refs = append(refs, ref)
		}
		reg.latency.Store(true)
		snap := Synthetic(SyntheticSpec{Workloads: sc.workloads, PodsPerWorkload: sc.podsPerWL, Images: refs, WithInit: true})
		benchE[sc] = &benchEnv{srv: srv, reg: reg, refs: refs, snap: snap}
	}
	return benchE[sc]
}

// auditOnce is what `archfit audit` does after loading: inspect every
// distinct image once (verified), then judge.
func auditOnce(ctx context.Context, tb testing.TB, env *benchEnv, cacheDir string) (*Result, int64) {
	res, err := image.NewResolver(image.WithConcurrency(benchConcurrency), image.WithCacheDir(cacheDir),
		image.WithRegistryClient(registry.New()),
		image.WithVerifier(func(ctx context.Context, img v1.Image, arch string, o *image.Override) (*image.Entrypoint, error) {
			return verify.Entrypoint(ctx, img, verify.WithArch(arch))
		}))
	if err != nil {
		tb.Fatal(err)
	}
	reqs := Requests(env.snap, true)
	reps := res.InspectAll(ctx, reqs)
	for _, r := range reps {
		if r.Error != nil {
			tb.Fatalf("%s: %+v", r.Reference, r.Error)
		}
	}
	return Run(env.snap, image.NewSet(reqs, reps), Options{Verify: true}), res.Requests()
}

// peak samples the Go heap while f runs.
func peak(f func()) uint64 {
	var max atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > max.Load() {
				max.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return max.Load()
}

func BenchmarkAuditCold(b *testing.B) {
	env := setupBench(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		auditOnce(context.Background(), b, env, b.TempDir())
	}
}

func BenchmarkAuditWarm(b *testing.B) {
	env := setupBench(b)
	dir := b.TempDir()
	auditOnce(context.Background(), b, env, dir)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		auditOnce(context.Background(), b, env, dir)
	}
}

// TestScaleReport measures the issue 6 numbers; it runs only with
// ARCHFIT_BENCH=1 (hack/bench-audit.sh) and asserts nothing about time.
// With ARCHFIT_BENCH_CRANE set to a crane binary it also times one
// `crane manifest` per distinct image in a shell loop.
func TestScaleReport(t *testing.T) {
	if os.Getenv("ARCHFIT_BENCH") == "" {
		t.Skip("set ARCHFIT_BENCH=1 (hack/bench-audit.sh)")
	}
	env := setupBench(t)
	ctx := context.Background()
	dir := t.TempDir()
	runtime.GC()

	env.reg.requests.Store(0)
	var cold time.Duration
	var res *Result
	var clientReqs int64
	heap := peak(func() {
		start := time.Now()
		res, clientReqs = auditOnce(ctx, t, env, dir)
		cold = time.Since(start)
	})
	serverReqs := env.reg.requests.Load()

	env.reg.requests.Store(0)
	start := time.Now()
	auditOnce(ctx, t, env, dir)
	warm := time.Since(start)
	warmReqs := env.reg.requests.Load()

	// Lower bound for the requests made: every one costs the latency, at
	// most benchConcurrency run at once, and each image needs a chain of at
	// least 4 dependent requests (index, manifest, config, layer) — so the
	// bound is the larger of the two.
	perSlot := time.Duration((serverReqs+benchConcurrency-1)/benchConcurrency) * benchLatency
	chain := 4 * benchLatency
	lower := max(perSlot, chain)

	fmt.Printf("scale: %d pods, %d workloads, %d distinct images, %v per request, concurrency %d\n",
		len(env.snap.Pods), len(env.snap.Workloads), len(env.refs), benchLatency, benchConcurrency)
	fmt.Printf("cold:  %v, %d registry requests (client counted %d), lower bound %v, ratio %.2f\n",
		cold.Round(time.Millisecond), serverReqs, clientReqs, lower, float64(cold)/float64(lower))
	fmt.Printf("warm:  %v (%.1f%% of cold), %d registry requests\n", warm.Round(time.Millisecond), 100*float64(warm)/float64(cold), warmReqs)
	fmt.Printf("peak Go heap in use during the cold audit: %.1f MiB; process peak RSS (VmHWM, includes the in-process registry and image building): %s\n",
		float64(heap)/(1<<20), vmHWM())
	fmt.Printf("readiness: %d/%d workloads, %d blockers\n", res.Readiness.ReadyWorkloads, res.Readiness.Workloads, len(res.Blockers))

	var rows []benchRow
	if bin := os.Getenv("ARCHFIT_BENCH_BIN"); bin != "" {
		rows = append(rows, processReport(t, benchSmall, bin, true)...)
	}
	if crane := os.Getenv("ARCHFIT_BENCH_CRANE"); crane != "" {
		f, err := os.CreateTemp(t.TempDir(), "refs")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, strings.Join(env.refs, "\n"))
		f.Close()
		env.reg.requests.Store(0)
		start := time.Now()
		out, err := exec.Command("sh", "-c", `while read -r ref; do "$0" manifest --insecure "$ref" >/dev/null || exit 1; done < "$1"`, crane, f.Name()).CombinedOutput()
		if err != nil {
			t.Fatalf("crane loop: %v\n%s", err, out)
		}
		loop := time.Since(start)
		fmt.Printf("crane manifest loop: %v for %d images, %d registry requests; audit cold (in process) / crane loop = %.2f\n",
			loop.Round(time.Millisecond), len(env.refs), env.reg.requests.Load(), float64(cold)/float64(loop))
		rows = append(rows, benchRow{what: "`crane manifest` per image in a shell loop (manifests only, nothing verified)", pods: len(env.snap.Pods),
			st: procStats{wall: loop}, requests: env.reg.requests.Load(), note: fmt.Sprintf("%d images", len(env.refs))})
	}
	// The fleet of issue 13: 100,000 pods, 20,000 workloads, 2,000 images
	// (ARCHFIT_BENCH_LARGE=0 skips it).
	if bin := os.Getenv("ARCHFIT_BENCH_BIN"); bin != "" && os.Getenv("ARCHFIT_BENCH_LARGE") != "0" {
		rows = append(rows, processReport(t, benchLarge, bin, false)...)
	}
	if len(rows) > 0 {
		printTable(rows)
	}
}

func vmHWM() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// BenchmarkRun is the judge alone (no registry): 1,000 workloads, 5,000 pods.
func BenchmarkRun(b *testing.B) {
	env := setupBench(b)
	res, _ := image.NewResolver(image.WithConcurrency(benchConcurrency), image.WithRegistryClient(registry.New()),
		image.WithVerifier(func(ctx context.Context, img v1.Image, arch string, o *image.Override) (*image.Entrypoint, error) {
			return verify.Entrypoint(ctx, img, verify.WithArch(arch))
		}))
	reqs := make([]image.Request, len(env.refs))
	for i, r := range env.refs {
		reqs[i] = image.Request{Ref: r, Verify: true}
	}
	set := image.NewSet(reqs, res.InspectAll(context.Background(), reqs))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Run(env.snap, set, Options{Verify: true})
	}
}
