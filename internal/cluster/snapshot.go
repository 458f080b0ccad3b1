package cluster

import (
	objref "github.com/archfit/archfit/internal/object"

	"fmt"
	"sort"
	"strings"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/archfit/archfit/internal/platform"
)

// Snapshot is everything archfit knows about a cluster at one moment, from
// either source. Slices are sorted (nodes by name, the rest by
// namespace/name) so output is stable.
type Snapshot struct {
	Nodes     []*Node
	Workloads []*Workload
	Pods      []*Pod
	// Events holds every event read, also those about objects not in the
	// snapshot.
	Events []*corev1.Event
	// Logs holds every container log read, also those whose pod is not in the
	// snapshot (attached to no Pod).
	Logs []*Log
	// Warnings are things the source could not read but worked around, e.g. a
	// forbidden node list or an Argo Rollout CRD that exists but cannot be
	// listed. Per-document parse errors are returned separately by LoadFiles.
	Warnings []string
	// APIRequests is the number of HTTP requests a live load made (0 for files).
	APIRequests int64
}

// Node is one cluster node as far as image selection cares.
type Node struct {
	Name string
	// Platform is what the kubelet asks for: from kubernetes.io/os and
	// kubernetes.io/arch, else the deprecated beta.kubernetes.io/* labels,
	// else status.nodeInfo. arm64 always carries variant v8 (platform.Node).
	Platform specs.Platform
	// PlatformFrom names where Platform's architecture came from: a label key
	// or "status.nodeInfo.architecture"; "" when nothing said.
	PlatformFrom string
	Runtime      platform.RuntimeInfo
	Taints       []corev1.Taint
	Ready        bool
	// Unschedulable is spec.unschedulable (cordoned).
	Unschedulable bool
	// Pool is the node's group (see PoolLabels), PoolLabel the label it came
	// from. Both are "" for a node with none of those labels.
	Pool      string
	PoolLabel string
	Object    *corev1.Node
}

// PoolLabels are the labels that name a node's pool, in the order they are
// tried: the autoscaler or managed group that created the node wins over
// cloud-specific pool names, which win over the instance type (the last
// resort: nodes of one type behave alike).
var PoolLabels = []string{
	"karpenter.sh/nodepool",
	"karpenter.sh/provisioner-name", // Karpenter before v1beta1
	"eks.amazonaws.com/nodegroup",
	"alpha.eksctl.io/nodegroup-name",
	"cloud.google.com/gke-nodepool",
	"kubernetes.azure.com/agentpool",
	"agentpool", // AKS before the kubernetes.azure.com prefix
	"node.kubernetes.io/instance-type",
	"beta.kubernetes.io/instance-type",
}

// Arch is the node's canonical architecture (amd64, arm64...), "" if unknown.
func (n *Node) Arch() string {
	if n.Platform.Architecture == "" {
		return ""
	}
	return platform.Arch(n.Platform)
}

// Role is what a container is to its pod.
type Role string

const (
	RoleInit      Role = "init"
	RoleSidecar   Role = "sidecar" // native sidecar: an init container with restartPolicy Always
	RoleMain      Role = "main"
	RoleEphemeral Role = "ephemeral"
)

// Container is one container of a workload.
type Container struct {
	Name  string
	Role  Role
	Image string
	// Injected is true for a container seen only in the workload's pods, not
	// in its template: added at admission (service-mesh sidecars) or by
	// `kubectl debug` (ephemeral).
	Injected bool
	// Line is the line of the container's image value in Workload.File,
	// 0 when not known.
	Line int
}

// Ref names an object: archfit's one reference type. References built here
// carry no APIVersion (they are identities); Workload.APIVersion says it.
type Ref = objref.Ref

// Workload kinds. Rollout is Argo Rollouts' argoproj.io/v1alpha1 Rollout.
const (
	KindDeployment  = "Deployment"
	KindReplicaSet  = "ReplicaSet"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindJob         = "Job"
	KindCronJob     = "CronJob"
	KindPod         = "Pod"
	KindPodTemplate = "PodTemplate"
	KindRollout     = "Rollout"
)

