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

// OwnerOf names a pod's workload from the pod alone, as a snapshot names
// it when the objects between are not in the source: its controller
// reference (else its first owner reference), a ReplicaSet's Deployment or
// Argo Rollout from its name and pod-template-hash label, a Job's CronJob
// from its name's schedule suffix; the pod itself when it has no owner or
// is a static pod's mirror. For callers that see one pod, such as an
// admission webhook, so that waivers name the workload users know.
func OwnerOf(p *corev1.Pod) (ref Ref, apiVersion string) {
	r := controllerRef(p.OwnerReferences)
	if r == nil || r.Kind == "Node" {
		name := p.Name
		if name == "" {
			name = p.GenerateName
		}
		return Ref{Kind: KindPod, Namespace: p.Namespace, Name: name}, "v1"
	}
	ref, _ = (&builder{}).inferOwner(p.Namespace, r, p.Labels)
	if ref.Kind == r.Kind {
		return ref, r.APIVersion
	}
	return ref, ownerAPIVersions[ref.Kind]
}

// ownerAPIVersions are the API versions of the owners OwnerOf infers.
var ownerAPIVersions = map[string]string{KindDeployment: "apps/v1", KindCronJob: "batch/v1", KindRollout: "argoproj.io/v1alpha1"}
