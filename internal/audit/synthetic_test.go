package audit

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/archfit/archfit/internal/cluster"
)

// SyntheticSpec describes a made-up fleet for tests and the benchmark.
type SyntheticSpec struct {
	Workloads       int
	PodsPerWorkload int
	// Images are spread over the workloads round-robin: workload i uses
	// Images[i%len] as main container and, every third workload,
	// Images[(i+1)%len] as init container.
	Images   []string
	WithInit bool
}

// Synthetic builds a snapshot of Deployments with their pods.
func Synthetic(s SyntheticSpec) *cluster.Snapshot {
	snap := &cluster.Snapshot{}
	for i := 0; i < s.Workloads; i++ {
		ns := fmt.Sprintf("team-%02d", i%20)
		name := fmt.Sprintf("app-%04d", i)
		replicas := int32(s.PodsPerWorkload)
		w := &cluster.Workload{Ref: cluster.Ref{Kind: cluster.KindDeployment, Namespace: ns, Name: name}, APIVersion: "apps/v1",
			TemplatePath: "spec.template", Replicas: &replicas}
		main := corev1.Container{Name: "app", Image: s.Images[i%len(s.Images)]}
		w.Template.Spec.Containers = []corev1.Container{main}
		w.Containers = []cluster.Container{{Name: "app", Role: cluster.RoleMain, Image: main.Image}}
		if s.WithInit && i%3 == 0 {
			init := corev1.Container{Name: "init", Image: s.Images[(i+1)%len(s.Images)]}
			w.Template.Spec.InitContainers = []corev1.Container{init}
			w.Containers = append([]cluster.Container{{Name: "init", Role: cluster.RoleInit, Image: init.Image}}, w.Containers...)
		}
		for p := 0; p < s.PodsPerWorkload; p++ {
			pod := &cluster.Pod{Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, p)},
				Spec: w.Template.Spec}, Workload: w}
			w.Pods = append(w.Pods, pod)
			snap.Pods = append(snap.Pods, pod)
		}
		snap.Workloads = append(snap.Workloads, w)
	}
	return snap
}
