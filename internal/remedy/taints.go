package remedy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/schedule"
)

// ArchTaints is archfit's one taint policy. It returns the taints a
// workload allowed on arch must tolerate to reach those nodes at all, and
// the others that keep it off them. A taint is tolerated only when every
// schedulable node of arch carries it (a taint of one pool, a GPU pool's
// say, is left alone: the workload was kept off it for another reason) and
// it is about the architecture: its key is an arch label, or its key or
// value names the architecture (arm64=true:NoSchedule, dedicated=graviton).
// A taint every node of arch has but that says nothing of architecture is
// returned in other, for a note: tolerating it would let the workload onto
// nodes it was kept off for other reasons. Cordoned nodes take no pods and
// do not count; taints the node lifecycle controller manages
// (node.kubernetes.io/..., node.cloudprovider.kubernetes.io/...) are
// transient and never tolerated.
func ArchTaints(nodes []*cluster.Node, arch string) (tolerate, other []corev1.Taint) {
	var common []corev1.Taint
	first := true
	for _, n := range nodes {
		if n.Arch() != arch || n.Unschedulable {
			continue
		}
		var ts []corev1.Taint
		for _, t := range n.Taints {
			if !schedule.Blocks(t) || strings.HasPrefix(t.Key, "node.kubernetes.io/") || strings.HasPrefix(t.Key, "node.cloudprovider.kubernetes.io/") {
				continue
			}
			ts = append(ts, corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
		}
		if first {
			common, first = ts, false
			continue
		}
		var keep []corev1.Taint
		for _, c := range common {
			for _, t := range ts {
				if c.MatchTaint(&t) && c.Value == t.Value {
					keep = append(keep, c)
					break
				}
			}
		}
		common = keep
	}
	for _, t := range common {
		if aboutArch(t, arch) {
			tolerate = append(tolerate, t)
		} else {
			other = append(other, t)
		}
	}
	return tolerate, other
}

// archWords are the words that name an architecture in taint keys and
// values.
var archWords = map[string][]string{
	"arm64": {"arm64", "aarch64", "arm", "graviton", "ampere", "cobalt", "axion"},
	"amd64": {"amd64", "x86", "x64", "x8664", "intel", "amd"},
	"arm":   {"arm", "armhf", "armv7"},
}

func aboutArch(t corev1.Taint, arch string) bool {
	if schedule.IsArchKey(t.Key) {
		return true
	}
	words := archWords[arch]
	if words == nil {
		words = []string{arch}
	}
	for _, tok := range strings.FieldsFunc(strings.ToLower(t.Key+" "+t.Value), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		for _, w := range words {
			if tok == w {
				return true
			}
		}
	}
	return false
}
