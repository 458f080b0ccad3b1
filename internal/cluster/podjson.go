package cluster

import (
	"bytes"
	"encoding/json"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Pods are most of a dump, and the pods of one ReplicaSet (Job,
// StatefulSet revision) are made from one template: their containers are
// the same JSON. decodePod reads a pod's containers and init containers
// only when they differ from those of the last pod read with the same
// owner; otherwise the pod shares that pod's slices (capacity capped, so an
// append copies). Nothing in archfit writes to a pod's containers. What
// differs per pod (name, node, statuses, annotations, volumes) is the
// pod's own; labels are shared the same way. Dumps list a ReplicaSet's pods one after the other
// (kubectl sorts by name), so one entry per owner finds them.

// itemDecoder decodes the objects of a dump (decode). Its sharing maps
// are its own: each goroutine decoding items has one.
type itemDecoder struct {
	// shared holds, per owner, the containers of the last pod read: the
	// pods of one ReplicaSet, Job or StatefulSet revision have the same
	// ones and share them (see decodePod).
	shared       map[sharedKey]*sharedContainers
	sharedLabels map[types.UID]*sharedLabels
	buf          []byte // an item without its indentation (decodeItem)
}

func newItemDecoder() *itemDecoder {
	return &itemDecoder{shared: map[sharedKey]*sharedContainers{}, sharedLabels: map[types.UID]*sharedLabels{}}
}

// sharedKey is an owner's UID and which list.
type sharedKey struct {
	owner types.UID
	init  bool
}

// sharedLabels is the last labels map read for an owner and its JSON.
type sharedLabels struct {
	raw    []byte
	labels map[string]string
}

// sharedContainers is the last list read for an owner and its JSON.
type sharedContainers struct {
	raw []byte
	cs  []corev1.Container
}

// rawJSON keeps a value's text, unread. The text is a slice of the input
// being decoded: it is only valid during decodePod.
type rawJSON struct {
	b []byte
	n int // times set: a key given twice is left to corev1.Pod's decoding
}

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	r.b = b
	r.n++
	return nil
}

// podWire is corev1.Pod with the container lists left as text. Its other
// fields decode exactly as corev1.Pod's do (the same types and tags).
type podWire struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        objectMetaWire   `json:"metadata,omitempty"`
	Spec            podSpecWire      `json:"spec,omitempty"`
	Status          corev1.PodStatus `json:"status,omitempty"`
}

type objectMetaWire struct {
	metav1.ObjectMeta `json:",inline"`
	Labels            rawJSON `json:"labels,omitempty"`
	// archfit reads no managed fields: they are skipped, not built (pods
	// read live drop them too). kubectl get leaves them out unless
	// --show-managed-fields; a dump taken from the API itself has them,
	// often a third of a pod's JSON.
	ManagedFields skipJSON `json:"managedFields,omitempty"`
}

type podSpecWire struct {
	corev1.PodSpec `json:",inline"`
	// These shadow PodSpec's fields of the same JSON names.
	InitContainers rawJSON `json:"initContainers,omitempty"`
	Containers     rawJSON `json:"containers"`
	Volumes        rawJSON `json:"volumes,omitempty"`
}

// decodePod reads a pod as json.Unmarshal into corev1.Pod does, sharing
// containers with the previous pod of the same owner. Any error, or a
// container list given twice, is left to corev1.Pod's decoding, so the
// error message is that one.
func (c *itemDecoder) decodePod(js []byte) (*corev1.Pod, error) {
	full := func() (*corev1.Pod, error) {
		p := &corev1.Pod{}
		if err := unmarshal(js, "Pod", p); err != nil {
			return nil, err
		}
		p.ManagedFields = nil
		if controllerRef(p.OwnerReferences) != nil {
			slimWorkloadPod(p)
		}
		return p, nil
	}
	var w podWire
	if err := json.Unmarshal(js, &w); err != nil || w.Spec.InitContainers.n > 1 || w.Spec.Containers.n > 1 || w.Metadata.Labels.n > 1 || w.Spec.Volumes.n > 1 {
		return full()
	}
	p := &corev1.Pod{TypeMeta: w.TypeMeta, ObjectMeta: w.Metadata.ObjectMeta, Spec: w.Spec.PodSpec, Status: w.Status}
	var owner types.UID
	ctl := controllerRef(p.OwnerReferences)
	if ctl != nil {
		owner = ctl.UID
	}
	var err error
	if ctl == nil {
		// A pod of its own is its own workload: kept whole.
		if raw := w.Spec.Volumes.b; raw != nil && !bytes.Equal(raw, []byte("null")) {
			if err := json.Unmarshal(raw, &p.Spec.Volumes); err != nil {
				return full()
			}
		}
	} else {
		dropVolumes(p)
	}
	if p.Labels, err = c.labels(owner, w.Metadata.Labels.b); err != nil {
		return full()
	}
	if p.Spec.InitContainers, err = c.containerList(owner, true, w.Spec.InitContainers.b); err != nil {
		return full()
	}
	if p.Spec.Containers, err = c.containerList(owner, false, w.Spec.Containers.b); err != nil {
		return full()
	}
	if ctl != nil && owner == "" { // a controller without a UID: not shared, not kept either
		dropMounts(p.Spec.InitContainers)
		dropMounts(p.Spec.Containers)
	}
	return p, nil
}

