package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/testenv/proc"
)

// writeDump writes snap as a kubectl dump (`kubectl get deploy,rs,pods -A
// -o json`): Deployments, their ReplicaSets and the pods they own, each pod
// as the API server stores it (apiServerPod: 3.4 KB of JSON; a real
// 5,000-pod dump of the live benchmark's cluster was 43.7 MB with its
// ReplicaSets, Deployments and nodes). ARCHFIT_BENCH_BARE_PODS=1 writes the
// bare pods the first rounds of issue 13 measured (0.6 KB).

func writeDump(t *testing.T, snap *cluster.Snapshot, path string) {
	t.Helper()
	var items []runtime.RawExtension
	add := func(o any) {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, runtime.RawExtension{Raw: b})
	}
	ctrl := true
	bare := os.Getenv("ARCHFIT_BENCH_BARE_PODS") == "1"
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, w := range snap.Workloads {
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": w.Ref.Name}}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels}, Spec: w.Template.Spec}
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: w.Ref.Name, Namespace: w.Ref.Namespace, UID: types.UID("d-" + w.Ref.Namespace + "-" + w.Ref.Name)},
			Spec:       appsv1.DeploymentSpec{Replicas: w.Replicas, Selector: sel, Template: tmpl}}
		add(d)
		rsName := w.Ref.Name + "-5d8f7c9b6"
		rs := &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
			ObjectMeta: metav1.ObjectMeta{Name: rsName, Namespace: w.Ref.Namespace, UID: types.UID("rs-" + w.Ref.Namespace + "-" + rsName),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &ctrl}}},
			Spec: appsv1.ReplicaSetSpec{Replicas: w.Replicas, Selector: sel, Template: tmpl}}
		add(rs)
		for _, p := range w.Pods {
			pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: sel.MatchLabels,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &ctrl}}},
				Spec: p.Spec, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
			if !bare {
				pod = apiServerPod(pod, rnd)
			}
			add(pod)
		}
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// apiServerPod is p as `kubectl get pod -o json` shows it once the API
// server and the kubelet are done: a uid and resourceVersion, the
// ServiceAccount admission plugin's token volume (named at random per pod)
// mounted in every container, the defaulted fields, and a running status
// with conditions and container statuses.
func apiServerPod(p *corev1.Pod, rnd *rand.Rand) *corev1.Pod {
	p = p.DeepCopy()
	const alpha = "bcdfghjklmnpqrstvwxz2456789"
	suffix := make([]byte, 5)
	for i := range suffix {
		suffix[i] = alpha[rnd.IntN(len(alpha))]
	}
	vol := "kube-api-access-" + string(suffix)
	at := metav1.NewTime(time.Date(2026, 12, 1, 6, 30, 0, 0, time.UTC))
	p.UID = types.UID(fmt.Sprintf("%08x-0000-4000-8000-%012x", rnd.Uint32(), rnd.Uint64()>>16))
	p.ResourceVersion = fmt.Sprint(1000 + rnd.IntN(900000))
	p.CreationTimestamp = at
	p.GenerateName = p.Name[:strings.LastIndexByte(p.Name, '-')+1]
	mount := corev1.VolumeMount{Name: vol, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](420),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		}}}})
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			c.VolumeMounts = append(c.VolumeMounts, mount)
			c.TerminationMessagePath, c.TerminationMessagePolicy, c.ImagePullPolicy = "/dev/termination-log", corev1.TerminationMessageReadFile, corev1.PullIfNotPresent
		}
	}
	p.Spec.DNSPolicy, p.Spec.RestartPolicy, p.Spec.SchedulerName = corev1.DNSClusterFirst, corev1.RestartPolicyAlways, "default-scheduler"
	p.Spec.SecurityContext = &corev1.PodSecurityContext{}
	p.Spec.ServiceAccountName, p.Spec.DeprecatedServiceAccount = "default", "default"
	p.Spec.TerminationGracePeriodSeconds, p.Spec.EnableServiceLinks = ptr.To[int64](30), ptr.To(true)
	p.Spec.PreemptionPolicy, p.Spec.Priority = ptr.To(corev1.PreemptLowerPriority), ptr.To[int32](0)
	for _, k := range []string{"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} {
		p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)})
	}
	ip := fmt.Sprintf("10.%d.%d.%d", rnd.IntN(256), rnd.IntN(256), 1+rnd.IntN(254))
	st := &p.Status
	for _, c := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: at})
	}
	st.HostIP, st.PodIP, st.QOSClass, st.StartTime = fmt.Sprintf("192.168.0.%d", 1+rnd.IntN(254)), ip, corev1.PodQOSBestEffort, &at
	st.HostIPs, st.PodIPs = []corev1.HostIP{{IP: st.HostIP}}, []corev1.PodIP{{IP: ip}}
	for _, c := range p.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, // no imageID: the digests are not known here (audit reads none)
			ContainerID: "containerd://" + fmt.Sprintf("%016x%016x%016x%016x", rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), rnd.Uint64()),
			Ready:       true, Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}},
			VolumeMounts: []corev1.VolumeMountStatus{{Name: vol, MountPath: mount.MountPath, ReadOnly: true, RecursiveReadOnly: ptr.To(corev1.RecursiveReadOnlyDisabled)}},
		})
	}
	return p
}

