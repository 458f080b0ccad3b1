package remedy

import (
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/schedule"

	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
)

// Node labels that carry the architecture. The kubelet sets both from its
// own GOARCH; archfit relies on that: a node's beta label, when present,
// equals kubernetes.io/arch.
const (
	LabelArch     = "kubernetes.io/arch"
	LabelArchBeta = "beta.kubernetes.io/arch"
)

const requiredField = "requiredDuringSchedulingIgnoredDuringExecution"

// Option tunes Patch.
type Option func(*options)

type options struct {
	taints      map[string][]corev1.Taint
	source      []byte
	sourceNS    string
	found       *Source
	ignoreOwner bool
	// judgeOnly stops Patch once the constraints are judged, when they
	// do not conflict: the Result is then incomplete (ForWorkload's
	// DeferPatch).
	judgeOnly bool
}

// WithTaints declares the taints that the nodes of one architecture carry
// (those that keep an intolerant pod off every node of that architecture,
// e.g. GKE's kubernetes.io/arch=arm64:NoSchedule). For an allowed
// architecture, Patch adds a toleration for each NoSchedule or NoExecute
// taint the pod does not already tolerate.
func WithTaints(arch string, taints ...corev1.Taint) Option {
	return func(o *options) {
		if o.taints == nil {
			o.taints = map[string][]corev1.Taint{}
		}
		o.taints[arch] = append(o.taints[arch], taints...)
	}
}

// WithSource gives the file the object was read from, so that the yaml
// format edits that file in place, keeping comments, field order and the
// other documents of a multi-document file (a JSON file stays JSON). The
// document edited is the one that is exactly the object (SourceOf).
func WithSource(src []byte) Option {
	return func(o *options) { o.source = src }
}

// SourceNamespace is the namespace of the source's documents that have
// none, as `kubectl apply -n NS` gives them ("default" without -n): the
// document edited is the one that is the object in it.
func SourceNamespace(ns string) Option {
	return func(o *options) { o.sourceNS = ns }
}

// FromSource is WithSource and SourceNamespace of the document FindSource
// found, reusing what it parsed.
func FromSource(s *Source) Option {
	return func(o *options) { o.source, o.sourceNS, o.found = s.Data, s.namespace, s }
}

// IgnoreOwner patches the object even when a controller owns it (the
// owner would revert the change; use only for manifests about to be
// applied by hand).
func IgnoreOwner() Option {
	return func(o *options) { o.ignoreOwner = true }
}

// TermAction is what Patch did with one nodeSelectorTerm.
type TermAction string

// Term actions.
const (
	// TermAdded: the arch requirement was appended to the term.
	TermAdded TermAction = "added"
	// TermPinned: every node the term admits has an allowed arch (it pins
	// the arch with In on a subset of the allowed ones, or NotIn of all the
	// others...): left alone.
	TermPinned TermAction = "already-pinned"
	// TermDead: the term admits no node at all (empty term, an arch
	// requirement no node label can meet, or an invalid requirement): left
	// alone, since adding to it would change nothing.
	TermDead TermAction = "admits-nothing"
	// TermConflict: the term admits only architectures that are not allowed.
	TermConflict TermAction = "conflict"
	// TermBlocked: the term needs the requirement, but a conflict elsewhere
	// stops the whole patch.
	TermBlocked TermAction = "blocked-by-conflict"
)

// TermDecision records the decision for one nodeSelectorTerm.
type TermDecision struct {
	Index  int        `json:"index"`
	Path   string     `json:"path"`
	Action TermAction `json:"action"`
	// Admits are the architectures the term's arch requirements admit, when
	// it has any.
	Admits []string `json:"admits,omitempty"`
}

// Operation is one RFC 6902 JSON patch operation.
type Operation struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	// Value is absent for remove (and present, possibly null, otherwise).
	Value json.RawMessage `json:"value,omitempty"`
}

// NewOp builds an operation; value nil means none (remove).
func NewOp(kind, path string, value any) Operation {
	if value == nil && kind == "remove" {
		return Operation{Op: kind, Path: path}
	}
	return op(kind, path, value)
}

