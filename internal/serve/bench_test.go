package serve

import (
	"fmt"
	"sort"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

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
