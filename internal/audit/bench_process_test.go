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

// runProcess runs bin with args, as a user waits for it: wall time and the
// child's peak RSS (getrusage).
func runProcess(t *testing.T, env []string, bin string, args ...string) (time.Duration, int64) {
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
	wall := time.Since(start)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 { // 3: findings, expected here
			t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.b)
		}
	}
	rss := int64(0)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	return wall, rss
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

// processReport is the whole-process part of TestScaleReport: the archfit
// binary at ARCHFIT_BENCH_BIN audits a kubectl dump of the same fleet
// against the same slow registry, cold (empty cache) then warm, as a user
// runs it: `archfit audit -f dump.json -o json`.
func processReport(t *testing.T, env *benchEnv, bin string) (cold, warm time.Duration) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump.json")
	writeDump(t, env.snap, dump)
	fi, err := os.Stat(dump)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	args := []string{"audit", "-f", dump, "-o", "json", "--verify", "--cache-dir", cache, "--concurrency", fmt.Sprint(benchConcurrency)}
	env.reg.requests.Store(0)
	cold, coldRSS := runProcess(t, nil, bin, args...)
	coldReqs := env.reg.requests.Load()
	env.reg.requests.Store(0)
	warm, warmRSS := runProcess(t, nil, bin, args...)
	warmReqs := env.reg.requests.Load()
	fmt.Printf("whole process (`archfit audit -f dump.json -o json --verify`, dump %.1f MB):\n", float64(fi.Size())/1e6)
	fmt.Printf("  cold: %v, %d registry requests, peak RSS %.0f MB\n", cold.Round(time.Millisecond), coldReqs, float64(coldRSS)/1024)
	fmt.Printf("  warm: %v (%.1f%% of cold), %d registry requests, peak RSS %.0f MB\n", warm.Round(time.Millisecond),
		100*float64(warm)/float64(cold), warmReqs, float64(warmRSS)/1024)
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
		fmt.Printf("  %s (go tool pprof %s):\n%s", p.what, p.file, out)
	}
	return cold, warm
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
