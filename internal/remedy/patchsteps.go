package remedy

// The steps of Patch, in the order it takes them.

import (
	"github.com/archfit/archfit/internal/cluster"

	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// placed is one location of the scheduling fields with what is there.
type placed struct {
	loc  location
	spec *scheduling
}

// readPodSpec finds obj's kind and the scheduling fields of its pod
// template(s) (following an owner unless told not to) and starts its Result.
func readPodSpec(obj *unstructured.Unstructured, allowed []string, o options) (*Result, []placed, error) {
	ref := refOf(obj)
	kind, err := lookupKind(ref)
	if err != nil {
		return nil, nil, err
	}
	if err := redirect(obj, ref, o.ignoreOwner); err != nil {
		return nil, nil, err
	}
	locs, err := kind.locations(obj, ref)
	if err != nil {
		return nil, nil, err
	}
	var out []placed
	if kind.sched == nil {
		if v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, kind.podSpec...); !isMap(v) {
			return nil, nil, fmt.Errorf("%s: %w at %s", ref, ErrNoPodTemplate, strings.Join(kind.podSpec, "."))
		}
		spec, err := readScheduling(obj, locs[0])
		if err != nil {
			return nil, nil, fmt.Errorf("reading the pod spec of %s: %w", ref, err)
		}
		out = append(out, placed{loc: locs[0], spec: spec})
	} else {
		for _, l := range locs {
			spec, err := readScheduling(obj, l)
			if err != nil {
				return nil, nil, fmt.Errorf("reading the scheduling fields of %s: %w", ref, err)
			}
			out = append(out, placed{loc: l, spec: spec})
		}
	}
	podSpec := kind.podSpec
	if podSpec == nil {
		podSpec = locs[0].affinity[:len(locs[0].affinity)-1]
	}
	res := &Result{
		Object:      ref,
		PodSpecPath: pointer(podSpec...),
		Allowed:     allowed,
		Recreate:    kind.recreate,
		Immutable:   kind.immutable && !suspendedNeverStarted(obj),
		kind:        kind,
		podSpec:     podSpec,
		loc:         locs[0],
		locs:        locs,
		orig:        obj,
		source:      o.source,
		sourceNS:    o.sourceNS,
		found:       o.found,
	}
	return res, out, nil
}

// scheduling is what Patch reads of a pod spec: the fields it judges and
// writes (converting the whole spec would cost more than the rest of
// Patch).
type scheduling struct {
	NodeSelector map[string]string   `json:"nodeSelector,omitempty"`
	Affinity     *corev1.Affinity    `json:"affinity,omitempty"`
	Tolerations  []corev1.Toleration `json:"tolerations,omitempty"`
}