// Workload is a top owner: the object whose pod template must be patched to
// change where its pods run.
type Workload struct {
	Ref
	APIVersion string
	UID        types.UID
	// Template is the pod template pods are made from. For a bare Pod it is
	// the pod's own metadata and spec.
	Template corev1.PodTemplateSpec
	// TemplatePath is where Template lives in Original, dot-separated:
	// "spec.template", "spec.jobTemplate.spec.template", "template"
	// (PodTemplate), "" for a Pod (the object itself).
	TemplatePath string
	// TemplateFrom is set when the template comes from another object: an
	// Argo Rollout's spec.workloadRef.
	TemplateFrom *Ref
	// Original is the object as read, to compute patches against. It is nil
	// when the object itself was not in the source (see Inferred).
	Original *unstructured.Unstructured
	// Inferred says why this workload is a guess when its object was not in
	// the source, e.g. "Deployment api inferred from ReplicaSet api-7d9f8c6b5
	// (pod-template-hash)". "" when the object was read.
	Inferred string
	// ManagedBy is the owner of a workload whose kind archfit does not read,
	// typically an operator's custom resource: patching the workload itself
	// may be reverted by that operator.
	ManagedBy *Ref
	// Operator is set for an operator's custom resource archfit knows (its
	// images and scheduling fields are where the table says); PatchUnknown
	// for a custom resource whose containers were found by walking its
	// spec: where its operator reads node affinity is unknown.
	Operator     *OperatorKind
	PatchUnknown bool
	// customSpec: the scheduling fields are not those of a pod spec at
	// TemplatePath (CloudNativePG's spec.affinity.tolerations, Strimzi's
	// template.pod, ECK's nodeSets, an unknown kind).
	customSpec bool
	// Notes say what archfit derived or could not see in a custom resource
	// (an image the operator computes, containers the operator adds).
	Notes []string
	// Intermediates are the objects between the workload and its pods that
	// the source held: the ReplicaSets of a Deployment or Rollout, the Jobs
	// of a CronJob.
	Intermediates []Ref
	Containers    []Container
	// Replicas is the desired replica count when the kind has one.
	Replicas *int32
	Pods     []*Pod
	// Events are about the workload or the objects in Chain.
	Events []*corev1.Event
	// File and Line say where the workload's object was read (-f): the
	// path as given and the 1-based line of the object. "" and 0 for a
	// live cluster or an inferred workload.
	File string
	Line int
}

// PodSpecAtTemplatePath reports whether the workload's pods take their
// affinity, nodeSelector and tolerations from a pod spec at TemplatePath
// (".spec" under it, or the object's spec when TemplatePath is ""), so
// that a patch may be written there. It is false for operators' kinds that
// keep them elsewhere and for unknown kinds: remedy.Patch knows where.
func (w *Workload) PodSpecAtTemplatePath() bool { return !w.customSpec }

// Container returns the named container, or nil.
func (w *Workload) Container(name string) *Container {
	for i := range w.Containers {
		if w.Containers[i].Name == name {
			return &w.Containers[i]
		}
	}
	return nil
}

// ContainerSpec returns the template's container of that name running
// image (a copy), or for a container seen only in pods one that names just
// its image.
func (w *Workload) ContainerSpec(name, image string) *corev1.Container {
	spec := &w.Template.Spec
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				c := list[i]
				c.Image = image
				return &c
			}
		}
	}
	return &corev1.Container{Name: name, Image: image}
}

// Pod is one pod with what is known about it.
type Pod struct {
	*corev1.Pod
	// Node is nil for a pod not yet scheduled or on a node not in the snapshot.
	Node     *Node
	Workload *Workload
	// OwnerNote says how Workload was found when ownerReferences alone did
	// not lead to it, e.g. "ReplicaSet api-7d9f8c6b5 is not in the source;
	// Deployment api found by name and pod-template-hash". "" otherwise.
	OwnerNote string
	// Events are about this pod, oldest first.
	Events []*corev1.Event
	// Logs maps a container name to its logs.
	Logs map[string]*ContainerLogs
}

// ContainerLogs are the logs read for one container.
type ContainerLogs struct {
	Current, Previous *Log
}

// Log is a container log, usually truncated to its tail.
type Log struct {
	Namespace, Pod, Container string
	// Previous is true for the last terminated instance (kubectl logs --previous).
	Previous bool
	Text     string
	// Truncated is true when Text is only the tail of the log.
	Truncated bool
	// Source is the file the log was read from, "" for a live cluster.
	Source string
	// ReadFrom names the pod whose log this is, when it is not Pod's own:
	// live, one log is read for the pods of a workload whose container ran
	// the same image on the same node architecture and ended with the same
	// exit code.
	ReadFrom string
}

// Ref returns the pod's reference.
func (p *Pod) Ref() Ref { return Ref{Kind: KindPod, Namespace: p.Namespace, Name: p.Name} }

