// Package livebench measures archfit against a live API server at scale
// (issue 13): thousands of pods on the real test cluster (internal/testenv),
// and the archfit binary's audit, plan and diagnose run as whole processes,
// beside what a user would script and an ideal client. It is a benchmark,
// not a timed test: it runs only with ARCHFIT_BENCH_LIVE=1
// (hack/bench-live.sh, make bench) and asserts only what must hold at any
// speed (the crash loops are found, logs are read once per group).
package livebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testenv/proc"
	"github.com/archfit/archfit/internal/testenv/twin"
	"github.com/archfit/archfit/internal/testimage"
)

var shared testenv.Shared

// childEnv names the client a child process of this test binary plays
// (ideal or script) against the kubeconfig in childKubeconfig: whole-process
// numbers for them too, apart from the cluster this process hosts.
const (
	childEnv        = "ARCHFIT_LIVEBENCH_CLIENT"
	childKubeconfig = "ARCHFIT_LIVEBENCH_KUBECONFIG"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if c := os.Getenv(childEnv); c != "" {
		os.Exit(runChild(c, os.Getenv(childKubeconfig)))
	}
	if os.Getenv("ARCHFIT_BENCH_LIVE") == "" {
		os.Exit(m.Run()) // the test skips
	}
	pool := twin.DefaultPool()
	for i := range pool {
		pool[i].Pods = 5000
	}
	os.Exit(testenv.Main(m, &shared, testenv.WithNodes(pool...), testenv.WithQPS(400)))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// fleet is what the benchmark creates.
type fleet struct {
	pods, workloads     int // healthy, in all
	failing, crashWorks int // crash-looping pods and their workloads
	images              int
	namespaces          []string
}

func deploymentOf(ns, name, image string, replicas int32, arch string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	spec := corev1.PodSpec{
		Containers:                    []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent}},
		TerminationGracePeriodSeconds: ptr.To[int64](1),
	}
	if arch != "" {
		spec.NodeSelector = map[string]string{"kubernetes.io/arch": arch}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

// build creates the fleet through the real controllers: Deployments, whose
// ReplicaSets and pods the controller-manager makes, the scheduler binds and
// the twins run. Healthy workloads use multi-arch images; the crashing ones
// an amd64-only image pinned to arm64 (runc: exit 255 `exec /app: exec
// format error`; crun on the CRI-O node: exit 1).
func build(ctx context.Context, t *testing.T, env *testenv.Env, f *fleet) {
	reg := env.Registry
	multi := testimage.MultiArch("linux/amd64", "linux/arm64/v8")
	for i := range f.images {
		testenv.Push(t, fmt.Sprintf("%s/bench/app%d:1", reg, i), multi)
	}
	crash := reg + "/bench/amd-only:1"
	testenv.Push(t, crash, testimage.App("linux/amd64", "amd64"))
	nsCount := max(1, f.workloads/100)
	for range nsCount {
		f.namespaces = append(f.namespaces, env.Namespace(ctx, t, "bench"))
	}
	healthyWorks := f.workloads - f.crashWorks
	var deps []*appsv1.Deployment
	for i := range healthyWorks {
		n := f.pods / healthyWorks
		if i < f.pods%healthyWorks {
			n++
		}
		ns := f.namespaces[i%nsCount]
		deps = append(deps, deploymentOf(ns, fmt.Sprintf("svc-%d", i), fmt.Sprintf("%s/bench/app%d:1", reg, i%f.images), int32(n), ""))
	}
	for i := range f.crashWorks {
		n := f.failing / f.crashWorks
		if i < f.failing%f.crashWorks {
			n++
		}
		deps = append(deps, deploymentOf(f.namespaces[0], fmt.Sprintf("crash-%d", i), crash, int32(n), "arm64"))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, d := range deps {
		g.Go(func() error {
			_, err := env.Client.AppsV1().Deployments(d.Namespace).Create(gctx, d, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("creating deployments: %v", err)
	}
}

// settled counts running and crash-looping pods.
func settled(ctx context.Context, cs kubernetes.Interface) (running, crashed, total int, err error) {
	var cont string
	for {
		list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1000, Continue: cont})
		if err != nil {
			return 0, 0, 0, err
		}
		for i := range list.Items {
			pod := &list.Items[i]
			if !strings.HasPrefix(pod.Namespace, "bench-") {
				continue
			}
			total++
			for _, c := range pod.Status.ContainerStatuses {
				switch {
				case c.State.Running != nil && c.Ready:
					running++
				case c.RestartCount > 0 && c.LastTerminationState.Terminated != nil:
					crashed++
				}
			}
		}
		if cont = list.Continue; cont == "" {
			return running, crashed, total, nil
		}
	}
}

// run is one measured process.
type run struct {
	what            string
	wall            time.Duration
	user, sys       time.Duration
	maxRSS          int64 // KiB
	selfRequests    int64 // as the process counted them (-1: unknown)
	byVerb          map[string]float64
	stdout, stderr  []byte
	exitCode        int
	logReads        float64
	listRequests    float64
	otherAPIRequest float64
}

var metricLine = regexp.MustCompile(`^apiserver_request_total\{(.*)\} ([0-9.e+]+)$`)
var labelRe = regexp.MustCompile(`(\w+)="([^"]*)"`)

// requestCounts reads the API server's apiserver_request_total by
// "VERB resource[/subresource]".
func requestCounts(ctx context.Context, t *testing.T, cs kubernetes.Interface) map[string]float64 {
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRe.FindAllStringSubmatch(m[1], -1) {
			labels[l[1]] = l[2]
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		key := labels["verb"] + " " + labels["resource"]
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		out[key] += v
	}
	return out
}

// background is what the cluster's own components do while a client runs
// (twins writing pod status, events and leases; controllers): those verbs
// are left out of a client's count. Clients here only LIST and GET logs,
// discovery and pull secrets.
func clientRequest(key string) bool {
	verb, res, _ := strings.Cut(key, " ")
	if strings.HasSuffix(res, "/log") {
		return true
	}
	switch verb {
	case "LIST":
		return true
	case "CONNECT": // pods/log
		return true
	case "GET":
		return res == "pods/log" || res == "secrets" || res == "serviceaccounts" || res == "deployments" || res == "replicasets"
	}
	return false
}

func measure(ctx context.Context, t *testing.T, env *testenv.Env, what string, cmd *exec.Cmd) run {
	t.Helper()
	before := requestCounts(ctx, t, env.Client)
	// proc.Run measures the child alone (GNU time), not with this
	// process's memory as wait4's rusage would.
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	u, err := proc.Run(cmd)
	r := run{what: what, wall: u.Wall, stdout: out.Bytes(), stderr: errOut.Bytes(), selfRequests: -1, byVerb: map[string]float64{},
		user: u.User, sys: u.Sys, maxRSS: u.MaxRSSKiB}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.exitCode = ee.ExitCode()
		} else {
			t.Fatalf("%s: %v", what, err)
		}
	}
	after := requestCounts(ctx, t, env.Client)
	for k, v := range after {
		if d := v - before[k]; d > 0 && clientRequest(k) {
			r.byVerb[k] = d
			switch {
			case strings.HasSuffix(k, " pods/log"):
				r.logReads += d
			case strings.HasPrefix(k, "LIST "):
				r.listRequests += d
			default:
				r.otherAPIRequest += d
			}
		}
	}
	return r
}

func (r run) verbs() string {
	var keys []string
	for k := range r.byVerb {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, r.byVerb[k]))
	}
	return strings.Join(parts, ", ")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

