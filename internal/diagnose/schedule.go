package diagnose

import (
	"github.com/archfit/archfit/internal/object"

	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/platform"
)

const (
	labelArch     = "kubernetes.io/arch"
	labelArchBeta = "beta.kubernetes.io/arch"
)

// knownArchs are the architectures a pin is evaluated against.
var knownArchs = []string{"386", "amd64", "arm", "arm64", "ppc64le", "riscv64", "s390x"}

// admittedArchs returns the architectures a pod spec's nodeSelector and
// required node affinity admit as far as the arch labels go (nil: no arch
// constraint at all). Terms are ORed; requirements in a term ANDed.
func admittedArchs(spec *corev1.PodSpec) []string {
	constrained := false
	set := slices.Clone(knownArchs)
	for _, k := range []string{labelArch, labelArchBeta} {
		if v, ok := spec.NodeSelector[k]; ok {
			constrained = true
			set = intersect(set, []string{v})
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		var union []string
		termsConstrain := false
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			ts := slices.Clone(knownArchs)
			for _, r := range t.MatchExpressions {
				if r.Key != labelArch && r.Key != labelArchBeta {
					continue
				}
				termsConstrain = true
				switch r.Operator {
				case corev1.NodeSelectorOpIn:
					ts = intersect(ts, r.Values)
				case corev1.NodeSelectorOpNotIn:
					ts = subtract(ts, r.Values)
				case corev1.NodeSelectorOpDoesNotExist:
					ts = nil
				}
			}
			union = unionOf(union, ts)
		}
		if termsConstrain {
			constrained = true
			set = intersect(set, union)
		}
	}
	if !constrained {
		return nil
	}
	if set == nil {
		set = []string{}
	}
	return set
}

// judgeUnschedulable: a Pending pod the scheduler could not place whose arch
// pin admits no architecture its images run, or none the cluster has.
func judgeUnschedulable(snap *cluster.Snapshot, p *cluster.Pod, images *Images) (finding.Finding, bool) {
	var ev []string
	unschedulable := false
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			unschedulable = true
			if cond.Message != "" {
				ev = append(ev, "condition PodScheduled Unschedulable: "+cond.Message)
			}
		}
	}
	for _, e := range p.Events {
		if e.Reason == "FailedScheduling" {
			unschedulable = true
			ev = append(ev, "event FailedScheduling: "+e.Message)
		}
	}
	if !unschedulable {
		return finding.Finding{}, false
	}
	pinned := admittedArchs(&p.Spec)
	if pinned == nil {
		return finding.Finding{}, false
	}
	nodeArchs := clusterArchs(snap)
	var problems []string
	imageArchs := slices.Clone(knownArchs)
	var imagesKnown []string
	for _, cs := range p.Containers() {
		if cs.Role == cluster.RoleEphemeral {
			continue
		}
		r := images.Get(request(specContainer(&p.Spec, cs.Name), cs.Image))
		if r == nil || r.Error != nil {
			continue
		}
		imagesKnown = append(imagesKnown, cs.Image)
		if len(intersect(pinned, r.Architectures)) == 0 {
			problems = append(problems, fmt.Sprintf("container %s image %s runs only on %s", cs.Name, cs.Image, orNone(strings.Join(r.Architectures, ", "))))
			ev = append(ev, fmt.Sprintf("archfit: %s runs on %s", cs.Image, orNone(strings.Join(r.Architectures, ", "))))
		}
		imageArchs = intersect(imageArchs, r.Architectures)
	}
	if len(nodeArchs) > 0 && len(intersect(pinned, nodeArchs)) == 0 {
		problems = append(problems, fmt.Sprintf("the cluster has no %s node (nodes: %s)", strings.Join(pinned, "/"), strings.Join(nodeArchs, ", ")))
		ev = append(ev, "archfit: node architectures "+strings.Join(nodeArchs, ", "))
	}
	if len(problems) == 0 {
		return finding.Finding{}, false
	}
	c := &containerCase{snap: snap, pod: p}
	f := c.base(finding.ArchConstraintConflict, fmt.Sprintf("pinned to %s by nodeSelector/affinity, but %s", orNone(strings.Join(pinned, ", ")), strings.Join(problems, "; ")))
	f.Container, f.ContainerType, f.Image = "", "", ""
	f.Evidence = dedup(ev)
	f.Confidence = High
	if len(ev) == 0 {
		f.Confidence, f.Missing = Medium, []string{MissingEvents}
	}
	_ = imagesKnown
	_ = imageArchs
	return f, true
}