// ContainerStatus is one container of a pod with its spec role and status.
type ContainerStatus struct {
	Name         string
	Role         Role
	Image        string // from the spec
	ImageID      string // what the runtime resolved, from the status
	Ready        bool
	RestartCount int32
	Waiting      *corev1.ContainerStateWaiting
	Running      *corev1.ContainerStateRunning
	Terminated   *corev1.ContainerStateTerminated
	// LastTerminated is lastState.terminated: how the previous instance ended.
	LastTerminated *corev1.ContainerStateTerminated
	// HasStatus is false when the pod status has no entry for the container
	// (not started yet, or the dump dropped it).
	HasStatus bool
}

// Containers returns every container of the pod in spec order (init and
// sidecars, main, ephemeral), each with its status.
func (p *Pod) Containers() []ContainerStatus {
	var out []ContainerStatus
	add := func(name, image string, role Role, statuses []corev1.ContainerStatus) {
		cs := ContainerStatus{Name: name, Role: role, Image: image}
		for i := range statuses {
			if statuses[i].Name == name {
				s := &statuses[i]
				cs.HasStatus = true
				cs.ImageID = s.ImageID
				cs.Ready = s.Ready
				cs.RestartCount = s.RestartCount
				cs.Waiting = s.State.Waiting
				cs.Running = s.State.Running
				cs.Terminated = s.State.Terminated
				cs.LastTerminated = s.LastTerminationState.Terminated
				break
			}
		}
		out = append(out, cs)
	}
	for _, c := range p.Spec.InitContainers {
		add(c.Name, c.Image, initRole(c), p.Status.InitContainerStatuses)
	}
	for _, c := range p.Spec.Containers {
		add(c.Name, c.Image, RoleMain, p.Status.ContainerStatuses)
	}
	for _, c := range p.Spec.EphemeralContainers {
		add(c.Name, c.Image, RoleEphemeral, p.Status.EphemeralContainerStatuses)
	}
	return out
}

// Container returns the named container's status; ok is false if the pod
// has no such container.
func (p *Pod) Container(name string) (ContainerStatus, bool) {
	for _, c := range p.Containers() {
		if c.Name == name {
			return c, true
		}
	}
	return ContainerStatus{}, false
}

// ContainerEvents returns the pod's events about one container, i.e. whose
// involvedObject.fieldPath is spec.containers{NAME},
// spec.initContainers{NAME} or spec.ephemeralContainers{NAME}.
func (p *Pod) ContainerEvents(name string) []*corev1.Event {
	var out []*corev1.Event
	for _, e := range p.Events {
		if fieldPathContainer(e.InvolvedObject.FieldPath) == name {
			out = append(out, e)
		}
	}
	return out
}

// fieldPathContainer returns NAME from "spec.containers{NAME}" and the like.
func fieldPathContainer(fp string) string {
	for _, prefix := range []string{"spec.containers{", "spec.initContainers{", "spec.ephemeralContainers{"} {
		if rest, ok := strings.CutPrefix(fp, prefix); ok {
			if name, ok := strings.CutSuffix(rest, "}"); ok {
				return name
			}
		}
	}
	return ""
}

// PreviousLog returns the log of the container's previous instance, or nil.
func (p *Pod) PreviousLog(container string) *Log {
	if l := p.Logs[container]; l != nil {
		return l.Previous
	}
	return nil
}

// CurrentLog returns the log of the container's current instance, or nil.
// For a container that terminated and was not restarted (restartPolicy
// Never/OnFailure Job pods) that is where the crash output is.
func (p *Pod) CurrentLog(container string) *Log {
	if l := p.Logs[container]; l != nil {
		return l.Current
	}
	return nil
}

func initRole(c corev1.Container) Role {
	if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
		return RoleSidecar
	}
	return RoleInit
}

// failingWaitingReasons are the kubelet's waiting reasons that mean the
// container cannot start (FACTS.md section 1). ContainerCreating and
// PodInitializing are normal.
var failingWaitingReasons = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
	"PreCreateHookError":         true,
	"PreStartHookError":          true,
	"PostStartHookError":         true,
}

