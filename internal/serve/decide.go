package serve

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/remedy"
)

// Outcome is what archfit does (enforce) or would do (observe) with a pod.
type Outcome string

// Outcomes, as the decisions metric counts them.
const (
	// OutcomePinned: the required arch affinity (and tolerations) was set.
	OutcomePinned Outcome = "pinned"
	// OutcomeGated: an image is not known yet; the pod waits behind the
	// scheduling gate until the controller has read it.
	OutcomeGated Outcome = "gated"
	// OutcomeUnchanged: its images run on every architecture of the
	// cluster, or the pod is already kept on architectures they run.
	OutcomeUnchanged Outcome = "unchanged"
	// OutcomeSkipped: out of scope (namespace, opt-out, nodeName...).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeConflict: the pod pins an architecture its images cannot run,
	// or no node architecture runs them all: an event, never a rewrite.
	OutcomeConflict Outcome = "conflict"
	// OutcomeWaived: a waiver accepts the single-arch risk.
	OutcomeWaived Outcome = "waived"
	// OutcomeDaemonSet: a DaemonSet pod whose images cannot run on some
	// architecture; its owner's template is patched (--patch-owners) or
	// an event names it.
	OutcomeDaemonSet Outcome = "daemonset"
	// OutcomeError: archfit could not compute a patch; the pod is let
	// through unchanged (fail open).
	OutcomeError Outcome = "error"
)

// Decision is the verdict on one pod.
type Decision struct {
	Outcome Outcome
	// Allowed are the architectures every container's image runs on the
	// cluster's nodes.
	Allowed []string
	// Excluded are the cluster's architectures the pod must not reach.
	Excluded []string
	// Ops patch the pod (no test operations): affinity merged into every
	// nodeSelectorTerm as `archfit patch` does, plus tolerations of
	// tainted allowed pools.
	Ops []remedy.Operation
	// Unknown are the requests whose images are not known.
	Unknown []image.Request
	// Message says why, for events and the observe report.
	Message string
	// Owner is the pod's workload as far as its own ownerReferences say.
	Owner object.Ref

	rem *remedy.Remedy
}

// lookupFunc returns what is known of a request's image, nil if nothing.
type lookupFunc func(image.Request) *image.Report

// requests lists the image requests of a pod's containers (init, sidecars
// and main; never ephemeral), each with the container's command, args and
// PATH, as patch and audit request them.
func requests(w *cluster.Workload) []image.Request {
	var out []image.Request
	for _, c := range w.Containers {
		if c.Role == cluster.RoleEphemeral || c.Image == "" {
			continue
		}
		out = append(out, image.ForContainer(w.ContainerSpec(c.Name, c.Image), true))
	}
	return image.Requests(out)
}

