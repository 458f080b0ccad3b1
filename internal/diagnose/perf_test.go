package diagnose

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// countingRegistry is an in-process OCI registry that counts the requests
// it serves by method and path.
type countingRegistry struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func newCountingRegistry(t testing.TB) *countingRegistry {
	t.Helper()
	c := &countingRegistry{counts: map[string]int{}}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts[r.Method+" "+r.URL.Path]++
		c.total++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *countingRegistry) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts, c.total = map[string]int{}, 0
}

// byRepo sums the requests per repository (/v2/REPO/...).
func (c *countingRegistry) byRepo() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, n := range c.counts {
		_, p, _ := strings.Cut(k, " ")
		repo := strings.TrimPrefix(p, "/v2/")
		for _, sep := range []string{"/manifests/", "/blobs/"} {
			if i := strings.Index(repo, sep); i >= 0 {
				repo = repo[:i]
			}
		}
		out[repo] += n
	}
	return out
}

func (c *countingRegistry) host() string { return strings.TrimPrefix(c.URL, "http://") }

// fleet is the performance scenario: 30 images (10 single amd64 manifests,
// 10 amd64+attestation indexes, 10 honest multi-arch indexes), 50
// Deployments over them, 10 pods each on arm64 nodes: 500 failing pods
// (CrashLoopBackOff with exec format error or ImagePullBackOff with no
// match) plus the healthy multi-arch ones that fail for app reasons.
func fleet(t testing.TB, reg *countingRegistry) (dumpDir string, refs []string) {
	t.Helper()
	for i := 0; i < 30; i++ {
		ref := fmt.Sprintf("%s/team/svc-%02d:1", reg.host(), i)
		refs = append(refs, ref)
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		// Every image has its own content (digests), as in a real fleet.
		app := func(plat, arch string) v1.Image {
			return testimage.Must(testimage.Spec{Platform: plat, Entrypoint: []string{"/app"}, Env: []string{shPath},
				Layers: [][]testimage.File{{{Path: "/app", Data: testimage.ELF(arch)}}, {{Path: fmt.Sprintf("/etc/svc-%02d", i), Data: []byte(ref), Mode: 0o644}}}}.Build())
		}
		switch i % 3 {
		case 0:
			err = remote.Write(r, app("linux/amd64", "amd64"))
		case 1:
			amd := app("linux/amd64", "amd64")
			err = remote.WriteIndex(r, testimage.Index(testimage.For(amd, "linux/amd64"), testimage.Attestation(amd)))
		case 2:
			err = remote.WriteIndex(r, testimage.Index(testimage.For(app("linux/amd64", "amd64"), "linux/amd64"), testimage.For(app("linux/arm64/v8", "arm64"), "linux/arm64/v8")))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var items []any
	for i, n := range []string{"arm64-c21", "arm64-c17", "arm64-crio", "amd64-c17"} {
		arch, rt := "arm64", []string{"containerd://2.1.4", "containerd://1.7.22", "cri-o://1.34.1", "containerd://1.7.22"}[i]
		if strings.HasPrefix(n, "amd64") {
			arch = "amd64"
		}
		items = append(items, &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"kubernetes.io/arch": arch, "kubernetes.io/os": "linux"}},
			Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{Architecture: arch, OperatingSystem: "linux", ContainerRuntimeVersion: rt}}})
	}
	dir := t.TempDir()
	for w := 0; w < 50; w++ {
		img := refs[w%30]
		wl := fmt.Sprintf("svc-%02d", w)
		for p := 0; p < 10; p++ {
			node := []string{"arm64-c21", "arm64-c17", "arm64-crio"}[p%3]
			pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-6d5f4c-%03d", wl, p), Namespace: "load",
					Labels:          map[string]string{"app": wl, "pod-template-hash": "6d5f4c"},
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: wl + "-6d5f4c", UID: types.UID("rs-load-" + wl)}}},
				Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: img}}},
			}
			st := corev1.ContainerStatus{Name: "app", Image: img}
			switch (w % 30) % 3 {
			case 1: // index without arm64: pull fails
				st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
					Message: fmt.Sprintf(`Back-off pulling image %q: ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image %q: no match for platform in manifest: not found`, img, img)}
			default: // amd64 binary (or an app crash of a multi-arch one)
				st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
				st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 255, Reason: "Error"}
				st.RestartCount = 4
				text := "exec /app: exec format error\n"
				if (w%30)%3 == 2 {
					text = "panic: config not found\n"
				}
				lp := filepath.Join(dir, "logs", "load", pod.Name, "app.previous.log")
				if err := os.MkdirAll(filepath.Dir(lp), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(lp, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pod.Status.Phase = corev1.PodRunning
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
			items = append(items, pod)
		}
	}
	var b strings.Builder
	for _, it := range items {
		y, err := yaml.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	if err := os.WriteFile(filepath.Join(dir, "dump.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, refs
}

type runStats struct {
	pods, failing, requests int
	registry                int64
	findings                []finding.Finding
	wall                    time.Duration
}

func diagnoseDir(t testing.TB, dir string) runStats {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	snap, docErrs, err := cluster.LoadFiles(ctx, []string{dir}, nil)
	if err != nil || len(docErrs) > 0 {
		t.Fatalf("loading: %v %v", err, docErrs)
	}
	res, err := image.NewResolver(image.WithRegistryClient(registry.New()), image.WithVerifier(verifier))
	if err != nil {
		t.Fatal(err)
	}
	reqs := Requests(snap)
	images := NewImages(reqs, res.InspectAll(ctx, reqs))
	fs := Diagnose(snap, images)
	Remedies(snap, images, fs)
	return runStats{pods: len(snap.Pods), failing: len(snap.FailingPods()), requests: len(reqs), registry: res.Requests(), findings: fs, wall: time.Since(start)}
}

// TestFleetRegistryWorkOnce diagnoses 500 failing pods of 50 workloads
// over 30 images and checks that the registry work for each image is done
// once: no registry request is repeated, and the total equals the sum of
// inspecting each image alone.
func TestFleetRegistryWorkOnce(t *testing.T) {
	reg := newCountingRegistry(t)
	dir, refs := fleet(t, reg)

	// What each image costs alone, with a fresh resolver.
	alone, aloneByRepo := 0, map[string]int{}
	ctx := context.Background()
	for _, ref := range refs {
		reg.reset()
		res, err := image.NewResolver(image.WithRegistryClient(registry.New()), image.WithVerifier(verifier))
		if err != nil {
			t.Fatal(err)
		}
		res.InspectAll(ctx, []image.Request{{Ref: ref, Verify: true}})
		alone += reg.total
		for k, v := range reg.byRepo() {
			aloneByRepo[k] += v
		}
	}

	reg.reset()
	st := diagnoseDir(t, dir)
	if st.failing != 500 {
		t.Fatalf("failing pods = %d, want 500", st.failing)
	}
	if diff := cmp.Diff(aloneByRepo, reg.byRepo()); diff != "" {
		t.Errorf("registry requests per image, diagnosing 500 pods vs inspecting each image once (-once +diagnose):\n%s", diff)
	}
	if reg.total != alone {
		t.Errorf("registry requests = %d, want %d (each image once)", reg.total, alone)
	}
	codes := map[string]int{}
	for _, f := range st.findings {
		codes[f.Code]++
	}
	// 50 workloads: 17 on single amd64 manifests (wrong-arch), 17 on
	// amd64+attestation indexes (missing-platform), 16 multi-arch ones that
	// crash for their own reasons (no finding).
	want := map[string]int{finding.WrongArchBinary: 17, finding.MissingPlatform: 17}
	for c, n := range want {
		if codes[c] != n {
			t.Errorf("%s findings = %d, want %d (all: %v)", c, codes[c], n, codes)
		}
	}
	t.Logf("%d pods (%d failing), %d distinct image requests, %d registry requests (= %d for the 30 images inspected one by one), %d API requests (files), %d findings, wall %s",
		st.pods, st.failing, st.requests, reg.total, alone, 0, len(st.findings), st.wall.Round(time.Millisecond))
}

func BenchmarkFleet(b *testing.B) {
	reg := newCountingRegistry(b)
	dir, _ := fleet(b, reg)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reg.reset()
		st := diagnoseDir(b, dir)
		b.ReportMetric(float64(reg.total), "registry-req/op")
		b.ReportMetric(float64(st.failing), "failing-pods/op")
	}
}