// readScheduling reads the scheduling fields at one location: only they
// are judged and patched.
func readScheduling(obj *unstructured.Unstructured, l location) (*scheduling, error) {
	var m map[string]any // most workloads have none of them
	for _, f := range [...]struct {
		name string
		path []string
	}{{"nodeSelector", l.nodeSelector}, {"affinity", l.affinity}, {"tolerations", l.tolerations}} {
		if f.path == nil {
			continue
		}
		if v, ok := cluster.Get(obj.Object, f.path); ok {
			if m == nil {
				m = make(map[string]any, 3)
			}
			m[f.name] = v
		}
	}
	s := &scheduling{}
	if m != nil {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// ensure returns the operations that create the missing objects above
// path (a Strimzi resource with no template.pod yet), once per patch.
func (r *Result) ensure(obj *unstructured.Unstructured, path []string) []step {
	var ops []step
	for i := 1; i < len(path); i++ {
		p := path[:i]
		if _, ok := cluster.Get(obj.Object, p); ok {
			continue
		}
		k := pointer(p...)
		if r.created == nil {
			r.created = map[string]bool{}
		}
		if !r.created[k] {
			r.created[k] = true
			ops = append(ops, newStep("add", k, map[string]any{}))
		}
	}
	return ops
}

// judgeNodeSelector judges a nodeSelector on the arch labels: a conflict,
// or true when it pins allowed archs, which is enough for the whole pod
// (nodeSelector and required affinity must both hold).
func (r *Result) judgeNodeSelector(sel map[string]string) bool {
	reqs := selectorRequirements(sel)
	if len(reqs) == 0 {
		return false
	}
	admits, safe, _ := archAdmission(reqs, r.Allowed)
	if len(intersect(admits, r.Allowed)) == 0 {
		r.Conflicts = append(r.Conflicts, Conflict{
			Code:    CodeArchConstraintConflict,
			Path:    pointer(r.loc.nodeSelector...),
			Pinned:  admits,
			Message: fmt.Sprintf("nodeSelector %s admits %s, but the workload can run only on %s", formatSelector(sel), describe(admits), strings.Join(r.Allowed, ", ")),
		})
		return false
	}
	return safe
}

// requiredTerms is the pod's required node affinity, nil if none.
func requiredTerms(spec *scheduling) *corev1.NodeSelector {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil {
		return nil
	}
	return spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}

// termsPath is the path of the required nodeSelectorTerms.
func (r *Result) termsPath() []string {
	return append(slices.Clone(r.loc.affinity), "nodeAffinity", requiredField, "nodeSelectorTerms")
}

// judgeTerms decides every required nodeSelectorTerm (decideTerm), records
// the conflicts, and returns the indexes of the terms that get the arch
// requirement.
func (r *Result) judgeTerms(required *corev1.NodeSelector) []int {
	if required == nil {
		return nil
	}
	var toAdd []int
	for i, term := range required.NodeSelectorTerms {
		d := decideTerm(term, r.Allowed)
		d.Index = i
		d.Path = pointer(append(r.termsPath(), strconv.Itoa(i))...)
		r.Terms = append(r.Terms, d)
		switch d.Action {
		case TermConflict:
			r.Conflicts = append(r.Conflicts, Conflict{
				Code:    CodeArchConstraintConflict,
				Path:    d.Path,
				Pinned:  d.Admits,
				Message: fmt.Sprintf("required nodeSelectorTerm %d admits %s, but the workload can run only on %s", i, describe(d.Admits), strings.Join(r.Allowed, ", ")),
			})
		case TermAdded:
			toAdd = append(toAdd, i)
		}
	}
	return toAdd
}

// block: a conflict stops the whole patch; the terms that would have got
// the requirement are blocked and the object stays as it is.
func (r *Result) block(obj *unstructured.Unstructured) {
	r.retarget(TermBlocked)
	r.Ops = []Operation{}
	r.patched = obj
	r.Notes = append(r.Notes, "the workload pins an architecture it cannot run on: fix the constraint by hand; archfit does not overwrite it")
}

// markPinned: the nodeSelector pins the pod already, no term of terms
// (a range of r.Terms) gets the requirement.
func (r *Result) markPinned(terms [2]int) {
	for i := terms[0]; i < terms[1]; i++ {
		if r.Terms[i].Action == TermAdded {
			r.Terms[i].Action = TermPinned
		}
	}
}

// retarget turns the terms that would get the requirement into action a.
func (r *Result) retarget(a TermAction) {
	for i := range r.Terms {
		if r.Terms[i].Action == TermAdded {
			r.Terms[i].Action = a
		}
	}
}

// affinityOps adds the arch requirement: a whole required node affinity
// where there is none, else to each term of toAdd (with a test of what is
// there, so a concurrent edit fails the patch instead of being overwritten).
func (r *Result) affinityOps(obj *unstructured.Unstructured, spec *scheduling, toAdd []int) []step {
	req := archRequirement(r.Allowed)
	required := requiredTerms(spec)
	switch {
	case spec.Affinity == nil:
		return append(r.ensure(obj, r.loc.affinity), newStep("add", pointer(r.loc.affinity...), map[string]any{
			"nodeAffinity": map[string]any{requiredField: newRequired(req)},
		}))
	case spec.Affinity.NodeAffinity == nil:
		p := r.loc.affinity
		return []step{testOp(obj, p), newStep("add", pointer(append(slices.Clone(p), "nodeAffinity")...), map[string]any{requiredField: newRequired(req)})}
	case required == nil:
		p := append(slices.Clone(r.loc.affinity), "nodeAffinity")
		return []step{testOp(obj, p), newStep("add", pointer(append(p, requiredField)...), newRequired(req))}
	case len(required.NodeSelectorTerms) == 0:
		r.Notes = append(r.Notes, "requiredDuringSchedulingIgnoredDuringExecution has no nodeSelectorTerms: the pod admits no node, and adding a term would change that")
		return nil
	case len(toAdd) == 0:
		return nil
	}
	ops := []step{testOp(obj, r.termsPath())}
	for _, i := range toAdd {
		tp := append(r.termsPath(), strconv.Itoa(i))
		if len(required.NodeSelectorTerms[i].MatchExpressions) > 0 {
			ops = append(ops, newStep("add", pointer(append(tp, "matchExpressions", "-")...), req))
		} else {
			ops = append(ops, newStep("add", pointer(append(tp, "matchExpressions")...), []corev1.NodeSelectorRequirement{req}))
		}
	}
	return ops
}

// tolerationOps adds the tolerations for the tainted pools the workload may
// now use (missingTolerations).
func (r *Result) tolerationOps(obj *unstructured.Unstructured, have []corev1.Toleration, taints map[string][]corev1.Taint) []step {
	tols := missingTolerations(have, r.Allowed, taints)
	r.AddedTolerations = append(r.AddedTolerations, tols...)
	if len(tols) == 0 {
		return nil
	}
	p := r.loc.tolerations
	if p == nil {
		r.Notes = append(r.Notes, fmt.Sprintf("%s has no tolerations field archfit knows: tolerate %s by hand", r.Object.Kind, taintList(tols)))
		r.AddedTolerations = nil
		return nil
	}
	if len(have) == 0 {
		return append(r.ensure(obj, p), newStep("add", pointer(p...), tols))
	}
	var ops []step
	for _, t := range tols {
		ops = append(ops, newStep("add", pointer(append(slices.Clone(p), "-")...), t))
	}
	return ops
}

// finish records the operations and the patched object (obj itself when
// nothing changes, else a copy of the parts the ops change, sharing the
// rest with obj); when nothing changes, a note says so and the patch is
// empty.
func (r *Result) finish(obj *unstructured.Unstructured, steps []step) error {
	r.Ops = make([]Operation, len(steps))
	for i, s := range steps {
		r.Ops[i] = s.Operation
	}
	r.Changed = slices.ContainsFunc(r.Ops, func(o Operation) bool { return o.Op != "test" })
	if !r.Changed {
		r.Ops = []Operation{}
		r.Notes = append(r.Notes, fmt.Sprintf("%s already admits only nodes of allowed architectures (%s): nothing to patch", r.Object, strings.Join(r.Allowed, ", ")))
		r.patched = obj
		return nil
	}
	p := newPatcher(obj)
	for i, s := range steps {
		if err := p.apply(s.Operation, s.val, true); err != nil {
			return fmt.Errorf("applying the patch of %s: operation %d (%s %s): %w", r.Object, i, s.Op, s.Path, err)
		}
	}
	r.patched = p.result()
	return nil
}

// taintList names the taints tolerations are for.
func taintList(tols []corev1.Toleration) string {
	var out []string
	for _, t := range tols {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		out = append(out, s+":"+string(t.Effect))
	}
	return strings.Join(out, ", ")
}

// kindNotes says what the kind demands to make the patch take effect.
func (r *Result) kindNotes() {
	if r.kind.note != "" {
		r.Notes = append(r.Notes, r.kind.note)
	}
	if r.kind.recreate {
		r.Notes = append(r.Notes, "a running Pod's affinity cannot change: delete the Pod and create it again from the patched manifest (better: run it under a Deployment)")
	}
	switch {
	case r.Immutable:
		r.Notes = append(r.Notes, "a Job's pod template is immutable once created (scheduling fields change only while it is suspended and has never started): delete the Job and create it again from the patched manifest, or patch what creates it")
	case r.kind.immutable:
		r.Notes = append(r.Notes, "the Job is suspended and has never started, so the API server accepts new scheduling directives; apply before resuming it")
	}
}