// clusterArchs are the distinct node architectures, sorted.
func clusterArchs(snap *cluster.Snapshot) []string {
	var out []string
	for _, n := range snap.Nodes {
		if a := n.Arch(); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// schedulableNodes returns the nodes a pod of spec may be placed on: its
// required node affinity and nodeSelector match, and it tolerates every
// NoSchedule/NoExecute taint.
func schedulableNodes(snap *cluster.Snapshot, spec *corev1.PodSpec) []*cluster.Node {
	pod := &corev1.Pod{Spec: *spec}
	req := nodeaffinity.GetRequiredNodeAffinity(pod)
	var out []*cluster.Node
	for _, n := range snap.Nodes {
		if n.Object == nil || n.Unschedulable {
			continue
		}
		if ok, err := req.Match(n.Object); err != nil || !ok {
			continue
		}
		if !tolerates(spec.Tolerations, n.Taints) {
			continue
		}
		out = append(out, n)
	}
	return out
}

func tolerates(tols []corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		ok := false
		for j := range tols {
			if tols[j].ToleratesTaint(klog.Background(), t, false) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// atRisk finds healthy workloads (no failing pod) whose inspected images
// cannot run on some node pool their pods may be scheduled to.
func atRisk(snap *cluster.Snapshot, images *Images, failing map[*cluster.Workload]bool) []finding.Finding {
	var out []finding.Finding
	for _, w := range snap.Workloads {
		if failing[w] {
			continue
		}
		nodes := schedulableNodes(snap, &w.Template.Spec)
		if len(nodes) == 0 {
			continue
		}
		for _, ct := range w.Containers {
			if ct.Role == cluster.RoleEphemeral {
				continue
			}
			r := images.Get(request(specContainer(&w.Template.Spec, ct.Name), ct.Image))
			if r == nil || r.Error != nil {
				continue
			}
			// Pools whose arch this image cannot run.
			var pools []string
			var first *cluster.Node
			seen := map[string]bool{}
			for _, n := range nodes {
				a := n.Arch()
				if a == "" || slices.Contains(r.Architectures, a) {
					continue
				}
				name := n.Pool
				if name == "" {
					name = "(no pool label)"
				}
				k := name + " (" + platform.String(&n.Platform) + ")"
				if !seen[k] {
					seen[k] = true
					pools = append(pools, k)
				}
				if first == nil {
					first = n
				}
			}
			if len(pools) == 0 {
				continue
			}
			sort.Strings(pools)
			f := finding.New(finding.SingleArchAtRisk, fmt.Sprintf("container %s (%s) image %s runs only on %s, and nothing keeps the pods off %s", ct.Name, ct.Role, ct.Image, orNone(strings.Join(r.Architectures, ", ")), strings.Join(pools, ", ")))
			f.Workload = &object.Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
			f.Container, f.ContainerType, f.Image = ct.Name, string(ct.Role), ct.Image
			f.ImagePlatforms = r.Platforms
			f.Node, f.NodePlatform = first.Name, platform.String(&first.Platform)
			f.Evidence = []string{fmt.Sprintf("archfit: %s runs on %s", ct.Image, orNone(strings.Join(r.Architectures, ", "))),
				fmt.Sprintf("schedulable pools it cannot run on: %s", strings.Join(pools, ", "))}
			for _, p := range w.Pods {
				if p.Node != nil {
					f.Evidence = append(f.Evidence, fmt.Sprintf("runs today on %s (%s)", p.Node.Name, platform.String(&p.Node.Platform)))
					break
				}
			}
			f.Confidence = High
			out = append(out, f)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func subtract(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func unionOf(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// archTaints are the NoSchedule/NoExecute taints every node of arch has.
func archTaints(snap *cluster.Snapshot, arch string) []corev1.Taint {
	var common []corev1.Taint
	first := true
	for _, n := range snap.Nodes {
		if n.Arch() != arch {
			continue
		}
		var ts []corev1.Taint
		for _, t := range n.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
				ts = append(ts, t)
			}
		}
		if first {
			common, first = ts, false
			continue
		}
		var keep []corev1.Taint
		for _, t := range common {
			for _, u := range ts {
				if t.Key == u.Key && t.Value == u.Value && t.Effect == u.Effect {
					keep = append(keep, t)
					break
				}
			}
		}
		common = keep
	}
	return common
}

// pinnedConflicts: a workload that crashes or cannot pull on the
// architecture its own nodeSelector/affinity pins, when an image lacks that
// architecture, has its pin as the root cause (arch-constraint-conflict):
// an affinity patch cannot fix it, only a new pin or a new image can.
func pinnedConflicts(snap *cluster.Snapshot, images *Images, fs []finding.Finding) []finding.Finding {
	hit := map[string]bool{}
	for _, f := range fs {
		switch f.Code {
		case finding.WrongArchBinary, finding.MissingPlatform, finding.MislabeledPlatform:
			if f.Workload != nil {
				hit[f.Workload.String()] = true
			}
		case finding.ArchConstraintConflict:
			if f.Workload != nil {
				hit[f.Workload.String()] = false // already said
			}
		}
	}
	var out []finding.Finding
	for _, w := range snap.Workloads {
		ref := object.Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
		if !hit[ref.String()] {
			continue
		}
		pinned := admittedArchs(&w.Template.Spec)
		if pinned == nil {
			continue
		}
		var problems, ev []string
		for _, ct := range w.Containers {
			if ct.Role == cluster.RoleEphemeral {
				continue
			}
			r := images.Get(request(specContainer(&w.Template.Spec, ct.Name), ct.Image))
			if r == nil || r.Error != nil || len(intersect(pinned, r.Architectures)) > 0 {
				continue
			}
			problems = append(problems, fmt.Sprintf("container %s image %s runs only on %s", ct.Name, ct.Image, orNone(strings.Join(r.Architectures, ", "))))
			ev = append(ev, fmt.Sprintf("archfit: %s runs on %s", ct.Image, orNone(strings.Join(r.Architectures, ", "))))
		}
		if len(problems) == 0 {
			continue
		}
		ev = append([]string{"pod template pins kubernetes.io/arch to " + orNone(strings.Join(pinned, ", "))}, ev...)
		f := finding.New(finding.ArchConstraintConflict, fmt.Sprintf("pinned to %s by nodeSelector/affinity, but %s", orNone(strings.Join(pinned, ", ")), strings.Join(problems, "; ")))
		f.Workload = &ref
		f.Evidence, f.Confidence = ev, High
		out = append(out, f)
	}
	return out
}
