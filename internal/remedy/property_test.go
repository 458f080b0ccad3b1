package remedy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

var (
	propArchs  = []string{"amd64", "arm64", "s390x", "ppc64le"}
	propZones  = []string{"a", "b", "c"}
	propPools  = []string{"x", "y"}
	propNodes  = []string{"node-1", "node-2", "node-3"}
	propEffect = []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute, corev1.TaintEffectPreferNoSchedule}
)

// TestPatchProperty: for random existing constraints and random nodes, the
// patched pod admits a node exactly when the original admitted it and the
// node's arch is allowed, per the scheduler's own matcher; the json-patch
// (applied by a real RFC 6902 implementation) and the strategic merge patch
// (applied by apimachinery) give the same object; every taint of an
// allowed pool is tolerated afterwards.
func TestPatchProperty(t *testing.T) {
	n := 3000
	if testing.Short() || raceEnabled {
		n = 600
	}
	rng := rand.New(rand.NewPCG(5, 2026))
	var patched, noop, conflicts int
	for i := range n {
		spec := randomSpec(rng)
		allowed := randomSubset(rng, propArchs[:3])
		taints := map[string][]corev1.Taint{}
		var opts []Option
		for _, a := range propArchs {
			if rng.IntN(3) == 0 {
				tt := []corev1.Taint{{Key: LabelArch, Value: a, Effect: propEffect[rng.IntN(3)]}}
				if rng.IntN(2) == 0 {
					tt = append(tt, corev1.Taint{Key: "pool", Effect: corev1.TaintEffectNoSchedule})
				}
				taints[a] = tt
				opts = append(opts, WithTaints(a, tt...))
			}
		}
		nodes := randomNodes(rng)
		desc := func() string {
			b, _ := json.Marshal(spec)
			return fmt.Sprintf("case %d: allowed %v, taints %v, spec %s", i, allowed, taints, b)
		}

		obj := deploymentOf(t, spec)
		res, err := Patch(obj, allowed, opts...)
		if err != nil {
			t.Fatalf("%s: Patch: %v", desc(), err)
		}
		orig := podOf(spec)

		if len(res.Conflicts) > 0 {
			conflicts++
			checkConflicts(t, res, spec, allowed, nodes, desc)
			continue
		}
		if !res.Changed {
			noop++
		} else {
			patched++
		}

		viaJSON, viaMerge := applyBoth(t, obj, res, desc)
		if diff := cmp.Diff(viaJSON.Spec.Template.Spec, viaMerge.Spec.Template.Spec); diff != "" {
			t.Fatalf("%s: json-patch and merge patch disagree (-json +merge):\n%s", desc(), diff)
		}
		after := &corev1.Pod{Spec: viaJSON.Spec.Template.Spec}
		for _, node := range nodes {
			was := mustMatch(t, orig, node, desc)
			is := mustMatch(t, after, node, desc)
			want := was && slices.Contains(allowed, node.Labels[LabelArch])
			if is != want {
				t.Fatalf("%s:\nnode %s %v: original admits %v, patched admits %v, want %v\npatch: %s",
					desc(), node.Name, node.Labels, was, is, want, mustJSON(res.Ops))
			}
		}
		// Everything but affinity.nodeAffinity.required and tolerations is untouched.
		before, after2 := spec.DeepCopy(), viaJSON.Spec.Template.Spec.DeepCopy()
		for _, s := range []*corev1.PodSpec{before, after2} {
			if s.Affinity != nil && s.Affinity.NodeAffinity != nil {
				s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = nil
			}
			s.Tolerations = nil
		}
		normalizeEmpty(before)
		normalizeEmpty(after2)
		if diff := cmp.Diff(before, after2); diff != "" {
			t.Fatalf("%s: the patch touched other fields (-before +after):\n%s", desc(), diff)
		}
		if !slices.Equal(spec.Tolerations, viaJSON.Spec.Template.Spec.Tolerations[:len(spec.Tolerations)]) {
			t.Fatalf("%s: existing tolerations changed", desc())
		}
		for _, a := range allowed {
			for _, taint := range taints[a] {
				if taint.Effect == corev1.TaintEffectPreferNoSchedule {
					continue
				}
				if !slices.ContainsFunc(viaJSON.Spec.Template.Spec.Tolerations, func(tol corev1.Toleration) bool {
					return tol.ToleratesTaint(klog.Background(), &taint, false)
				}) {
					t.Fatalf("%s: taint %v of allowed arch %s is not tolerated", desc(), taint, a)
				}
			}
		}
	}
	t.Logf("%d cases: %d patched, %d already constrained, %d conflicts", n, patched, noop, conflicts)
	if patched == 0 || noop == 0 || conflicts == 0 {
		t.Errorf("the generator misses a class of cases")
	}
}