// Failing reports whether the pod is broken, and the container (or "" for
// the pod itself) that shows it: a container waiting for a failure reason
// (CrashLoopBackOff, ImagePullBackOff, ...), a container that terminated
// with a non-zero exit code and is not running again, a pod that cannot be
// scheduled, or a Failed pod.
func (p *Pod) Failing() (bool, string) {
	for _, c := range p.Containers() {
		if c.Waiting != nil && failingWaitingReasons[c.Waiting.Reason] {
			return true, c.Name
		}
		if c.Terminated != nil && c.Terminated.ExitCode != 0 {
			return true, c.Name
		}
		// Between two crashes a crash-looping container runs briefly.
		if c.Running != nil && !c.Ready && c.RestartCount > 0 && c.LastTerminated != nil && c.LastTerminated.ExitCode != 0 {
			return true, c.Name
		}
	}
	if p.Status.Phase == corev1.PodPending {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				return true, ""
			}
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		return true, ""
	}
	return false, ""
}

// FailingPods returns the pods that are failing (Pod.Failing), sorted.
func (s *Snapshot) FailingPods() []*Pod {
	var out []*Pod
	for _, p := range s.Pods {
		if ok, _ := p.Failing(); ok {
			out = append(out, p)
		}
	}
	return out
}

// WorkloadFor returns the top owner of a pod, which is never nil for a pod
// of this snapshot (a bare pod is its own workload).
func (s *Snapshot) WorkloadFor(p *Pod) *Workload { return p.Workload }

// Workload returns the workload of that kind, namespace and name, or nil.
func (s *Snapshot) Workload(r Ref) *Workload {
	for _, w := range s.Workloads {
		if w.Ref == r {
			return w
		}
	}
	return nil
}

// Object returns the object of a workload of the snapshot as read, for
// a patch that belongs to it (ErrNotFound when the input lacks it).
func (s *Snapshot) Object(r Ref) (*unstructured.Unstructured, error) {
	if w := s.Workload(r.ID()); w != nil && w.Original != nil {
		return w.Original, nil
	}
	return nil, fmt.Errorf("%s: %w", r, ErrNotFound)
}

// NodePlatforms are the distinct platforms of the snapshot's nodes, in
// node order (nil without nodes).
func (s *Snapshot) NodePlatforms() []specs.Platform {
	var out []specs.Platform
	seen := map[string]bool{}
	for _, n := range s.Nodes {
		if n.Platform.Architecture == "" {
			continue
		}
		k := platform.String(&n.Platform)
		if !seen[k] {
			seen[k] = true
			out = append(out, n.Platform)
		}
	}
	return out
}

// Node returns the named node, or nil.
func (s *Snapshot) Node(name string) *Node {
	i := sort.Search(len(s.Nodes), func(i int) bool { return s.Nodes[i].Name >= name })
	if i < len(s.Nodes) && s.Nodes[i].Name == name {
		return s.Nodes[i]
	}
	return nil
}

// Pool is a set of nodes that share a pool name and a platform. A Karpenter
// NodePool that allows both arm64 and amd64 is two Pools.
type Pool struct {
	Name     string // "" for nodes with no pool label
	Label    string // the label Name came from
	Platform specs.Platform
	// Runtimes are the distinct runtimes of the pool's nodes.
	Runtimes []platform.RuntimeInfo
	Nodes    []*Node
	// Taints are the taints every node of the pool carries.
	Taints []corev1.Taint
}

func (p Pool) String() string {
	name := p.Name
	if name == "" {
		name = "(no pool label)"
	}
	return fmt.Sprintf("%s (%s)", name, platform.String(&p.Platform))
}

// Pools groups the nodes by pool and platform, sorted by name then platform.
func (s *Snapshot) Pools() []Pool {
	type key struct{ label, name, plat string }
	idx := map[key]int{}
	var out []Pool
	for _, n := range s.Nodes {
		k := key{n.PoolLabel, n.Pool, platform.String(&n.Platform)}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Pool{Name: n.Pool, Label: n.PoolLabel, Platform: n.Platform, Taints: n.Taints})
		}
		p := &out[i]
		p.Nodes = append(p.Nodes, n)
		p.Taints = commonTaints(p.Taints, n.Taints)
		seen := false
		for _, r := range p.Runtimes {
			if r.Name == n.Runtime.Name && r.Version == n.Runtime.Version {
				seen = true
			}
		}
		if !seen {
			p.Runtimes = append(p.Runtimes, n.Runtime)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return platform.String(&out[i].Platform) < platform.String(&out[j].Platform)
	})
	return out
}

func commonTaints(a, b []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range a {
		for _, u := range b {
			if t.Key == u.Key && t.Value == u.Value && t.Effect == u.Effect {
				out = append(out, t)
				break
			}
		}
	}
	return out
}
