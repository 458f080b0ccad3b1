package serve

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/archfit/archfit/internal/audit"
)

// decisions remembers recent decisions by what they depend on: the pod's
// namespace, spec, controller and ignore annotation, with the nodes, the
// waivers and the known images they were made from. The replicas of one
// ReplicaSet are admitted with the same spec, so a rollout computes one
// remedy, not one per pod. Entries live memoTTL at most (a tag's knowledge
// expires on its own clock) and at most memoMax are kept.
type decisions struct {
	mu      sync.Mutex
	entries map[[32]byte]memoEntry
}

type memoEntry struct {
	d       Decision
	nodes   *nodeView
	waivers *[]audit.Waiver
	gen     uint64
	at      time.Time
}

const (
	memoTTL = 10 * time.Second
	memoMax = 1024
)

type memoKey struct {
	Namespace   string                  `json:"ns"`
	Spec        *corev1.PodSpec         `json:"spec"`
	Owners      []metav1.OwnerReference `json:"owners,omitempty"`
	Hash        string                  `json:"hash,omitempty"`
	Ignore      string                  `json:"ignore,omitempty"`
	PullSecrets string                  `json:"cred,omitempty"`
}

func keyOf(p *corev1.Pod) ([32]byte, bool) {
	// Volumes do not change a decision, and the ServiceAccount admission
	// plugin names each pod's token volume at random: leave them out.
	spec := p.Spec
	spec.Volumes = nil
	spec.InitContainers = withoutMounts(spec.InitContainers)
	spec.Containers = withoutMounts(spec.Containers)
	spec.EphemeralContainers = nil
	b, err := json.Marshal(memoKey{Namespace: p.Namespace, Spec: &spec, Owners: p.OwnerReferences,
		Hash: p.Labels["pod-template-hash"], Ignore: p.Annotations[IgnoreKey], PullSecrets: credID(p)})
	if err != nil {
		return [32]byte{}, false
	}
	return sha256.Sum256(b), true
}

func (m *decisions) get(k [32]byte, nodes *nodeView, waivers *[]audit.Waiver, gen uint64) (Decision, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[k]
	if !ok || e.nodes != nodes || e.waivers != waivers || e.gen != gen || time.Since(e.at) > memoTTL {
		return Decision{}, false
	}
	return e.d, true
}

func (m *decisions) put(k [32]byte, d Decision, nodes *nodeView, waivers *[]audit.Waiver, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil || len(m.entries) >= memoMax {
		m.entries = map[[32]byte]memoEntry{}
	}
	m.entries[k] = memoEntry{d: d, nodes: nodes, waivers: waivers, gen: gen, at: time.Now()}
}

func withoutMounts(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		c.VolumeMounts = nil
		out[i] = c
	}
	return out
}