var selfCount = regexp.MustCompile(`(\d+) API request\(s\)`)

func TestLiveScale(t *testing.T) {
	if os.Getenv("ARCHFIT_BENCH_LIVE") == "" {
		t.Skip("set ARCHFIT_BENCH_LIVE=1 (hack/bench-live.sh)")
	}
	env := shared.Env(t)
	ctx := t.Context()
	f := &fleet{
		pods:       envInt("ARCHFIT_BENCH_LIVE_PODS", 4500),
		workloads:  envInt("ARCHFIT_BENCH_LIVE_WORKLOADS", 1000),
		failing:    envInt("ARCHFIT_BENCH_LIVE_FAILING", 500),
		crashWorks: envInt("ARCHFIT_BENCH_LIVE_CRASH_WORKLOADS", 5),
		images:     envInt("ARCHFIT_BENCH_LIVE_IMAGES", 20),
	}
	begin := time.Now()
	build(ctx, t, env, f)
	var last string
	err := testenv.Poll(ctx, 30*time.Minute, func(ctx context.Context) (bool, error) {
		time.Sleep(3 * time.Second)
		running, crashed, total, err := settled(ctx, env.Client)
		if err != nil {
			return false, nil
		}
		last = fmt.Sprintf("%d pods: %d running, %d crash-looping", total, running, crashed)
		return running >= f.pods && crashed >= f.failing, nil
	})
	if err != nil {
		t.Fatalf("waiting for the fleet: %v (%s)", err, last)
	}
	t.Logf("fleet: %d healthy pods in %d workloads, %d crash-looping pods in %d workloads, %d namespaces, up in %s (load %s)",
		f.pods, f.workloads-f.crashWorks, f.failing, f.crashWorks, len(f.namespaces), time.Since(begin).Round(time.Second), loadAvg())

	bin := os.Getenv("ARCHFIT_BENCH_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "archfit")
		b := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/archfit/archfit/cmd/archfit")
		if out, err := b.CombinedOutput(); err != nil {
			t.Fatalf("building archfit: %v\n%s", err, out)
		}
	}
	cache := t.TempDir()
	// ARCHFIT_BENCH_LIVE_PROFILES=DIR keeps a CPU and a heap profile of each
	// archfit run there (cmd/archfit's ARCHFIT_CPUPROFILE, ARCHFIT_MEMPROFILE)
	// and prints their tops.
	profiles := os.Getenv("ARCHFIT_BENCH_LIVE_PROFILES")
	var profiled []string
	archfit := func(args ...string) *exec.Cmd {
		args = append(args, "-A", "--kubeconfig", env.Kubeconfig, "--cache-dir", cache, "-o", "json")
		if args[0] != "plan" {
			args = append(args, "--fail-on", "never")
		}
		c := exec.CommandContext(ctx, bin, args...)
		c.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
		if profiles != "" {
			base := filepath.Join(profiles, fmt.Sprintf("%d-%s", len(profiled), args[0]))
			profiled = append(profiled, base)
			c.Env = append(c.Env, "ARCHFIT_CPUPROFILE="+base+".cpu", "ARCHFIT_MEMPROFILE="+base+".heap")
		}
		return c
	}
	child := func(mode string) *exec.Cmd {
		c := exec.CommandContext(ctx, os.Args[0])
		c.Env = append(os.Environ(), childEnv+"="+mode, childKubeconfig+"="+env.Kubeconfig)
		return c
	}
	var runs []run
	add := func(r run) run {
		if m := selfCount.FindSubmatch(r.stderr); m != nil {
			r.selfRequests, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
		if r.exitCode != 0 {
			t.Errorf("%s exited %d:\n%s", r.what, r.exitCode, r.stderr)
		}
		runs = append(runs, r)
		return r
	}
	// Warm the image cache first: what is measured is the API side.
	add(measure(ctx, t, env, "archfit audit (cold image cache)", archfit("audit")))
	for _, cmd := range []string{"audit", "plan", "diagnose"} {
		add(measure(ctx, t, env, "archfit "+cmd, archfit(cmd)))
	}
	diag := runs[len(runs)-1]
	// The same commands from another build (A/B), e.g. the commit before a change.
	if base := os.Getenv("ARCHFIT_BENCH_BASE_BIN"); base != "" {
		for _, cmd := range []string{"audit", "diagnose"} {
			c := archfit(cmd)
			c.Path, c.Args[0] = base, base
			add(measure(ctx, t, env, "base build: archfit "+cmd, c))
		}
	}
	add(measure(ctx, t, env, "ideal client: lists for audit", child("ideal-audit")))
	add(measure(ctx, t, env, "ideal client: lists + one log per group", child("ideal-diagnose")))
	if kubectl := os.Getenv("ARCHFIT_BENCH_KUBECTL"); kubectl != "" {
		sh := exec.CommandContext(ctx, "sh", "-c", `"$KUBECTL" get pods -A -o json > "$OUT"`)
		sh.Env = append(os.Environ(), "KUBECTL="+kubectl, "KUBECONFIG="+env.Kubeconfig, "OUT="+filepath.Join(t.TempDir(), "pods.json"))
		add(measure(ctx, t, env, "kubectl get pods -A -o json", sh))
		// The same cluster as a file: what `audit -f` reads when a user
		// dumps a real cluster (pods the API server and its controllers
		// wrote, with managed fields, volumes, statuses), rather than the
		// synthetic dumps of hack/bench-audit.sh. Warm image cache.
		dump := filepath.Join(t.TempDir(), "dump.json")
		if profiles != "" {
			dump = filepath.Join(profiles, "dump.json") // kept, to profile by hand
		}
		get := exec.CommandContext(ctx, kubectl, "get", "nodes,pods,replicasets,deployments", "-A", "-o", "json")
		get.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
		out, err := get.Output()
		if err != nil {
			t.Fatalf("kubectl get: %v", err)
		}
		if err := os.WriteFile(dump, out, 0o600); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			c := exec.CommandContext(ctx, bin, "audit", "-f", dump, "--cache-dir", cache, "-o", "json", "--fail-on", "never")
			if profiles != "" && i == 1 {
				base := filepath.Join(profiles, fmt.Sprintf("%d-audit-file", len(profiled)))
				profiled = append(profiled, base)
				c.Env = append(os.Environ(), "ARCHFIT_CPUPROFILE="+base+".cpu", "ARCHFIT_MEMPROFILE="+base+".heap")
			}
			add(measure(ctx, t, env, fmt.Sprintf("archfit audit -f (that dump: %.1f MB)", float64(len(out))/1e6), c))
		}
		add(measure(ctx, t, env, "kubectl logs --previous loop (failing pods)", scriptLoop(ctx, t, env, kubectl)))
	}
	add(measure(ctx, t, env, "script in client-go: list pods + one log per failing pod", child("script")))

	// What must hold at any speed: every crash loop is diagnosed, and logs
	// are read once per group, not once per pod.
	var doc struct {
		Findings []struct {
			Code     string   `json:"code"`
			Evidence []string `json:"evidence"`
			Workload struct{ Name string }
		} `json:"findings"`
		Extra struct {
			Stats map[string]any `json:"stats"`
		} `json:"extra"`
	}
	if err := json.Unmarshal(diag.stdout, &doc); err != nil {
		t.Fatalf("diagnose output: %v", err)
	}
	diagnosed := map[string]bool{}
	for _, fd := range doc.Findings {
		if strings.HasPrefix(fd.Workload.Name, "crash-") {
			for _, e := range fd.Evidence {
				if strings.Contains(strings.ToLower(e), "exec format error") {
					diagnosed[fd.Workload.Name] = true
				}
			}
		}
	}
	if len(diagnosed) != f.crashWorks {
		t.Errorf("diagnosed with a log's evidence: %v, want all %d crash workloads", diagnosed, f.crashWorks)
	}
	t.Logf("diagnose stats: %v", doc.Extra.Stats)

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-58s %8s %9s %8s %9s %7s %6s  %s\n", "live, all namespaces", "wall", "CPU u+s", "RSS MB", "requests", "lists", "logs", "by verb (API server metrics)")
	for _, r := range runs {
		self := "-"
		if r.selfRequests >= 0 {
			self = strconv.FormatInt(r.selfRequests, 10)
		}
		fmt.Fprintf(&b, "%-58s %7.2fs %8.2fs %8.0f %9s %7.0f %6.0f  %s\n", r.what, r.wall.Seconds(), (r.user + r.sys).Seconds(),
			float64(r.maxRSS)/1024, self, r.listRequests, r.logReads, r.verbs())
	}
	fmt.Fprintf(&b, "load average after: %s\n", loadAvg())
	t.Log(b.String())
	for _, p := range profiled {
		for _, args := range [][]string{{p + ".cpu"}, {"-sample_index=alloc_space", p + ".heap"}, {"-sample_index=inuse_space", p + ".heap"}} {
			pp := append(append([]string{"tool", "pprof", "-top", "-nodecount=12"}, args[:len(args)-1]...), bin, args[len(args)-1])
			out, err := exec.CommandContext(ctx, "go", pp...).CombinedOutput()
			if err != nil {
				t.Logf("pprof %v: %v", args, err)
			}
			t.Logf("%s %v:\n%s", filepath.Base(p), args[:len(args)-1], out)
		}
	}
}

// scriptLoop is the shell a user would write: one `kubectl logs
// --previous` per crash-looping pod.
func scriptLoop(ctx context.Context, t *testing.T, env *testenv.Env, kubectl string) *exec.Cmd {
	var lines []string
	var cont string
	for {
		list, err := env.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1000, Continue: cont})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			for _, c := range p.Status.ContainerStatuses {
				if c.RestartCount > 0 {
					lines = append(lines, p.Namespace+" "+p.Name+" "+c.Name)
				}
			}
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	list := filepath.Join(t.TempDir(), "failing.txt")
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh := exec.CommandContext(ctx, "sh", "-c", `while read ns pod c; do "$KUBECTL" logs -n "$ns" "$pod" -c "$c" --previous --limit-bytes=16384 >/dev/null; done < "$LIST"`)
	sh.Env = append(os.Environ(), "KUBECTL="+kubectl, "KUBECONFIG="+env.Kubeconfig, "LIST="+list)
	return sh
}
