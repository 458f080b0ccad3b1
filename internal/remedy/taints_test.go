package remedy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
)

func TestArchTaints(t *testing.T) {
	archTaint := corev1.Taint{Key: "kubernetes.io/arch", Value: "arm64", Effect: corev1.TaintEffectNoSchedule}
	graviton := corev1.Taint{Key: "dedicated", Value: "graviton", Effect: corev1.TaintEffectNoSchedule}
	gpu := corev1.Taint{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}
	notReady := corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoExecute}
	soft := corev1.Taint{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}
	node := func(arch string, ts ...corev1.Taint) *cluster.Node {
		n := &cluster.Node{Taints: ts}
		n.Platform.OS, n.Platform.Architecture = "linux", arch
		return n
	}
	cordoned := node("arm64")
	cordoned.Unschedulable = true
	nodes := []*cluster.Node{
		node("arm64", archTaint, graviton, gpu, soft),
		node("arm64", archTaint, graviton, notReady),
		cordoned, // takes no pods: does not break the intersection
		node("amd64", gpu),
		node("amd64", gpu),
	}
	tol, other := ArchTaints(nodes, "arm64")
	if diff := cmp.Diff([]corev1.Taint{archTaint, graviton}, tol); diff != "" {
		t.Errorf("arm64 taints to tolerate (-want +got):\n%s", diff)
	}
	if len(other) != 0 {
		t.Errorf("arm64 other taints: %v", other)
	}
	// Every amd64 node is a GPU node: that taint is not about architecture,
	// so it is never tolerated for the workload, only reported.
	tol, other = ArchTaints(nodes, "amd64")
	if len(tol) != 0 {
		t.Errorf("amd64: tolerating %v", tol)
	}
	if diff := cmp.Diff([]corev1.Taint{gpu}, other); diff != "" {
		t.Errorf("amd64 other taints (-want +got):\n%s", diff)
	}
	if tol, other := ArchTaints(nodes, "s390x"); len(tol)+len(other) != 0 {
		t.Errorf("no s390x node, taints %v %v", tol, other)
	}
}