// containerList decodes raw (nil when absent), or returns the list
// decoded last for that owner when its text was the same.
func (c *itemDecoder) containerList(owner types.UID, init bool, raw []byte) ([]corev1.Container, error) {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	k := sharedKey{owner: owner, init: init}
	if owner != "" {
		if e := c.shared[k]; e != nil && sameButTokenVolume(e.raw, raw) {
			return e.cs, nil
		}
	}
	var cs []corev1.Container
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, err
	}
	cs = cs[:len(cs):len(cs)]
	if owner != "" {
		dropMounts(cs)
		c.shared[k] = &sharedContainers{raw: bytes.Clone(raw), cs: cs}
	}
	return cs, nil
}

// The pods of a workload (a pod with a controller) keep no volumes and no
// volume mounts: archfit reads neither, the workload's template has them,
// and the ServiceAccount admission plugin names every pod's token volume
// at random (kube-api-access-xxxxx), which would keep the pods of one
// ReplicaSet from sharing their containers. A pod of its own keeps them.
func dropMounts(cs []corev1.Container) {
	for i := range cs {
		cs[i].VolumeMounts = nil
	}
}

// dropVolumes drops a workload's pod's volumes and the mounts in its
// container statuses, and keeps only its conditions that are not True:
// archfit reads why a pod is not scheduled, initialized or ready, never
// that it is, and a running pod's five conditions are a fifth of it.
func dropVolumes(p *corev1.Pod) {
	p.Spec.Volumes = nil
	for _, ss := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for i := range ss {
			ss[i].VolumeMounts = nil
		}
	}
	// A new slice of what is kept, so that the decoded one (capacity 8
	// for five) is garbage.
	var keep []corev1.PodCondition
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			keep = append(keep, c)
		}
	}
	p.Status.Conditions = slices.Clip(keep)
}

// slimWorkloadPod drops from a workload's pod, decoded whole, what such a
// pod keeps no copy of (dropMounts, dropVolumes).
func slimWorkloadPod(p *corev1.Pod) {
	dropVolumes(p)
	dropMounts(p.Spec.InitContainers)
	dropMounts(p.Spec.Containers)
}

// tokenVolume is how the API server names the service-account token volume
// it adds to a pod, followed by five random characters.
const tokenVolume = "kube-api-access-"

// sameButTokenVolume says whether a and b are the same text but for the
// five characters after each "kube-api-access-": the container lists of
// two pods of one ReplicaSet, which mount their own token volumes.
func sameButTokenVolume(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for {
		i := bytes.Index(a, []byte(tokenVolume))
		if i < 0 {
			return bytes.Equal(a, b)
		}
		n := i + len(tokenVolume)
		if n+5 > len(a) || !bytes.Equal(a[:n], b[:n]) {
			return false
		}
		a, b = a[n+5:], b[n+5:]
	}
}

// labels decodes a pod's labels (raw, nil when absent), or returns the map
// of the last pod of that owner when its text was the same. The pods of a
// ReplicaSet carry the same labels (pod-template-hash included); nothing
// in archfit writes to a pod's labels.
func (c *itemDecoder) labels(owner types.UID, raw []byte) (map[string]string, error) {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if owner != "" {
		if e := c.sharedLabels[owner]; e != nil && bytes.Equal(e.raw, raw) {
			return e.labels, nil
		}
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if owner != "" {
		c.sharedLabels[owner] = &sharedLabels{raw: bytes.Clone(raw), labels: m}
	}
	return m, nil
}