// procStats is one whole process as a user waits for it: wall time, CPU
// (user+sys) and its own peak RSS (GNU time's, as `/usr/bin/time -v`
// reports it: see internal/testenv/proc for why not the child's rusage).
type procStats struct {
	wall, cpu time.Duration
	rssKiB    int64
}

// runProcess runs bin with args and measures it.
func runProcess(t *testing.T, env []string, bin string, args ...string) procStats {
	t.Helper()
	return runProcessTo(t, filepath.Join(t.TempDir(), "out"), env, bin, args...)
}

// runProcessTo is runProcess writing the process's stdout to outPath.
func runProcessTo(t *testing.T, outPath string, env []string, bin string, args ...string) procStats {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout = out
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	u, err := proc.Run(cmd)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 { // 3: findings, expected here
			t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.b)
		}
	}
	if u.RSSUpperBound {
		t.Logf("%s is missing: peak RSS is wait4's, which includes this test process's own", proc.TimeBinary)
	}
	return procStats{wall: u.Wall, cpu: u.CPU(), rssKiB: u.MaxRSSKiB}
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

// benchRow is one line of the whole-process table.
type benchRow struct {
	what     string
	pods     int
	st       procStats
	requests int64
	note     string
}

func printTable(rows []benchRow) {
	fmt.Println("\n| run | pods | wall | CPU (user+sys) | registry requests | peak RSS | note |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		cpu, rss := "", ""
		if r.st.cpu > 0 {
			cpu = r.st.cpu.Round(10 * time.Millisecond).String()
		}
		if r.st.rssKiB > 0 {
			rss = fmt.Sprintf("%.0f MB", float64(r.st.rssKiB)/1024)
		}
		fmt.Printf("| %s | %d | %v | %s | %d | %s | %s |\n", r.what, r.pods, r.st.wall.Round(10*time.Millisecond), cpu, r.requests, rss, r.note)
	}
}

