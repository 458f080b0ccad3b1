package serve_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/archfit/archfit/internal/serve"
	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
)

// benchPods is how many pods each side of BenchmarkPodCreation creates.
const benchPods = 1000

// benchClients create pods at once.
const benchClients = 64

// BenchmarkPodCreation creates 1,000 pods through the real API server
// without the webhook and 1,000 with it (image known: the pinned path),
// and as a control 1,000 that the webhook is called for and lets through
// unchanged (what any webhook costs the API server),
// benchClients at a time, and reports pods per second. The pods carry a gate of the
// benchmark's own so that the scheduler and the node twins stay out of
// the measurement. Run with -benchtime=1x.
func BenchmarkPodCreation(b *testing.B) {
	env := cluster.Env(b)
	ctx := b.Context()
	img := env.Registry + "/serve/bench:v1"
	testenv.Push(b, img, testimage.App("linux/amd64", "amd64"))
	// The client's own rate limit (env.Config's 50/s) must not be what
	// is measured.
	rc := rest.CopyConfig(env.Config)
	rc.QPS, rc.Burst, rc.WarningHandler = 5000, 5000, rest.NoWarnings{}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	hold := corev1.PodSchedulingGate{Name: "archfit.io/bench-hold"}
	pod := func(ns string, i int) *corev1.Pod {
		if i < 0 {
			// The control: a pod the webhook is called for and lets
			// through unchanged (nodeName set: out of scope; no such node,
			// so nothing runs it).
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("n-%04d", -i), Labels: map[string]string{"app": "bench"}},
				Spec:       corev1.PodSpec{NodeName: "archfit-bench-nowhere", Containers: []corev1.Container{{Name: "app", Image: img}}},
			}
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p-%04d", i), Labels: map[string]string{"app": "bench"}},
			Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{hold},
				Containers: []corev1.Container{{Name: "app", Image: img}}},
		}
	}
	// create makes pods [from, to) in ns, benchClients at a time, and returns how
	// long it took and how many were pinned at admission.
	create := func(b *testing.B, ns string, from, to int, control bool) (time.Duration, int) {
		var next atomic.Int64
		next.Store(int64(from) - 1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		pinned := 0
		start := time.Now()
		for range benchClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i >= to {
						return
					}
					if control {
						i = -1 - i
					}
					got, err := cs.CoreV1().Pods(ns).Create(ctx, pod(ns, i), metav1.CreateOptions{})
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					if err == nil && got.Annotations[serve.PinnedAnnotation] != "" {
						pinned++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		return time.Since(start), pinned
	}
	for b.Loop() {
		plain := namespace(b, env, "bench-plain")
		withNS := namespace(b, env, "bench-webhook")
		// The webhook selects withNS only: the API server does not call
		// it for plain's pods.
		startServe(b, env, withNS, func(c *serve.Config) { c.Log = nil })
		// Warm up: one pod read through the gate, so the rest hit.
		if _, err := env.Client.CoreV1().Pods(withNS).Create(ctx, pod(withNS, benchPods), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		err := testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
			p, err := env.Client.CoreV1().Pods(withNS).Get(ctx, fmt.Sprintf("p-%04d", benchPods), metav1.GetOptions{})
			return err == nil && len(p.Spec.SchedulingGates) == 1, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		// Alternate rounds of 100 so that the machine's load drifts over
		// both sides alike.
		var without, with, noop time.Duration
		pinned := 0
		for r := 0; r < benchPods; r += 100 {
			d, _ := create(b, plain, r, r+100, false)
			without += d
			d, n := create(b, withNS, r, r+100, false)
			with += d
			pinned += n
			d, _ = create(b, withNS, r, r+100, true)
			noop += d
		}
		if pinned != benchPods {
			b.Fatalf("%d of %d pods pinned at admission: the benchmark would not measure the webhook", pinned, benchPods)
		}
		w, wo := float64(benchPods)/with.Seconds(), float64(benchPods)/without.Seconds()
		b.ReportMetric(wo, "pods/s-without")
		b.ReportMetric(w, "pods/s-with-webhook")
		b.ReportMetric(100*(wo-w)/wo, "%-slower")
		b.ReportMetric(float64(benchPods)/noop.Seconds(), "pods/s-webhook-no-patch")
	}
}

// namespace is env.Namespace for a benchmark.
func namespace(b *testing.B, env *testenv.Env, prefix string) string {
	return env.Namespace(b.Context(), b, prefix)
}

// BenchmarkGatedPath is the time from a pod's creation to its gate's
// removal for an image archfit has never read (cold: a new image each
// iteration, empty cache), from a registry that adds 20 ms to every
// request. It reports the median and the slowest.
func BenchmarkGatedPath(b *testing.B) {
	env := cluster.Env(b)
	ctx := b.Context()
	slow := httptest.NewServer(http.HandlerFunc(func() http.HandlerFunc {
		h := testenv.RegistryHandler()
		return func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(20 * time.Millisecond)
			h.ServeHTTP(w, r)
		}
	}()))
	defer slow.Close()
	reg := strings.TrimPrefix(slow.URL, "http://")
	ns := namespace(b, env, "bench-gated")
	startServe(b, env, ns, func(c *serve.Config) { c.Log = nil })
	var took []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		ref := fmt.Sprintf("%s/gated/app:%d", reg, i)
		img := testimage.Must(testimage.Spec{Platform: "linux/amd64", Entrypoint: []string{"/app"},
			Env:    []string{fmt.Sprintf("N=%d", i)},
			Layers: [][]testimage.File{{{Path: "/app", Data: testimage.ELF("amd64")}}}}.Build())
		testenv.Push(b, ref, img)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("g-%d", i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: ref}}}}
		b.StartTimer()
		start := time.Now()
		if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			p, err := env.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Spec.SchedulingGates) == 0 {
				if p.Annotations[serve.PinnedAnnotation] != "amd64" {
					b.Fatalf("ungated without the pin: %v", p.Annotations)
				}
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatal("still gated after a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
}