// decide judges a pod with what is known of its images: the same remedy
// as every command (remedy.ForWorkload), whose patch of the pod itself is
// the admission patch. Pure: no network.
func decide(pod *corev1.Pod, nodes []*cluster.Node, lookup lookupFunc, waivers []audit.Waiver) Decision {
	w := cluster.PodWorkload(pod)
	d := Decision{Owner: ownerOf(pod)}
	reqs := requests(w)
	reps := make([]*image.Report, len(reqs))
	for i, q := range reqs {
		if reps[i] = lookup(q); reps[i] == nil {
			d.Unknown = append(d.Unknown, q)
		}
	}
	if len(d.Unknown) > 0 {
		d.Outcome = OutcomeGated
		var names []string
		for _, q := range d.Unknown {
			names = append(names, q.Ref)
		}
		d.Message = "waiting for archfit to read " + strings.Join(names, ", ")
		return d
	}
	if len(reqs) == 0 {
		d.Outcome, d.Message = OutcomeUnchanged, "no container image"
		return d
	}
	podObj := w.Original
	judged := *w
	judged.Original = nil // the pod is patched below, not its owner
	rem := remedy.ForWorkload(remedy.Input{Workload: &judged, Nodes: nodes, Images: image.NewSet(reqs, reps), Verify: true})
	d.rem = rem
	d.Allowed = rem.AllowedArchitectures
	clusterArchs := schedulableArchs(nodes)
	if rem.Conflict != nil {
		d.Outcome, d.Message = OutcomeConflict, rem.Conflict.Message
		return d
	}
	for _, a := range clusterArchs {
		if !slices.Contains(d.Allowed, a) {
			d.Excluded = append(d.Excluded, a)
		}
	}
	if len(d.Excluded) == 0 {
		d.Outcome = OutcomeUnchanged
		d.Message = "its images run on every architecture of the cluster (" + strings.Join(clusterArchs, ", ") + ")"
		return d
	}
	if reason, ok := waived(w, d.Owner, rem, d.Excluded, waivers); ok {
		d.Outcome, d.Message = OutcomeWaived, "waived: "+reason
		return d
	}
	res, err := rem.Repatch(podObj, remedy.IgnoreOwner())
	if err != nil {
		d.Outcome, d.Message = OutcomeError, fmt.Sprintf("computing the patch: %v", err)
		return d
	}
	if len(res.Conflicts) > 0 {
		d.Outcome = OutcomeConflict
		d.Message = fmt.Sprintf("its images run only on %s, but %s", strings.Join(d.Allowed, ", "), res.Conflicts[0].Message)
		return d
	}
	if !res.Changed {
		d.Outcome = OutcomeUnchanged
		d.Message = "already kept on " + strings.Join(d.Allowed, ", ")
		return d
	}
	for _, o := range res.Ops {
		if o.Op != "test" {
			d.Ops = append(d.Ops, o)
		}
	}
	d.Outcome = OutcomePinned
	d.Message = fmt.Sprintf("required kubernetes.io/arch in (%s): %s", strings.Join(d.Allowed, ", "), why(rem, d.Excluded))
	return d
}

// why names the containers that keep the pod off the excluded
// architectures.
func why(rem *remedy.Remedy, excluded []string) string {
	var parts []string
	for _, c := range rem.Containers {
		var no []string
		for _, a := range excluded {
			if !slices.Contains(c.Architectures, a) {
				no = append(no, a)
			}
		}
		if len(no) > 0 {
			parts = append(parts, fmt.Sprintf("%s container %q (%s) does not run on %s", c.Role, c.Name, c.Image, strings.Join(no, ", ")))
		}
	}
	return strings.Join(parts, "; ")
}

// waived reports whether waivers accept the single-arch risk of every
// container that restricts the pod: the ConfigMap's, and the pod's own
// archfit.io/ignore annotation entries ("single-arch-at-risk: why").
func waived(w *cluster.Workload, owner object.Ref, rem *remedy.Remedy, excluded []string, config []audit.Waiver) (string, bool) {
	ann, _ := audit.AnnotationWaivers(w)
	ws := append(ann, config...)
	if len(ws) == 0 {
		return "", false
	}
	reason := ""
	for _, c := range rem.Containers {
		restricts := false
		for _, a := range excluded {
			if !slices.Contains(c.Architectures, a) {
				restricts = true
			}
		}
		if !restricts {
			continue
		}
		f := finding.Finding{Code: finding.SingleArchAtRisk, Workload: &owner, Container: c.Name, Image: c.Image}
		i := slices.IndexFunc(ws, func(wv audit.Waiver) bool { return wv.Matches(f) })
		if i < 0 {
			return "", false
		}
		reason = ws[i].Reason
	}
	return reason, reason != ""
}

// schedulableArchs are the architectures of the nodes that take pods.
func schedulableArchs(nodes []*cluster.Node) []string {
	var out []string
	for _, n := range nodes {
		if a := n.Arch(); a != "" && !n.Unschedulable && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// ownerOf names the pod's workload from its own references, as the
// cluster package infers it (Deployment or Argo Rollout of a ReplicaSet,
// CronJob of a Job, else the controller itself, else the pod): waivers
// name workloads, not ReplicaSets or Jobs.
func ownerOf(p *corev1.Pod) object.Ref {
	ref, apiVersion := cluster.OwnerOf(p)
	return object.Ref{APIVersion: apiVersion, Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}
}
