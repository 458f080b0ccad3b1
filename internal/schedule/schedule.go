// Package schedule answers, once for every command, where a pod template may
// be placed: which nodes its required node affinity, nodeSelector and
// tolerations admit, and which architectures its own constraints pin.
// It is pure: the scheduler's own matchers over node labels and taints.
package schedule

import (
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Node labels that carry the architecture. The kubelet sets both from its
// own GOARCH; a node's beta label, when present, equals kubernetes.io/arch.
const (
	LabelArch     = "kubernetes.io/arch"
	LabelArchBeta = "beta.kubernetes.io/arch"
)

// IsArchKey reports whether a node label key carries the architecture.
func IsArchKey(k string) bool { return k == LabelArch || k == LabelArchBeta }

// KnownArchs are the architectures a pin is evaluated against.
var KnownArchs = []string{"386", "amd64", "arm", "arm64", "ppc64le", "riscv64", "s390x"}

// MatchesLabels reports whether a node with these labels satisfies the pod
// spec's nodeSelector and required node affinity (matchFields are matched
// against the node name, empty here).
func MatchesLabels(spec *corev1.PodSpec, labels map[string]string) bool {
	return matches(nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity), labels)
}

func matches(req nodeaffinity.RequiredNodeAffinity, labels map[string]string) bool {
	node := &corev1.Node{}
	node.Labels = labels
	ok, err := req.Match(node)
	return err == nil && ok
}

// Admits reports whether a pod of spec may be scheduled to node: its
// nodeSelector and required node affinity match the node, the node is not
// cordoned, and the pod tolerates every NoSchedule/NoExecute taint.
func Admits(spec *corev1.PodSpec, node *corev1.Node) bool {
	if node == nil || node.Spec.Unschedulable {
		return false
	}
	req := nodeaffinity.GetRequiredNodeAffinity(&corev1.Pod{Spec: *spec})
	if ok, err := req.Match(node); err != nil || !ok {
		return false
	}
	return Tolerates(spec.Tolerations, node.Spec.Taints)
}

// Tolerates reports whether tols tolerate every taint that keeps pods off
// (NoSchedule, NoExecute); PreferNoSchedule never does.
func Tolerates(tols []corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		if !Blocks(taints[i]) {
			continue
		}
		if !Tolerated(tols, &taints[i]) {
			return false
		}
	}
	return true
}

// Blocks reports whether a taint keeps intolerant pods off its node.
func Blocks(t corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// Tolerated reports whether one of tols tolerates t.
func Tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	logger := klog.Background()
	for i := range tols {
		if tols[i].ToleratesTaint(logger, t, false) {
			return true
		}
	}
	return false
}

// PinnedArchs returns the architectures a pod spec's nodeSelector and
// required node affinity admit as far as the arch labels go, and whether
// they constrain the architecture at all. Terms are ORed, requirements in a
// term ANDed; a term that says nothing about the arch admits every one.
func PinnedArchs(spec *corev1.PodSpec) (archs []string, pinned bool) {
	// Archs named in the constraints count too (an exotic one pinned by In).
	var named []string
	for _, k := range []string{LabelArch, LabelArchBeta} {
		if v, ok := spec.NodeSelector[k]; ok {
			named = append(named, v)
			pinned = true
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, r := range t.MatchExpressions {
				if IsArchKey(r.Key) {
					pinned = true
					named = append(named, r.Values...)
				}
			}
		}
	}
	if !pinned {
		return nil, false
	}
	archOnly := archConstraints(spec)
	out := []string{}
	for _, arch := range ArchUniverse(KnownArchs, named...) {
		l := map[string]string{LabelArch: arch, LabelArchBeta: arch}
		if matches(archOnly, l) || matches(archOnly, map[string]string{LabelArch: arch}) {
			out = append(out, arch)
		}
	}
	sort.Strings(out)
	return out, true
}

// archConstraints keeps only the arch requirements of the spec: a term with
// none admits any node as far as the arch goes.
func archConstraints(spec *corev1.PodSpec) nodeaffinity.RequiredNodeAffinity {
	var sel map[string]string
	for _, k := range []string{LabelArch, LabelArchBeta} {
		if v, ok := spec.NodeSelector[k]; ok {
			if sel == nil {
				sel = map[string]string{}
			}
			sel[k] = v
		}
	}
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nodeaffinity.NewRequiredNodeAffinity(sel, nil)
	}
	ns := &corev1.NodeSelector{}
	for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		var nt corev1.NodeSelectorTerm
		for _, e := range t.MatchExpressions {
			if IsArchKey(e.Key) {
				nt.MatchExpressions = append(nt.MatchExpressions, e)
			}
		}
		if len(nt.MatchExpressions) == 0 {
			if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
				// An empty term admits nothing; keep it so.
				ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, t)
				continue
			}
			nt.MatchExpressions = []corev1.NodeSelectorRequirement{{Key: LabelArch, Operator: corev1.NodeSelectorOpExists}}
		}
		ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, nt)
	}
	return nodeaffinity.NewRequiredNodeAffinity(sel, &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: ns}})
}

// MaxNamedArchs bounds the architectures named in a pod's constraints that
// are evaluated besides KnownArchs: a manifest may list a million values
// (an attacker-written one will), and each is a probe against every
// requirement. Named values past the bound are judged as unnamed ones.
const MaxNamedArchs = 64

// ArchUniverse is base plus the distinct values named, at most
// MaxNamedArchs of them beyond base, in order.
func ArchUniverse(base []string, named ...string) []string {
	out := slices.Clone(base)
	seen := make(map[string]bool, len(base))
	for _, v := range base {
		seen[v] = true
	}
	extra := 0
	for _, v := range named {
		if v == "" || seen[v] {
			continue
		}
		if extra == MaxNamedArchs {
			break
		}
		seen[v] = true
		out = append(out, v)
		extra++
	}
	return out
}
