package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/archfit/archfit/internal/cluster"
)

// writeDump writes snap as a kubectl dump (`kubectl get deploy,rs,pods -A
// -o json`): Deployments, their ReplicaSets and the pods they own.
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

// procStats is one whole process as a user waits for it: wall time, CPU
// (user+sys) and the peak RSS, from the child's rusage (what
// /usr/bin/time -v reports).
type procStats struct {
	wall, cpu time.Duration
	rssKiB    int64
}

// runProcess runs bin with args and measures it.
func runProcess(t *testing.T, env []string, bin string, args ...string) procStats {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout = out
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	st := procStats{wall: time.Since(start)}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 { // 3: findings, expected here
			t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.b)
		}
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		st.rssKiB = ru.Maxrss // KiB on Linux
		st.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return st
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
// lower bound of the cold run's requests (an ideal client making the same
// requests, 16 in flight). With profile, one more warm run is profiled.
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
	lower := time.Duration((coldReqs+benchConcurrency-1)/benchConcurrency) * benchLatency
	rows := []benchRow{
		{what: "archfit audit, cold", pods: pods, st: cold, requests: coldReqs,
			note: fmt.Sprintf("dump %.1f MB, %d workloads, %d images", float64(fi.Size())/1e6, len(env.snap.Workloads), len(env.refs))},
		{what: "archfit audit, warm", pods: pods, st: warm, requests: warmReqs,
			note: fmt.Sprintf("%.0f%% of cold wall, %.0f%% of cold CPU", 100*float64(warm.wall)/float64(cold.wall), 100*float64(warm.cpu)/float64(cold.cpu))},
		{what: "ideal client: the cold run's requests, 16 in flight", pods: pods, st: procStats{wall: lower}, requests: coldReqs,
			note: fmt.Sprintf("cold / ideal = %.2f", float64(cold.wall)/float64(lower))},
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
