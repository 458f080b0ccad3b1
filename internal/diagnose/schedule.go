package diagnose

import (
	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/schedule"

	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
)

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
	pinned, pins := schedule.PinnedArchs(&p.Spec)
	if !pins {
		return finding.Finding{}, false
	}
	nodeArchs := clusterArchs(snap)
	var problems []string
	for _, cs := range p.Containers() {
		if cs.Role == cluster.RoleEphemeral {
			continue
		}
		r := images.Get(request(specContainer(&p.Spec, cs.Name), cs.Image))
		if r == nil || r.Error != nil {
			continue
		}
		if len(intersect(pinned, r.Architectures)) == 0 {
			problems = append(problems, fmt.Sprintf("container %s image %s runs only on %s", cs.Name, cs.Image, orNone(strings.Join(r.Architectures, ", "))))
			ev = append(ev, fmt.Sprintf("archfit: %s runs on %s", cs.Image, orNone(strings.Join(r.Architectures, ", "))))
		}
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
	f.Confidence = finding.High
	if len(ev) == 0 {
		f.Confidence, f.Missing = finding.Medium, []string{MissingEvents}
	}
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

// atRisk finds the healthy workloads (no failing pod) whose inspected
// images cannot run on some node pool their pods may be scheduled to: the
// audit's judgement (single-arch-at-risk exists once), on the images the
// run inspected. Without nodes nothing is at risk: diagnose assumes no pool.
func atRisk(snap *cluster.Snapshot, images *Images, failing map[*cluster.Workload]bool) []finding.Finding {
	if len(snap.Nodes) == 0 {
		return nil
	}
	var healthy []*cluster.Workload
	for _, w := range snap.Workloads {
		if !failing[w] {
			healthy = append(healthy, w)
		}
	}
	fs := audit.AtRisk(snap, healthy, images, true)
	for i := range fs {
		// Name a node the pods may land on and fail, as pod findings do.
		w := snap.Workload(fs[i].Workload.ID())
		for _, n := range snap.Nodes {
			if w != nil && platform.String(&n.Platform) == fs[i].NodePlatform && schedule.Admits(&w.Template.Spec, n.Object) {
				fs[i].Node = n.Name
				break
			}
		}
		fs[i].Confidence = finding.High
	}
	return fs
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
		pinned, pins := schedule.PinnedArchs(&w.Template.Spec)
		if !pins {
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
		f.Evidence, f.Confidence = ev, finding.High
		out = append(out, f)
	}
	return out
}