// processReport is the whole-process part of TestScaleReport: the archfit
// binary at ARCHFIT_BENCH_BIN audits a kubectl dump of the fleet of sc
// against its slow registry, cold (empty cache) then warm, as a user runs
// it: `archfit audit -f dump.json -o json --verify`. Beside them: the
// ideal client of issue 13 (idealClient: what verification needs, 16 in
// flight, nothing else), and the time the cold run's own requests take at
// 16 in flight. With profile, one more warm run is profiled.
func processReport(t *testing.T, sc benchScale, bin string, profile bool) []benchRow {
	env := setupBenchScale(sc)
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump.json")
	writeDump(t, env.snap, dump)
	fi, err := os.Stat(dump)
	if err != nil {
		t.Fatal(err)
	}
	pods := len(env.snap.Pods)
	cache := filepath.Join(dir, "cache")
	// --tag-ttl: the 100,000-pod cold run takes longer than the default
	// minute, after which warm would check every tag again.
	args := []string{"audit", "-f", dump, "-o", "json", "--verify", "--cache-dir", cache, "--concurrency", fmt.Sprint(benchConcurrency), "--tag-ttl", "1h"}
	env.reg.requests.Store(0)
	cold := runProcess(t, nil, bin, args...)
	coldReqs := env.reg.requests.Load()
	env.reg.requests.Store(0)
	warm := runProcess(t, nil, bin, args...)
	warmReqs := env.reg.requests.Load()
	// The ideal client of issue 13, run against the same registry right
	// after (see idealClient).
	env.reg.requests.Store(0)
	ideal, err := idealClient(context.Background(), strings.TrimPrefix(env.srv.URL, "http://"), env.refs)
	if err != nil {
		t.Fatal(err)
	}
	idealReqs := env.reg.requests.Load()
	lower := time.Duration((coldReqs+benchConcurrency-1)/benchConcurrency) * benchLatency
	rows := []benchRow{
		{what: "archfit audit, cold", pods: pods, st: cold, requests: coldReqs,
			note: fmt.Sprintf("dump %.1f MB, %d workloads, %d images; cold / ideal client = %.2f; its %d requests take %v at 16 in flight", float64(fi.Size())/1e6, len(env.snap.Workloads), len(env.refs), float64(cold.wall)/float64(ideal), coldReqs, lower)},
		{what: "archfit audit, warm", pods: pods, st: warm, requests: warmReqs,
			note: fmt.Sprintf("%.0f%% of cold wall, %.0f%% of cold CPU", 100*float64(warm.wall)/float64(cold.wall), 100*float64(warm.cpu)/float64(cold.cpu))},
		{what: "ideal client: manifest, config and top layer per entry, 16 in flight (in process)", pods: pods, st: procStats{wall: ideal}, requests: idealReqs,
			note: fmt.Sprintf("load average %s", loadAvg())},
	}
	if !profile {
		return rows
	}
	// Where the warm process spends its time and allocates: one more warm
	// run, profiled (ARCHFIT_CPUPROFILE, ARCHFIT_MEMPROFILE).
	// ARCHFIT_BENCH_PROFILES keeps the profiles (and the dump) in that
	// directory for `go tool pprof -list`.
	keep := os.Getenv("ARCHFIT_BENCH_PROFILES")
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatal(err)
		}
		dir = keep
		if b, err := os.ReadFile(dump); err == nil {
			_ = os.WriteFile(filepath.Join(keep, "dump.json"), b, 0o644)
		}
	}
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	runProcess(t, []string{"ARCHFIT_CPUPROFILE=" + cpu, "ARCHFIT_MEMPROFILE=" + mem}, bin, args...)
	for _, p := range []struct{ what, file, flag string }{
		{"CPU of the warm process", cpu, "-top"},
		{"allocated bytes of the warm process", mem, "-sample_index=alloc_space"},
	} {
		top := []string{"tool", "pprof", "-top", "-cum", "-nodecount=25"}
		if p.flag != "-top" {
			top = append(top, p.flag)
		}
		out, err := exec.Command("go", append(top, bin, p.file)...).CombinedOutput()
		if err != nil {
			t.Logf("pprof %s: %v\n%s", p.file, err, out)
			continue
		}
		fmt.Printf("  %s, %d pods (go tool pprof %s):\n%s", p.what, pods, p.file, out)
	}
	return rows
}