// normalizeEmpty treats an affinity left with nothing in it as absent.
func normalizeEmpty(s *corev1.PodSpec) {
	if s.Affinity != nil && s.Affinity.NodeAffinity != nil && s.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution == nil &&
		s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		s.Affinity.NodeAffinity = nil
	}
	if s.Affinity != nil && *s.Affinity == (corev1.Affinity{}) {
		s.Affinity = nil
	}
}

func checkConflicts(t *testing.T, res *Result, spec corev1.PodSpec, allowed []string, nodes []*corev1.Node, desc func() string) {
	t.Helper()
	if len(res.Ops) != 0 || res.Changed {
		t.Fatalf("%s: a conflict came with a patch", desc())
	}
	for _, c := range res.Conflicts {
		var probe *corev1.Pod
		switch {
		case c.Path == "/spec/template/spec/nodeSelector":
			probe = &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: map[string]string{}}}
			for _, k := range []string{LabelArch, LabelArchBeta} {
				if v, ok := spec.NodeSelector[k]; ok {
					probe.Spec.NodeSelector[k] = v
				}
			}
		default:
			idx := -1
			for _, d := range res.Terms {
				if d.Path == c.Path {
					idx = d.Index
				}
			}
			if idx < 0 {
				t.Fatalf("%s: conflict at unknown path %s", desc(), c.Path)
			}
			term := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[idx]
			probe = &corev1.Pod{Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: archOnly(term.MatchExpressions)}}},
			}}}}
		}
		admitsSome := false
		for _, node := range nodes {
			if mustMatch(t, probe, node, desc) {
				admitsSome = true
				if slices.Contains(allowed, node.Labels[LabelArch]) {
					t.Fatalf("%s: conflict %q, but the constraint admits allowed node %v", desc(), c.Message, node.Labels)
				}
			}
		}
		_ = admitsSome
	}
}

func archOnly(reqs []corev1.NodeSelectorRequirement) []corev1.NodeSelectorRequirement {
	var out []corev1.NodeSelectorRequirement
	for _, r := range reqs {
		if isArchKey(r.Key) {
			out = append(out, r)
		}
	}
	return out
}

func applyBoth(t *testing.T, obj *unstructured.Unstructured, res *Result, desc func() string) (viaJSON, viaMerge *appsv1.Deployment) {
	t.Helper()
	orig, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	jp, err := res.Render(FormatJSONPatch)
	if err != nil {
		t.Fatalf("%s: %v", desc(), err)
	}
	p, err := jsonpatch.DecodePatch(jp)
	if err != nil {
		t.Fatalf("%s: decoding json-patch: %v", desc(), err)
	}
	a, err := p.Apply(orig)
	if err != nil {
		t.Fatalf("%s: applying json-patch %s: %v", desc(), jp, err)
	}
	mp, err := res.Render(FormatMerge)
	if err != nil {
		t.Fatalf("%s: %v", desc(), err)
	}
	b, err := strategicpatch.StrategicMergePatch(orig, mp, &appsv1.Deployment{})
	if err != nil {
		t.Fatalf("%s: applying merge patch: %v", desc(), err)
	}
	viaJSON, viaMerge = &appsv1.Deployment{}, &appsv1.Deployment{}
	if err := json.Unmarshal(a, viaJSON); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, viaMerge); err != nil {
		t.Fatal(err)
	}
	return viaJSON, viaMerge
}

func mustMatch(t *testing.T, pod *corev1.Pod, node *corev1.Node, desc func() string) bool {
	t.Helper()
	ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)
	if err != nil {
		t.Fatalf("%s: matching %v: %v", desc(), node.Labels, err)
	}
	return ok
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func deploymentOf(t *testing.T, spec corev1.PodSpec) *unstructured.Unstructured {
	t.Helper()
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "w"}},
				Spec:       spec,
			},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func podOf(spec corev1.PodSpec) *corev1.Pod { return &corev1.Pod{Spec: *spec.DeepCopy()} }

