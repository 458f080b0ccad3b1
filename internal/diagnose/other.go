package diagnose

import (
	"github.com/archfit/archfit/internal/object"

	"fmt"
	"sort"
	"strings"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
)

// NotArch is a failing container that got no finding: archfit looked at it
// and found nothing architecture-related (OOMKilled, an application crash,
// a missing Secret...). Listed so nobody chases architecture for it.
type NotArch struct {
	Workload  object.Ref `json:"workload"`
	Pod       string     `json:"pod"`
	Container string     `json:"container,omitempty"`
	Reason    string     `json:"reason"`
}

// NotArchFailures lists the failing pods of workloads without findings,
// one entry per workload and container.
func NotArchFailures(snap *cluster.Snapshot, fs []finding.Finding) []NotArch {
	explained := map[string]bool{}
	for _, f := range fs {
		if f.Workload != nil {
			explained[f.Workload.String()] = true
		}
	}
	seen := map[string]bool{}
	out := []NotArch{}
	for _, p := range snap.FailingPods() {
		ref := object.Ref{Kind: cluster.KindPod, Namespace: p.Namespace, Name: p.Name}
		if w := p.Workload; w != nil {
			ref = object.Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
		}
		if explained[ref.String()] {
			continue
		}
		_, name := p.Failing()
		if seen[ref.String()+"|"+name] {
			continue
		}
		seen[ref.String()+"|"+name] = true
		out = append(out, NotArch{Workload: ref, Pod: p.Name, Container: name, Reason: failReason(p, name)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Workload.String() < out[j].Workload.String() })
	return out
}

func failReason(p *cluster.Pod, container string) string {
	if container == "" {
		if p.Status.Reason != "" {
			return p.Status.Reason
		}
		for _, c := range p.Status.Conditions {
			if c.Reason != "" && c.Status == "False" {
				return c.Reason + ": " + c.Message
			}
		}
		return string(p.Status.Phase)
	}
	cs, _ := p.Container(container)
	var parts []string
	if w := cs.Waiting; w != nil {
		s := w.Reason
		if w.Message != "" && w.Reason != "CrashLoopBackOff" {
			s += ": " + w.Message
		}
		parts = append(parts, s)
	}
	t := cs.LastTerminated
	if cs.Terminated != nil {
		t = cs.Terminated
	}
	if t != nil {
		parts = append(parts, fmt.Sprintf("%s, exit code %d", t.Reason, t.ExitCode))
	}
	return strings.Join(parts, "; ")
}
