package serve

import (
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/testimage"
)

// BenchmarkAdmitCacheHit is one admission review of a pod whose images are
// known (the pinned path), in process, with p50 and p99 latency reported:
// "replica" admits the same template again (a ReplicaSet's pods: the
// decision is reused), "distinct" a new template every time (the remedy is
// computed: remedy.ForWorkload, the pod's patch, the JSON encoding).
func BenchmarkAdmitCacheHit(b *testing.B) {
	f := newFixture(b, ModeEnforce, mixed(), map[string]any{
		"app:1":     testimage.App("linux/amd64", "amd64"),
		"sidecar:1": testimage.MultiArch("linux/amd64", "linux/arm64/v8"),
	})
	p := podOf("shop", f.reg+"/app:1", f.reg+"/sidecar:1")
	f.learn(b, p)
	for _, distinct := range []bool{false, true} {
		name := "replica"
		if distinct {
			name = "distinct"
		}
		b.Run(name, func(b *testing.B) {
			reqs := make([]*admissionv1.AdmissionRequest, 64)
			for i := range reqs {
				q := p.DeepCopy()
				if distinct {
					q.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "N", Value: fmt.Sprint(i)}}
				}
				reqs[i] = review(b, q)
				if resp := f.s.Admit(reqs[i]); resp.Patch == nil {
					b.Fatal("no patch: the benchmark would not measure the pinned path")
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if distinct {
					f.s.memo = decisions{} // every review computes its decision
				}
				start := time.Now()
				f.s.Admit(reqs[i%len(reqs)])
				lat = append(lat, time.Since(start))
				i++
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkMemory10kPods1kImages is the heap archfit serve holds for
// 10,000 pods in its informer cache and 1,000 distinct images known
// (copies of a real report, each under its own reference), measured after
// a GC; the decisions memo is at its bound as well.
func BenchmarkMemory10kPods1kImages(b *testing.B) {
	f := newFixture(b, ModeEnforce, mixed(), map[string]any{"app:1": testimage.MultiArch("linux/amd64", "linux/arm64/v8")})
	base := podOf("shop", f.reg+"/app:1")
	f.learn(b, base)
	rep := f.s.knowledge.get(requestsOf(base)[0], "")
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		k := newKnowledge(time.Hour, 10000)
		for i := range 1000 {
			r := *rep
			r.Reference = fmt.Sprintf("%s/app-%d:1", f.reg, i)
			k.put(image.Request{Ref: r.Reference, Verify: true}, "", &r)
		}
		idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
		for i := range 10000 {
			p := base.DeepCopy()
			p.Name = fmt.Sprintf("web-%05d", i)
			p.UID = types.UID(fmt.Sprintf("uid-%05d", i))
			p.Spec.Containers[0].Image = fmt.Sprintf("%s/app-%d:1", f.reg, i%1000)
			p.Spec.NodeName = "a1"
			p.Labels = map[string]string{"app": "web", "pod-template-hash": "5b99d7d6"}
			p.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}}
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "c0", Ready: true, Image: p.Spec.Containers[0].Image}}}
			_ = idx.Add(p)
		}
		var m decisions
		for i := range memoMax {
			p := base.DeepCopy()
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "N", Value: fmt.Sprint(i)}}
			key, _ := keyOf(p)
			m.put(key, f.s.decidePod(p, false), nil, nil, 0)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		runtime.KeepAlive(k)
		runtime.KeepAlive(idx)
		runtime.KeepAlive(&m)
	}
}

func requestsOf(p *corev1.Pod) []image.Request {
	return requests(cluster.PodWorkload(p))
}
