package serve_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

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

// BenchmarkPodCreation creates pods through the real API server,
// benchClients at a time, in alternating rounds of 100 so that the
// machine's load drifts over every side alike, benchPods per side:
//
//   - without: no webhook is called for the namespace;
//   - without-preset: the same, the pods made as the webhooks leave them;
//   - archfit: archfit's webhook pins every pod (image known);
//   - archfit-no-patch: archfit's webhook is called and changes nothing
//     (a multi-arch image);
//   - archfit-skipped: plain pods annotated archfit.io/ignore: "true",
//     which the webhook's matchConditions keep from archfit;
//   - minimal: a minimal mutating webhook written here, which answers
//     every review with the same patch archfit computes as a constant (what
//     any webhook setting this affinity costs the API server);
//   - minimal-no-patch: the same webhook answering "allowed, no patch".
//
// It reports pods per second and the CPU per pod of the API server, etcd
// and this process (client and webhooks), read from /proc. The pods carry
// a gate of the benchmark's own so that the scheduler and the node twins
// stay out of the measurement. With ARCHFIT_BENCH_PROFILE=DIR it then
// profiles each side alone (the API server's /debug/pprof/profile and this
// process's, archfit's goroutines labelled component=archfit) into DIR.
// Run with -benchtime=1x.
func BenchmarkPodCreation(b *testing.B) {
	env := cluster.Env(b)
	ctx := b.Context()
	img := env.Registry + "/serve/bench:v1"
	testenv.Push(b, img, testimage.App("linux/amd64", "amd64"))
	multi := env.Registry + "/serve/bench-multi:v1"
	testenv.Push(b, multi, testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	// The client's own rate limit (env.Config's 50/s) must not be what
	// is measured.
	rc := rest.CopyConfig(env.Config)
	rc.QPS, rc.Burst, rc.WarningHandler = 5000, 5000, rest.NoWarnings{}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	apiPID, etcdPID := findPID(b, env.Dir, "kube-apiserver"), findPID(b, env.Dir, "etcd")
	hold := corev1.PodSchedulingGate{Name: "archfit.io/bench-hold"}
	var presetPod corev1.Pod // the benchmark pod with minimalPatch applied
	pod := func(ns string, i int, kind podKind) *corev1.Pod {
		switch kind {
		case preset:
			p := presetPod.DeepCopy()
			p.Namespace, p.Name = ns, fmt.Sprintf("p-%04d", i)
			return p
		case noPatch:
			// A pod the webhook is called for and lets through unchanged:
			// its image runs on every architecture.
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("n-%04d", i), Labels: map[string]string{"app": "bench", "bench": "no-patch"}},
				Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{hold},
					Containers: []corev1.Container{{Name: "app", Image: multi}}},
			}
		case optedOut:
			// A plain pod annotated archfit.io/ignore: "true": the
			// webhook's matchConditions skip it.
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("o-%04d", i), Labels: map[string]string{"app": "bench"},
					Annotations: map[string]string{serve.IgnoreKey: "true"}},
				Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{hold},
					Containers: []corev1.Container{{Name: "app", Image: img}}},
			}
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p-%04d", i), Labels: map[string]string{"app": "bench"}},
			Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{hold},
				Containers: []corev1.Container{{Name: "app", Image: img}}},
		}
	}
	{
		raw, err := json.Marshal(pod("", 0, plain))
		if err != nil {
			b.Fatal(err)
		}
		jp, err := jsonpatch.DecodePatch([]byte(minimalPatch))
		if err != nil {
			b.Fatal(err)
		}
		if raw, err = jp.Apply(raw); err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(raw, &presetPod); err != nil {
			b.Fatal(err)
		}
	}
	type side struct {
		name   string
		ns     string
		kind   podKind
		pinned bool // every pod must come back with the affinity
		took   time.Duration
		cpu    [3]time.Duration // API server, etcd, this process
		n      int
	}
	// create makes pods [from, to) of a side (until stop is closed when
	// to < 0), benchClients at a time, and returns how many it made.
	create := func(b *testing.B, sd *side, from, to int, stop <-chan struct{}) int {
		var next atomic.Int64
		next.Store(int64(from) - 1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		made := 0
		for range benchClients {
			wg.Add(1)
			go pprof.Do(ctx, pprof.Labels("component", "client"), func(ctx context.Context) {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if to >= 0 && i >= to {
						return
					}
					select {
					case <-stop:
						return
					default:
					}
					got, err := cs.CoreV1().Pods(sd.ns).Create(ctx, pod(sd.ns, i, sd.kind), metav1.CreateOptions{})
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					if err == nil {
						made++
						if pinned := got.Spec.Affinity != nil; pinned != sd.pinned && firstErr == nil {
							firstErr = fmt.Errorf("%s: pod %s pinned %v, want %v: the benchmark would not measure what it says", sd.name, got.Name, pinned, sd.pinned)
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		return made
	}
	for b.Loop() {
		archfitNS := namespace(b, env, "bench-webhook")
		minimalNS := namespace(b, env, "bench-minimal")
		sides := []*side{
			{name: "without", ns: namespace(b, env, "bench-plain")},
			// The pods as the webhooks leave them, made so by the client:
			// what storing the larger pod costs without any webhook.
			{name: "without-preset", ns: namespace(b, env, "bench-preset"), kind: preset, pinned: true},
			{name: "archfit", ns: archfitNS, pinned: true},
			{name: "archfit-no-patch", ns: archfitNS, kind: noPatch},
			// Pods the matchConditions keep from the webhook: what their
			// evaluation costs.
			{name: "archfit-skipped", ns: archfitNS, kind: optedOut},
			{name: "minimal", ns: minimalNS, pinned: true},
			{name: "minimal-no-patch", ns: minimalNS, kind: noPatch},
		}
		// The webhooks select their own namespace only: the API server
		// does not call them for the others' pods.
		var srv *running
		pprof.Do(ctx, pprof.Labels("component", "archfit"), func(context.Context) {
			srv = startServe(b, env, archfitNS, func(c *serve.Config) { c.Log = nil })
		})
		minimal := startMinimalWebhook(b, env, minimalNS)
		// Warm up: one pod of each image read through the gate, so the
		// rest hit.
		for _, p := range []*corev1.Pod{pod(archfitNS, 1<<20, plain), pod(archfitNS, 1<<20, noPatch)} {
			if _, err := env.Client.CoreV1().Pods(archfitNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			err := testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
				p, err := env.Client.CoreV1().Pods(archfitNS).Get(ctx, p.Name, metav1.GetOptions{})
				return err == nil && len(p.Spec.SchedulingGates) == 1, nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		load0 := loadAvg()
		for r := 0; r < benchPods; r += 100 {
			for _, sd := range sides {
				c0 := [3]time.Duration{procCPU(b, apiPID), procCPU(b, etcdPID), selfCPU()}
				start := time.Now()
				sd.n += create(b, sd, r, r+100, nil)
				sd.took += time.Since(start)
				c1 := [3]time.Duration{procCPU(b, apiPID), procCPU(b, etcdPID), selfCPU()}
				for k := range c1 {
					sd.cpu[k] += c1[k] - c0[k]
				}
			}
		}
		fmt.Fprintf(os.Stderr, "load average %s before, %s after\n", load0, loadAvg())
		// The control is honest only if it makes the pods archfit makes.
		var made [2]*corev1.Pod
		for k, ns := range []string{archfitNS, minimalNS} {
			if made[k], err = env.Client.CoreV1().Pods(ns).Get(ctx, "p-0000", metav1.GetOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if !reflect.DeepEqual(made[0].Spec.Affinity, made[1].Spec.Affinity) || !reflect.DeepEqual(made[0].Spec.Tolerations, made[1].Spec.Tolerations) ||
			!maps.Equal(made[0].Annotations, made[1].Annotations) {
			b.Fatalf("the minimal webhook makes another pod than archfit:\n%v %v %v\n%v %v %v", made[0].Annotations, made[0].Spec.Affinity, made[0].Spec.Tolerations,
				made[1].Annotations, made[1].Spec.Affinity, made[1].Spec.Tolerations)
		}
		perPod := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }
		wo := float64(sides[0].n) / sides[0].took.Seconds()
		for _, sd := range sides {
			rate := float64(sd.n) / sd.took.Seconds()
			b.ReportMetric(rate, "pods/s-"+sd.name)
			fmt.Fprintf(os.Stderr, "%-17s %4d pods %6.1f pods/s (%+5.1f %%)  CPU µs/pod: API server %5.0f  etcd %4.0f  this process %4.0f\n",
				sd.name, sd.n, rate, 100*(rate-wo)/wo, perPod(sd.cpu[0], sd.n), perPod(sd.cpu[1], sd.n), perPod(sd.cpu[2], sd.n))
		}
		b.ReportMetric(100*(wo-float64(sides[1].n)/sides[1].took.Seconds())/wo, "%-slower")
		b.Logf("connections to archfit's webhook port: %v; to the minimal one's: %v; archfit negotiates %q",
			tcpStates(b, srv.webhook), tcpStates(b, minimal.addr), negotiated(b, srv.webhook))
		if minimal.calls.Load() > 0 {
			b.Logf("minimal webhook: %d calls, protocols %v", minimal.calls.Load(), minimal.protos())
		}
		if dir := os.Getenv("ARCHFIT_BENCH_PROFILE"); dir != "" {
			for _, sd := range sides {
				profileSide(b, env, dir, sd.name, func(stop <-chan struct{}) int {
					return create(b, sd, 100000, -1, stop)
				})
			}
		}
	}
}

// podKind is what BenchmarkPodCreation's pods are like.
type podKind int

const (
	plain    podKind = iota // image for amd64 only, nothing else set
	preset                  // plain with minimalPatch applied by the client
	noPatch                 // a multi-arch image: nothing to change
	optedOut                // plain, annotated archfit.io/ignore: "true"
)

// profileSide profiles the API server (its /debug/pprof/profile) and this
// process for 6 seconds while run creates pods, and writes both profiles
// and the pods made into dir.
func profileSide(b *testing.B, env *testenv.Env, dir, name string, run func(stop <-chan struct{}) int) {
	const seconds = 6
	f, err := os.Create(filepath.Join(dir, "self-"+name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	done := make(chan []byte, 1)
	go func() {
		defer close(stop)
		raw, err := env.Client.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", fmt.Sprint(seconds)).DoRaw(b.Context())
		if err != nil {
			b.Errorf("API server profile: %v", err)
		}
		done <- raw
	}()
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	n := run(stop)
	pprof.StopCPUProfile()
	if err := os.WriteFile(filepath.Join(dir, "apiserver-"+name+".pprof"), <-done, 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "profiled %s: %d pods in %d s\n", name, n, seconds)
}

// minimalWebhook is the control: the least a mutating webhook can do,
// answering every review with one constant JSON patch (the one archfit
// computes for the benchmark's pods), served by net/http with HTTP/2.
type minimalWebhook struct {
	addr  string
	calls atomic.Int64
	mu    sync.Mutex
	proto map[string]int
}

func (m *minimalWebhook) protos() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.proto)
}

// minimalPatch is archfit's patch of the benchmark's pod (no annotations,
// no affinity, the image runs on amd64 only), as a constant.
const minimalPatch = `[{"op":"add","path":"/spec/affinity","value":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["amd64"]}]}]}}}},{"op":"add","path":"/metadata/annotations","value":{"archfit.io/pinned":"amd64"}}]`

func startMinimalWebhook(b *testing.B, env *testenv.Env, ns string) *minimalWebhook {
	m := &minimalWebhook{proto: map[string]int{}}
	patch := base64.StdEncoding.EncodeToString([]byte(minimalPatch))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.calls.Add(1)
		m.mu.Lock()
		m.proto[r.Proto]++
		m.mu.Unlock()
		var review struct {
			Request struct {
				UID    string `json:"uid"`
				Object struct {
					Metadata struct {
						Labels map[string]string `json:"labels"`
					} `json:"metadata"`
				} `json:"object"`
			} `json:"request"`
		}
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if review.Request.Object.Metadata.Labels["bench"] == "no-patch" {
			fmt.Fprintf(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":%q,"allowed":true}}`, review.Request.UID)
			return
		}
		fmt.Fprintf(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":%q,"allowed":true,"patchType":"JSONPatch","patch":%q}}`, review.Request.UID, patch)
	}))
	srv.EnableHTTP2 = true
	pprof.Do(b.Context(), pprof.Labels("component", "minimal"), func(context.Context) { srv.StartTLS() })
	b.Cleanup(srv.Close)
	m.addr = srv.Listener.Addr().String()
	url := srv.URL + "/"
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := serve.Webhook("archfit-bench-minimal-"+ns, "", &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
		admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca})
	api := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(b.Context(), cfg, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = api.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{}) })
	// The API server calls a new webhook once its configuration informer
	// has it: wait for the first call.
	err := testenv.Poll(b.Context(), time.Minute, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: ns, Labels: map[string]string{"bench": "no-patch"}},
			Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{{Name: "archfit.io/bench-hold"}}, Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
		_, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		return err == nil && m.calls.Load() > 0, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	m.calls.Store(0)
	return m
}

// findPID finds the process of a test environment component by its binary
// name and the environment's directory in its command line.
func findPID(b *testing.B, dir, bin string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if filepath.Base(args[0]) == bin && strings.Contains(string(cmd), dir) {
			return pid
		}
	}
	b.Skipf("no %s process with %s in its command line", bin, dir)
	return 0
}

// procCPU is a process's user+system CPU time so far.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// tcpStates counts the TCP sockets with addr at either end by state
// (ESTABLISHED, TIME_WAIT...): a handful of established ones and no
// TIME_WAIT mean the API server keeps its connections to the webhook.
func tcpStates(b *testing.B, addr string) map[string]int {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	hexPort := fmt.Sprintf(":%04X", p)
	names := map[string]string{"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}
	out := map[string]int{}
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || !(strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort)) {
			continue
		}
		st := names[f[3]]
		if st == "" {
			st = f[3]
		}
		out[st]++
	}
	return out
}

// negotiated is the application protocol archfit's webhook server agrees
// to when offered HTTP/2 and HTTP/1.1, as the API server offers them.
func negotiated(b *testing.B, addr string) string {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // only the protocol is read
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().NegotiatedProtocol
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