func randomSubset(rng *rand.Rand, from []string) []string {
	for {
		var out []string
		for _, s := range from {
			if rng.IntN(2) == 0 {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
}

func pick(rng *rand.Rand, from []string) string { return from[rng.IntN(len(from))] }

// randomNodes returns random nodes plus one of every arch with and without
// the beta label. A node always has kubernetes.io/arch; its beta label, when
// present, is equal (as the kubelet sets them).
func randomNodes(rng *rand.Rand) []*corev1.Node {
	var nodes []*corev1.Node
	mk := func(name, arch string, beta bool, extra map[string]string) *corev1.Node {
		l := map[string]string{LabelArch: arch}
		if beta {
			l[LabelArchBeta] = arch
		}
		for k, v := range extra {
			l[k] = v
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	}
	for _, a := range propArchs {
		nodes = append(nodes, mk("node-1", a, true, nil), mk("node-2", a, false, nil))
	}
	for range 30 {
		extra := map[string]string{}
		if rng.IntN(3) > 0 {
			extra["zone"] = pick(rng, propZones)
		}
		if rng.IntN(2) == 0 {
			extra["pool"] = pick(rng, propPools)
		}
		if rng.IntN(2) == 0 {
			extra["gen"] = strconv.Itoa(1 + rng.IntN(5))
		}
		nodes = append(nodes, mk(pick(rng, propNodes), pick(rng, propArchs), rng.IntN(3) > 0, extra))
	}
	return nodes
}

var propKeys = []string{LabelArch, LabelArchBeta, LabelArch, "zone", "pool", "gen"}

func randomRequirement(rng *rand.Rand) corev1.NodeSelectorRequirement {
	key := pick(rng, propKeys)
	values := propZones
	switch key {
	case LabelArch, LabelArchBeta:
		values = propArchs
	case "pool":
		values = propPools
	}
	r := corev1.NodeSelectorRequirement{Key: key}
	switch rng.IntN(8) {
	case 0, 1, 2:
		r.Operator, r.Values = corev1.NodeSelectorOpIn, randomSubset(rng, values)
	case 3, 4:
		r.Operator, r.Values = corev1.NodeSelectorOpNotIn, randomSubset(rng, values)
	case 5:
		r.Operator = corev1.NodeSelectorOpExists
	case 6:
		r.Operator = corev1.NodeSelectorOpDoesNotExist
	case 7:
		r.Operator = corev1.NodeSelectorOpGt
		if rng.IntN(2) == 0 {
			r.Operator = corev1.NodeSelectorOpLt
		}
		r.Values = []string{strconv.Itoa(rng.IntN(6))}
	}
	return r
}

func randomTerm(rng *rand.Rand) corev1.NodeSelectorTerm {
	var term corev1.NodeSelectorTerm
	for range rng.IntN(4) {
		term.MatchExpressions = append(term.MatchExpressions, randomRequirement(rng))
	}
	if rng.IntN(3) == 0 {
		op := corev1.NodeSelectorOpIn
		if rng.IntN(2) == 0 {
			op = corev1.NodeSelectorOpNotIn
		}
		term.MatchFields = []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: op, Values: []string{pick(rng, propNodes)}}}
	}
	return term
}

func randomSpec(rng *rand.Rand) corev1.PodSpec {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/c:1"}}}
	if rng.IntN(3) == 0 {
		spec.NodeSelector = map[string]string{}
		for range 1 + rng.IntN(2) {
			switch k := pick(rng, propKeys); k {
			case LabelArch, LabelArchBeta:
				spec.NodeSelector[k] = pick(rng, propArchs)
			case "pool":
				spec.NodeSelector[k] = pick(rng, propPools)
			case "gen":
				spec.NodeSelector[k] = strconv.Itoa(1 + rng.IntN(5))
			default:
				spec.NodeSelector[k] = pick(rng, propZones)
			}
		}
	}
	if rng.IntN(3) == 0 {
		spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoSchedule}}
		if rng.IntN(2) == 0 {
			spec.Tolerations = append(spec.Tolerations, corev1.Toleration{Key: LabelArch, Operator: corev1.TolerationOpExists})
		}
	}
	switch rng.IntN(6) {
	case 0: // no affinity
	case 1: // affinity without node affinity
		spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone"}}},
		}}
	default:
		na := &corev1.NodeAffinity{}
		if rng.IntN(2) == 0 {
			na.PreferredDuringSchedulingIgnoredDuringExecution = []corev1.PreferredSchedulingTerm{{Weight: 5, Preference: randomTerm(rng)}}
		}
		if rng.IntN(5) > 0 {
			na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
			for range 1 + rng.IntN(3) {
				na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = append(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms, randomTerm(rng))
			}
		}
		spec.Affinity = &corev1.Affinity{NodeAffinity: na}
	}
	return spec
}
