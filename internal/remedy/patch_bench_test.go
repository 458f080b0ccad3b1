package remedy

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// BenchmarkPatch is what an audit does per workload at risk: judge the
// constraints (DeferPatch), then compute the patch and its kubectl
// command. Inputs: the workloads of the vendored GitOps files, and one
// shaped like a synthetic dump's (a Deployment with no constraints).
func BenchmarkPatch(b *testing.B) {
	plain := &unstructured.Unstructured{}
	if err := plain.UnmarshalJSON([]byte(`{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"app-0000","namespace":"team-00","uid":"d-team-00-app-0000"},"spec":{"replicas":5,"selector":{"matchLabels":{"app":"app-0000"}},"template":{"metadata":{"labels":{"app":"app-0000"}},"spec":{"initContainers":[{"name":"init","image":"127.0.0.1:42119/team01/svc001:1.1","resources":{}}],"containers":[{"name":"app","image":"127.0.0.1:42119/team00/svc000:1.0","resources":{}}]}},"strategy":{}},"status":{}}`)); err != nil {
		b.Fatal(err)
	}
	judgeOnly := func(o *options) { o.judgeOnly = true }
	for _, in := range []struct {
		name string
		objs []*unstructured.Unstructured
	}{{"dump-shaped", []*unstructured.Unstructured{plain}}, {"gitops", realWorkloads(b)}} {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, obj := range in.objs {
					if _, err := Patch(obj, []string{"arm64"}, judgeOnly); err != nil {
						b.Fatal(err)
					}
					res, err := Patch(obj, []string{"arm64"}, WithTaints("arm64", gpuTaint))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := res.Render(FormatKubectl); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