// TestBenchServe is for profiling by hand: with ARCHFIT_BENCH_SERVE=DIR it
// writes DIR/dump-small.json and DIR/dump-large.json (the two benchmark
// fleets), then serves their slow registry until DIR/stop exists, so that
// `archfit audit -f DIR/dump-large.json` can be run, profiled and compared
// before and after a change.
func TestBenchServe(t *testing.T) {
	dir := os.Getenv("ARCHFIT_BENCH_SERVE")
	if dir == "" {
		t.Skip("set ARCHFIT_BENCH_SERVE=DIR")
	}
	for name, sc := range map[string]benchScale{"small": benchSmall, "large": benchLarge} {
		env := setupBenchScale(sc)
		writeDump(t, env.snap, filepath.Join(dir, "dump-"+name+".json"))
	}
	fmt.Println("serving; touch", filepath.Join(dir, "stop"), "to end")
	for {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}

// idealClient is the yardstick of issue 13's cold goal: a client that
// reads exactly what verifying the bench's images needs — each reference's
// manifest or index (by tag), each runnable entry's manifest, then per entry
// its config and its top layer (read whole; the bench's entrypoint is
// there) — with at most benchConcurrency requests in flight and every
// image's chain started at once, so that a request waits only for the one
// it depends on and for a free slot. It knows nothing archfit knows (no
// cache, no layer shared between entries): its requests are counted by the
// registry like archfit's.
func idealClient(ctx context.Context, host string, refs []string) (time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * benchConcurrency}}
	defer client.CloseIdleConnections()
	sem := make(chan struct{}, benchConcurrency)
	get := func(path, accept string) ([]byte, string, error) {
		sem <- struct{}{}
		defer func() { <-sem }()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
		if err != nil {
			return nil, "", err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return b, resp.Header.Get("Content-Type"), err
	}
	const accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, " +
		"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
	// entry reads one image manifest's config and top layer (in parallel:
	// neither needs the other).
	entry := func(repo string, raw []byte) error {
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if len(m.Layers) == 0 {
			return fmt.Errorf("%s: no layers", repo)
		}
		var g errgroup.Group
		for _, d := range []v1.Hash{m.Config.Digest, m.Layers[len(m.Layers)-1].Digest} {
			g.Go(func() error { _, _, err := get("/v2/"+repo+"/blobs/"+d.String(), ""); return err })
		}
		return g.Wait()
	}
	start := time.Now()
	var g errgroup.Group
	for _, ref := range refs {
		g.Go(func() error {
			r, err := name.ParseReference(ref, name.Insecure)
			if err != nil {
				return err
			}
			repo := r.Context().RepositoryStr()
			raw, mt, err := get("/v2/"+repo+"/manifests/"+r.Identifier(), accept)
			if err != nil {
				return err
			}
			if mt != "application/vnd.oci.image.index.v1+json" && mt != "application/vnd.docker.distribution.manifest.list.v2+json" {
				return entry(repo, raw)
			}
			var idx v1.IndexManifest
			if err := json.Unmarshal(raw, &idx); err != nil {
				return err
			}
			var eg errgroup.Group
			for _, d := range idx.Manifests {
				if d.Platform == nil || d.Platform.OS == "unknown" || d.Annotations["vnd.docker.reference.type"] != "" {
					continue // attestations: nothing to verify
				}
				eg.Go(func() error {
					b, _, err := get("/v2/"+repo+"/manifests/"+d.Digest.String(), accept)
					if err != nil {
						return err
					}
					return entry(repo, b)
				})
			}
			return eg.Wait()
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// loadAvg is the 1-minute load average, for the numbers beside it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// TestBenchAB compares archfit binaries on the 5,000-pod fleet as users
// run them, alternating: ARCHFIT_BENCH_AB=NAME=BIN,NAME=BIN (the first is
// the base; "NAME=BIN ARG..." adds arguments), ARCHFIT_BENCH_RUNS rounds (default 3). Each round runs every
// binary cold (empty cache) then warm, in turn (the order rotating each
// round), and the ideal client; it prints wall, CPU, requests and peak RSS
// with the load average, and fails when a binary's warm JSON differs from
// the base's. ARCHFIT_BENCH_PROFILES=DIR keeps a CPU profile of every run
// there; ARCHFIT_BENCH_LOG=FILE logs every request the registry answers;
// ARCHFIT_BENCH_SHARED_CACHE=1 gives all binaries of a round one cache;
// ARCHFIT_BENCH_LARGE=1 compares on the 100,000-pod fleet instead.
func TestBenchAB(t *testing.T) {
	spec := os.Getenv("ARCHFIT_BENCH_AB")
	if spec == "" {
		t.Skip("set ARCHFIT_BENCH_AB=base=BIN,new=BIN")
	}
	type bin struct {
		name, path string
		extra      []string
	}
	var bins []bin
	for _, kv := range strings.Split(spec, ",") {
		n, p, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("ARCHFIT_BENCH_AB: %q is not NAME=BIN", kv)
		}
		f := strings.Fields(p)
		bins = append(bins, bin{n, f[0], f[1:]})
	}
	runs := 3
	if v := os.Getenv("ARCHFIT_BENCH_RUNS"); v != "" {
		fmt.Sscan(v, &runs)
	}
	sc := benchSmall
	if os.Getenv("ARCHFIT_BENCH_LARGE") == "1" {
		sc = benchLarge
	}
	env := setupBenchScale(sc)
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump.json")
	writeDump(t, env.snap, dump)
	host := strings.TrimPrefix(env.srv.URL, "http://")
	if logPath := os.Getenv("ARCHFIT_BENCH_LOG"); logPath != "" {
		// Every request the registry answers, as "START END METHOD PATH"
		// lines (µs since the test's start, after the 20 ms): where and
		// when a run's requests go. Set while no request is in flight.
		f, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var mu sync.Mutex
		h := env.reg.h
		t0 := time.Now()
		env.reg.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Since(t0)
			h.ServeHTTP(w, r)
			mu.Lock()
			fmt.Fprintf(f, "%d %d %s %s\n", start.Microseconds(), time.Since(t0).Microseconds(), r.Method, r.URL.Path)
			mu.Unlock()
		})
		defer func() { env.reg.h = h }()
	}
	fmt.Printf("%d pods, %d workloads, %d images, %v per request, %d in flight\n", len(env.snap.Pods), len(env.snap.Workloads), len(env.refs), benchLatency, benchConcurrency)
	fmt.Println("| round | run | wall | CPU | requests | peak RSS | cache files | load |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	row := func(round int, what string, st procStats, reqs int64, files int, load string) {
		cpu, rss := "", ""
		if st.cpu > 0 {
			cpu = st.cpu.Round(10 * time.Millisecond).String()
		}
		if st.rssKiB > 0 {
			rss = fmt.Sprintf("%.0f MB", float64(st.rssKiB)/1024)
		}
		fmt.Printf("| %d | %s | %v | %s | %d | %s | %d | %s |\n", round, what, st.wall.Round(10*time.Millisecond), cpu, reqs, rss, files, load)
	}
	for round := 1; round <= runs; round++ {
		load := loadAvg()
		env.reg.requests.Store(0)
		ideal, err := idealClient(context.Background(), host, env.refs)
		if err != nil {
			t.Fatal(err)
		}
		row(round, "ideal client", procStats{wall: ideal}, env.reg.requests.Load(), 0, load)
		for k := range bins {
			b := bins[(k+round-1)%len(bins)]
			cache := filepath.Join(dir, fmt.Sprintf("cache-%s-%d", b.name, round))
			if os.Getenv("ARCHFIT_BENCH_SHARED_CACHE") != "" {
				// One cache per round for every binary: the first binary's
				// cold run fills it, the others' runs read what it wrote
				// (cache format compatibility).
				cache = filepath.Join(dir, fmt.Sprintf("cache-%d", round))
			}
			args := []string{"audit", "-f", dump, "-o", "json", "--verify", "--cache-dir", cache, "--concurrency", fmt.Sprint(benchConcurrency), "--tag-ttl", "1h"}
			args = append(args, b.extra...)
			for _, phase := range []string{"cold", "warm"} {
				load := loadAvg()
				env.reg.requests.Store(0)
				out := filepath.Join(dir, fmt.Sprintf("out-%s-%s-%d.json", b.name, phase, round))
				var penv []string
				if pdir := os.Getenv("ARCHFIT_BENCH_PROFILES"); pdir != "" {
					penv = []string{"ARCHFIT_CPUPROFILE=" + filepath.Join(pdir, fmt.Sprintf("cpu-%s-%s-%d.pprof", b.name, phase, round))}
				}
				st := runProcessTo(t, out, penv, b.path, args...)
				files := 0
				_ = filepath.WalkDir(cache, func(_ string, d os.DirEntry, err error) error {
					if err == nil && !d.IsDir() {
						files++
					}
					return nil
				})
				row(round, b.name+" "+phase, st, env.reg.requests.Load(), files, load)
			}
		}
	}
	// Which verification of a shared layer reads it (and so which entry
	// reports bytesRead/layersRead) depends on timing: it differs between
	// two runs of one binary too. Everything else must be byte-identical.
	base, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out-%s-warm-1.json", bins[0].name)))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bins {
		for round := 1; round <= runs; round++ {
			got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out-%s-warm-%d.json", b.name, round)))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case bytes.Equal(got, base):
				fmt.Printf("%s round %d: warm JSON identical to %s round 1's\n", b.name, round, bins[0].name)
			case bytes.Equal(withoutReadCounts(got), withoutReadCounts(base)):
				fmt.Printf("%s round %d: warm JSON identical to %s round 1's but for which entries read a shared layer (bytesRead, layersRead)\n", b.name, round, bins[0].name)
			default:
				keep := filepath.Join(os.TempDir(), "archfit-ab-"+b.name+".json")
				_ = os.WriteFile(keep, got, 0o644)
				_ = os.WriteFile(filepath.Join(os.TempDir(), "archfit-ab-"+bins[0].name+".json"), base, 0o644)
				t.Errorf("%s: warm JSON of round %d differs from %s's (kept in %s)", b.name, round, bins[0].name, keep)
			}
		}
	}
}

// withoutReadCounts drops the bytesRead and layersRead lines of an
// indented JSON document.
func withoutReadCounts(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if bytes.HasPrefix(t, []byte(`"bytesRead":`)) || bytes.HasPrefix(t, []byte(`"layersRead":`)) {
			continue
		}
		out = append(out, l)
	}
	return bytes.Join(out, []byte("\n"))
}
