package cluster

import corev1 "k8s.io/api/core/v1"

// NodeOf reads one node as a snapshot does: platform, runtime, taints,
// readiness and pool (for callers that watch nodes themselves).
func NodeOf(n *corev1.Node) *Node { return newNode(n) }

// PodWorkload makes one pod its own workload, as a snapshot does for a bare
// pod: what an admission webhook judges before the pod exists, whatever
// owns it. Original is the pod as an unstructured object.
func PodWorkload(p *corev1.Pod) *Workload {
	b := &builder{workloads: map[Ref]*Workload{}}
	w := b.podWorkload(p, "")
	w.Containers = containers(w)
	return w
}