// Result is the interim patch of one workload.
type Result struct {
	Object object.Ref `json:"object"`
	// PodSpecPath is the JSON pointer of the pod spec that is patched.
	PodSpecPath string   `json:"podSpecPath"`
	Allowed     []string `json:"allowedArchitectures"`
	// Changed is false when the workload is already constrained correctly
	// (or cannot be patched: see Conflicts); the patch is then empty.
	Changed          bool                `json:"changed"`
	Terms            []TermDecision      `json:"terms,omitempty"`
	AddedTolerations []corev1.Toleration `json:"addedTolerations,omitempty"`
	// Conflicts are constraints that pin an architecture that is not
	// allowed. They are findings: Patch never overwrites them, and Render
	// returns ErrConflict.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Recreate: a bare Pod cannot change its affinity; it must be deleted
	// and created again from the patched manifest.
	Recreate bool `json:"recreate,omitempty"`
	// Immutable: a Job's pod template cannot change once the Job exists
	// (except scheduling fields while it is suspended and has never started).
	Immutable bool        `json:"immutable,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
	Ops       []Operation `json:"jsonPatch"`

	kind    kindInfo
	podSpec []string
	// loc is the location being patched (the first one once done).
	loc      location
	locs     []location
	created  map[string]bool // objects ensure added
	orig     *unstructured.Unstructured
	patched  *unstructured.Unstructured
	source   []byte
	sourceNS string
	found    *Source
	editNote string
}

// EditNote says, after Render(FormatYAML) with a source, that the object's
// document could not be edited line by line and was re-encoded whole; ""
// when only the lines of the change were written.
func (r *Result) EditNote() string { return r.editNote }

// Original returns the object the patch was computed against (the owner a
// redirect led to, when there was one): the one given to Patch, not a copy.
func (r *Result) Original() *unstructured.Unstructured { return r.orig }

// Patched returns a copy of the object with the patch applied.
func (r *Result) Patched() *unstructured.Unstructured { return r.patched.DeepCopy() }

// Patch computes the node-affinity patch that keeps obj's pods on nodes of
// the allowed architectures. obj is the owning workload (Deployment,
// StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob,
// Pod, PodTemplate or Argo Rollout).
//
// Every required nodeSelectorTerm gets `kubernetes.io/arch In allowed`
// (terms are ORed, so all need it; a term with only matchFields too). How a
// term is judged: its requirements on kubernetes.io/arch and
// beta.kubernetes.io/arch (ANDed, any operator) are evaluated for a node of
// every architecture (each allowed one, each one they name, and "any
// other"), with the beta label equal or absent, and then
//   - every passing node has an allowed arch (In on a subset of allowed,
//     possibly narrowed further): already pinned, left alone;
//   - no node passes (empty term, DoesNotExist on the arch label, invalid
//     requirement): the term admits nothing, left alone;
//   - nodes pass, none of an allowed arch (In [amd64] when only arm64 is
//     allowed, NotIn of every allowed arch): a conflict;
//   - otherwise (no arch requirement, Exists, NotIn of others, In with a
//     partial overlap): the requirement is appended, which narrows the
//     term to allowed archs without rewriting what is there.
//
// A nodeSelector on either label is judged the same way; one that already
// pins allowed archs makes the whole patch a no-op (nodeSelector and
// affinity must both hold). Any conflict stops the whole patch: it is
// reported in Result.Conflicts (a finding), never overwritten. Missing
// tolerations for tainted allowed pools are appended (WithTaints).
// Preferred terms, other tolerations and everything else stay as they are.
// Patched pods admit exactly the nodes the original admitted whose arch is
// allowed (the property test checks this against the scheduler's matcher).
//
// Patch does not modify obj. The Result refers to it (Original) and shares
// the parts the patch leaves alone with it: obj must not be modified while
// the Result is in use (Patched returns a copy to modify).
func Patch(obj *unstructured.Unstructured, allowed []string, opts ...Option) (*Result, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	allowed = sortedSet(allowed)
	if len(allowed) == 0 {
		return nil, ErrNoArchitecture
	}
	res, places, err := readPodSpec(obj, allowed, o)
	if err != nil {
		return nil, err
	}
	// Every location is judged before anything is written: a conflict in
	// one stops the whole patch.
	type judged struct {
		placed
		pinned bool
		toAdd  []int
		terms  [2]int // its range in res.Terms
	}
	var js []judged
	for _, p := range places {
		res.loc = p.loc
		j := judged{placed: p, terms: [2]int{len(res.Terms), 0}}
		j.pinned = res.judgeNodeSelector(p.spec.NodeSelector)
		j.toAdd = res.judgeTerms(requiredTerms(p.spec))
		j.terms[1] = len(res.Terms)
		js = append(js, j)
	}
	if len(res.Conflicts) > 0 {
		res.orig = obj
		res.block(obj)
		return res, nil
	}
	if o.judgeOnly {
		return res, nil
	}
	var ops []step
	for _, j := range js {
		res.loc = j.loc
		if j.pinned {
			// The terms were only inspected for conflicts: nothing to add.
			res.markPinned(j.terms)
		} else {
			ops = append(ops, res.affinityOps(obj, j.spec, j.toAdd)...)
		}
		ops = append(ops, res.tolerationOps(obj, j.spec.Tolerations, o.taints)...)
	}
	res.loc = places[0].loc
	if err := res.finish(obj, ops); err != nil {
		return nil, err
	}
	res.kindNotes()
	return res, nil
}

// suspendedNeverStarted: a Job with spec.suspend true and no
// status.startTime, whose node affinity, node selector and tolerations
// the API server lets change (Kubernetes >= 1.27).
func suspendedNeverStarted(obj *unstructured.Unstructured) bool {
	suspend, _, _ := unstructured.NestedBool(obj.Object, "spec", "suspend")
	start, _, _ := unstructured.NestedString(obj.Object, "status", "startTime")
	return suspend && start == ""
}

// redirect refuses objects whose pod template belongs to someone else.
func redirect(obj *unstructured.Unstructured, ref object.Ref, ignoreOwner bool) error {
	if ref.Kind == "Rollout" {
		if wr, ok, _ := unstructured.NestedMap(obj.Object, "spec", "workloadRef"); ok {
			to := object.Ref{Namespace: ref.Namespace}
			to.APIVersion, _ = wr["apiVersion"].(string)
			to.Kind, _ = wr["kind"].(string)
			to.Name, _ = wr["name"].(string)
			return &RedirectError{From: ref, To: to, Reason: "the Rollout takes its pod template from spec.workloadRef"}
		}
	}
	if ignoreOwner {
		return nil
	}
	for _, or := range obj.GetOwnerReferences() {
		if or.Controller != nil && *or.Controller {
			to := object.Ref{APIVersion: or.APIVersion, Kind: or.Kind, Namespace: ref.Namespace, Name: or.Name}
			return &RedirectError{From: ref, To: to, Reason: "its controller would revert the change"}
		}
	}
	return nil
}

func decideTerm(term corev1.NodeSelectorTerm, allowed []string) TermDecision {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return TermDecision{Action: TermDead}
	}
	var archReqs []corev1.NodeSelectorRequirement
	for _, r := range term.MatchExpressions {
		if isArchKey(r.Key) {
			archReqs = append(archReqs, r)
		}
	}
	if len(archReqs) == 0 {
		return TermDecision{Action: TermAdded}
	}
	admits, safe, valid := archAdmission(archReqs, allowed)
	switch {
	case !valid || len(admits) == 0:
		return TermDecision{Action: TermDead, Admits: admits}
	case safe:
		return TermDecision{Action: TermPinned, Admits: admits}
	case len(intersect(admits, allowed)) == 0:
		return TermDecision{Action: TermConflict, Admits: admits}
	}
	return TermDecision{Action: TermAdded, Admits: admits}
}

func isArchKey(k string) bool { return k == LabelArch || k == LabelArchBeta }

// otherArch stands for every architecture the requirements do not name.
const otherArch = "other"

// archAdmission evaluates the arch requirements (ANDed) against every node
// arch that matters: the allowed ones, those the requirements name, and
// "any other". A node carries kubernetes.io/arch, and the beta label either
// equal to it or not at all. It returns the archs some such node passing
// the requirements has (otherArch for unnamed ones), whether every such
// node has an allowed arch, and whether the requirements parse.
func archAdmission(reqs []corev1.NodeSelectorRequirement, allowed []string) (admits []string, safe, valid bool) {
	sel := labels.NewSelector()
	var named []string
	for _, r := range reqs {
		op, ok := selectorOps[r.Operator]
		if !ok {
			return nil, false, false
		}
		lr, err := labels.NewRequirement(r.Key, op, r.Values)
		if err != nil {
			return nil, false, false
		}
		sel = sel.Add(*lr)
		if r.Operator == corev1.NodeSelectorOpIn || r.Operator == corev1.NodeSelectorOpNotIn {
			named = append(named, r.Values...)
		}
	}
	// Bounded: an attacker-written manifest may name a million values.
	universe := append(sortedSet(schedule.ArchUniverse(allowed, named...)), otherArch)
	safe = true
	admits = []string{}
	for _, arch := range universe {
		v := arch
		if v == otherArch {
			v = "archfit-other-arch"
		}
		ok := sel.Matches(labels.Set{LabelArch: v}) || sel.Matches(labels.Set{LabelArch: v, LabelArchBeta: v})
		if !ok {
			continue
		}
		admits = append(admits, arch)
		if !slices.Contains(allowed, arch) {
			safe = false
		}
	}
	return admits, safe, true
}

var selectorOps = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

func selectorRequirements(ns map[string]string) []corev1.NodeSelectorRequirement {
	var reqs []corev1.NodeSelectorRequirement
	for _, k := range []string{LabelArch, LabelArchBeta} {
		if v, ok := ns[k]; ok {
			reqs = append(reqs, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{v}})
		}
	}
	return reqs
}

func formatSelector(ns map[string]string) string {
	var parts []string
	for _, k := range []string{LabelArch, LabelArchBeta} {
		if v, ok := ns[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

func describe(archs []string) string {
	if len(archs) == 0 {
		return "no node"
	}
	var out []string
	for _, a := range archs {
		if a == otherArch {
			a = "other architectures"
		}
		out = append(out, a)
	}
	return "only " + strings.Join(out, ", ")
}

func archRequirement(allowed []string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: LabelArch, Operator: corev1.NodeSelectorOpIn, Values: slices.Clone(allowed)}
}

func newRequired(req corev1.NodeSelectorRequirement) *corev1.NodeSelector {
	return &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{req}}}}
}

// missingTolerations returns the tolerations to add, in a stable order: for
// each allowed arch, each NoSchedule/NoExecute taint not yet tolerated.
func missingTolerations(have []corev1.Toleration, allowed []string, taints map[string][]corev1.Taint) []corev1.Toleration {
	var add []corev1.Toleration
	logger := klog.Background()
	for _, arch := range allowed {
		for _, t := range taints[arch] {
			if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
				continue
			}
			tolerated := func(tol corev1.Toleration) bool { return tol.ToleratesTaint(logger, &t, false) }
			if slices.ContainsFunc(have, tolerated) || slices.ContainsFunc(add, tolerated) {
				continue
			}
			tol := corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOpEqual, Value: t.Value, Effect: t.Effect}
			if t.Value == "" {
				tol.Operator, tol.Value = corev1.TolerationOpExists, ""
			}
			add = append(add, tol)
		}
	}
	return add
}

func op(kind, path string, value any) Operation {
	b, err := json.Marshal(value)
	if err != nil {
		panic(fmt.Sprintf("remedy: marshalling a patch value: %v", err)) // only our own types get here
	}
	return Operation{Op: kind, Path: path, Value: b}
}

// step is an operation Patch writes, with its value as the patched
// object holds it (plain), so that applying it decodes nothing.
type step struct {
	Operation
	val any
}

func newStep(kind, path string, value any) step {
	return step{op(kind, path, value), plain(value)}
}

// testOp guards the value at path as it is now, so that the patch fails
// rather than edits the wrong term after a concurrent change.
func testOp(obj *unstructured.Unstructured, path []string) step {
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	return step{op("test", pointer(path...), v), v} // only compared, never written
}
