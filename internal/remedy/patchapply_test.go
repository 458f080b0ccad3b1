package remedy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// realWorkloads are the workloads of the vendored GitOps files, as
// unstructured objects read from YAML (integers int64).
func realWorkloads(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, name := range []string{"argo-cd-install-slice.yaml", "microservices-demo-kubernetes-manifests.yaml"} {
		src, err := os.ReadFile(filepath.Join("testdata", "gitops", name))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, workloadDocs(t, src)...)
	}
	if len(out) < 10 {
		t.Fatalf("%d workloads in the GitOps files", len(out))
	}
	return out
}

// applyOps and a real RFC 6902 implementation (evanphx/json-patch applied
// to the object's JSON) agree on random patches of real workloads: the
// same object, or both an error; and the input object is never changed.
// The generator keeps off the cases where that library departs from the
// RFC (TestApplyOpsRFC covers them).
func TestApplyOpsMatchesJSONPatch(t *testing.T) {
	n := 150
	if testing.Short() || raceEnabled {
		n = 40
	}
	rng := rand.New(rand.NewPCG(13, 2026))
	var applied, failed int
	for _, obj := range realWorkloads(t) {
		before := obj.DeepCopy()
		for i := range n {
			ops := randomOps(rng, obj.Object)
			desc := func() string { return fmt.Sprintf("%s/%s case %d: %s", obj.GetKind(), obj.GetName(), i, mustJSON(ops)) }
			got, err := applyOps(obj, ops)
			want, werr := viaJSONPatch(obj, ops)
			switch {
			case err != nil && werr == nil:
				t.Fatalf("%s: applyOps failed (%v), evanphx/json-patch did not", desc(), err)
			case err == nil && werr != nil:
				t.Fatalf("%s: applyOps succeeded, evanphx/json-patch failed: %v", desc(), werr)
			case err != nil:
				failed++
			default:
				applied++
				if !reflect.DeepEqual(want, got.Object) { // int64 is not float64
					t.Fatalf("%s: results differ (-json-patch +applyOps):\n%s", desc(), cmp.Diff(want, got.Object))
				}
			}
			if !reflect.DeepEqual(before.Object, obj.Object) {
				t.Fatalf("%s: the input object changed (-before +after):\n%s", desc(), cmp.Diff(before.Object, obj.Object))
			}
		}
	}
	t.Logf("%d patches applied, %d failed alike", applied, failed)
	if applied < failed/2 || failed < applied/10 {
		t.Errorf("the generator misses a class of cases: %d applied, %d failed", applied, failed)
	}
}

// viaJSONPatch applies ops with evanphx/json-patch to obj's JSON and reads
// the result as an unstructured object holds it.
func viaJSONPatch(obj *unstructured.Unstructured, ops []Operation) (map[string]any, error) {
	doc, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch([]byte(mustJSON(ops)))
	if err != nil {
		return nil, err
	}
	out, err := p.Apply(doc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := utiljson.Unmarshal(out, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// randomOps makes 1-5 operations, each against the document as the ones
// before it left it (tracked with applyOps; a failing op ends the list).
func randomOps(rng *rand.Rand, doc map[string]any) []Operation {
	var ops []Operation
	cur := &unstructured.Unstructured{Object: doc}
	for range 1 + rng.IntN(5) {
		o := randomOp(rng, cur.Object)
		ops = append(ops, o)
		next, err := applyOps(cur, []Operation{o})
		if err != nil {
			break
		}
		cur = next
	}
	return ops
}

// randomOp picks a node of doc (any, uniformly) and makes an operation on
// it, on a new member or element beside it, or on a path that is not
// there.
func randomOp(rng *rand.Rand, doc map[string]any) Operation {
	type array struct {
		path []string
		n    int
	}
	type place struct {
		path         []string
		node, parent any
		arrays       []array // on the way, for adds into them
	}
	var all []place
	var walk func(p place)
	walk = func(p place) {
		all = append(all, p)
		switch n := p.node.(type) {
		case map[string]any:
			keys := make([]string, 0, len(n))
			for k := range n {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(place{append(slices.Clone(p.path), k), n[k], n, p.arrays})
			}
		case []any:
			arrays := append(slices.Clone(p.arrays), array{p.path, len(n)})
			for i, v := range n {
				walk(place{append(slices.Clone(p.path), strconv.Itoa(i)), v, n, arrays})
			}
		}
	}
	walk(place{node: doc})
	at := all[rng.IntN(len(all))]
	path, node, parent, arrays := at.path, at.node, at.parent, at.arrays
	addPath := func() []string {
		if len(arrays) > 0 && rng.IntN(3) == 0 {
			a := arrays[rng.IntN(len(arrays))]
			switch rng.IntN(8) {
			case 0:
				return append(slices.Clone(a.path), "-")
			case 1:
				return append(slices.Clone(a.path), strconv.Itoa(a.n+1)) // past the end
			}
			return append(slices.Clone(a.path), strconv.Itoa(rng.IntN(a.n+1)))
		}
		if rng.IntN(3) > 0 || len(path) == 0 {
			switch n := node.(type) {
			case map[string]any:
				return append(slices.Clone(path), pick(rng, []string{"archfit", "a/b", "t~x", "~1", "x.y"}))
			case []any:
				if rng.IntN(2) == 0 {
					return append(slices.Clone(path), "-")
				}
				return append(slices.Clone(path), strconv.Itoa(rng.IntN(len(n)+1)))
			}
		}
		switch p := parent.(type) {
		case []any:
			if rng.IntN(8) == 0 {
				return append(slices.Clone(path[:len(path)-1]), strconv.Itoa(len(p)+1)) // past the end
			}
			return append(slices.Clone(path[:len(path)-1]), strconv.Itoa(rng.IntN(len(p)+1)))
		case map[string]any:
			return append(slices.Clone(path[:len(path)-1]), pick(rng, []string{"archfit", "a/b", "t~x"}))
		}
		return append(slices.Clone(path), "archfit")
	}
	missing := func() []string {
		p := append(slices.Clone(path), "nope")
		if rng.IntN(2) == 0 {
			p = append(p, "deeper")
		}
		return p
	}
	// No null is added: the library reads a null it added as unequal to
	// null in a later test (the nulls of the input compare fine; the
	// RFC's null is in TestApplyOpsRFC).
	value := func() any {
		switch rng.IntN(6) {
		case 0:
			return "v"
		case 1:
			return int64(rng.IntN(100))
		case 2:
			return map[string]any{"k": []any{"x", true, 1.5}}
		case 3:
			return []any{}
		case 4:
			return false
		}
		if node == nil {
			return "null"
		}
		return node // a copy of what is there
	}
	switch rng.IntN(24) {
	case 0, 1, 2, 3, 4, 5, 6, 7:
		return NewOp("add", pointer(addPath()...), value())
	case 8, 9, 10:
		if len(path) == 0 {
			// The whole document: the library turns null into [], the
			// object must stay an object.
			return NewOp("replace", "", map[string]any{"kind": "X", "spec": map[string]any{}})
		}
		return NewOp("replace", pointer(path...), value())
	case 11, 12:
		if len(path) == 0 {
			return NewOp("test", "", node)
		}
		return NewOp("remove", pointer(path...), nil)
	case 13:
		return NewOp("replace", pointer(missing()...), "v")
	case 14:
		return NewOp("remove", pointer(missing()...), nil)
	case 15:
		// (The library passes a test of null on a missing path, the RFC
		// does not: never generated.)
		return NewOp("test", pointer(missing()...), value())
	case 16:
		return NewOp("test", pointer(path...), value()) // mostly fails
	}
	return NewOp("test", pointer(path...), node)
}

// What RFC 6902 says where evanphx/json-patch is more lenient, and the
// cases archfit's patches rely on.
func TestApplyOpsRFC(t *testing.T) {
	doc := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"a":   map[string]any{"b": []any{int64(1), "x"}, "n": nil, "f": 1.5},
			"a/b": "slash", "m~n": "tilde",
		}}
	}
	tests := []struct {
		name string
		ops  string
		want string // the result as JSON, "" for an error
		is   error
	}{
		{"add appends with -", `[{"op":"add","path":"/a/b/-","value":{"k":"v"}}]`,
			`{"a":{"b":[1,"x",{"k":"v"}],"f":1.5,"n":null},"a/b":"slash","m~n":"tilde"}`, nil},
		{"add inserts at an index", `[{"op":"add","path":"/a/b/0","value":0}]`,
			`{"a":{"b":[0,1,"x"],"f":1.5,"n":null},"a/b":"slash","m~n":"tilde"}`, nil},
		{"add at the length appends", `[{"op":"add","path":"/a/b/2","value":2}]`,
			`{"a":{"b":[1,"x",2],"f":1.5,"n":null},"a/b":"slash","m~n":"tilde"}`, nil},
		{"add past the length", `[{"op":"add","path":"/a/b/3","value":2}]`, "", errNoPath},
		{"add replaces a member", `[{"op":"add","path":"/a/n","value":{}}]`,
			`{"a":{"b":[1,"x"],"f":1.5,"n":{}},"a/b":"slash","m~n":"tilde"}`, nil},
		{"add with a missing parent", `[{"op":"add","path":"/a/c/d","value":1}]`, "", errNoPath},
		{"add below null", `[{"op":"add","path":"/a/n/d","value":1}]`, "", errNoPath},
		{"escaped tokens", `[{"op":"test","path":"/a~1b","value":"slash"},{"op":"replace","path":"/m~0n","value":"t"}]`,
			`{"a":{"b":[1,"x"],"f":1.5,"n":null},"a/b":"slash","m~n":"t"}`, nil},
		{"a bad escape", `[{"op":"test","path":"/m~2n","value":"tilde"}]`, "", nil},
		{"a leading zero is no index", `[{"op":"test","path":"/a/b/01","value":"x"}]`, "", errNoPath},
		{"a negative index", `[{"op":"test","path":"/a/b/-1","value":"x"}]`, "", errNoPath},
		{"- only for add", `[{"op":"replace","path":"/a/b/-","value":"x"}]`, "", errNoPath},
		{"test of a missing member, even null", `[{"op":"test","path":"/a/zz","value":null}]`, "", errNoPath},
		{"test of a null member", `[{"op":"test","path":"/a/n","value":null}]`,
			`{"a":{"b":[1,"x"],"f":1.5,"n":null},"a/b":"slash","m~n":"tilde"}`, nil},
		{"numbers by value", `[{"op":"test","path":"/a/b/0","value":1.0},{"op":"test","path":"/a/f","value":15e-1}]`,
			`{"a":{"b":[1,"x"],"f":1.5,"n":null},"a/b":"slash","m~n":"tilde"}`, nil},
		{"objects whatever the order", `[{"op":"test","path":"/a","value":{"n":null,"f":1.5,"b":[1,"x"]}}]`,
			`{"a":{"b":[1,"x"],"f":1.5,"n":null},"a/b":"slash","m~n":"tilde"}`, nil},
		{"arrays in order", `[{"op":"test","path":"/a/b","value":["x",1]}]`, "", errTestFailed},
		{"a failing test stops the patch", `[{"op":"add","path":"/z","value":1},{"op":"test","path":"/a/f","value":"1.5"}]`, "", errTestFailed},
		{"remove", `[{"op":"remove","path":"/a/b/0"},{"op":"remove","path":"/a~1b"}]`,
			`{"a":{"b":["x"],"f":1.5,"n":null},"m~n":"tilde"}`, nil},
		{"replace a missing member", `[{"op":"replace","path":"/a/zz","value":1}]`, "", errNoPath},
		{"the whole object", `[{"op":"replace","path":"","value":{"k":1}},{"op":"test","path":"","value":{"k":1}}]`, `{"k":1}`, nil},
		{"the object stays one", `[{"op":"add","path":"","value":[1]}]`, "", nil},
		{"move is not archfit's", `[{"op":"move","from":"/a/f","path":"/g"}]`, "", nil},
		{"no value", `[{"op":"add","path":"/g"}]`, "", nil},
		{"no leading slash", `[{"op":"test","path":"a","value":1}]`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ops []Operation
			if err := json.Unmarshal([]byte(tt.ops), &ops); err != nil {
				t.Fatal(err)
			}
			obj := doc()
			got, err := applyOps(obj, ops)
			if diff := cmp.Diff(doc().Object, obj.Object); diff != "" {
				t.Errorf("the input changed (-before +after):\n%s", diff)
			}
			if tt.want == "" {
				if err == nil {
					t.Fatalf("applied: %s, want an error", mustJSON(got.Object))
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v, want %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := mustJSON(got.Object); s != tt.want {
				t.Errorf("got %s\nwant %s", s, tt.want)
			}
		})
	}
}

// A patch of a patch: later ops change in place what earlier ops copied,
// and never what the input holds.
func TestApplyOpsCopiesOnlyWhatChanges(t *testing.T) {
	obj := realWorkloads(t)[0]
	before := obj.DeepCopy()
	ops := []Operation{
		NewOp("add", "/spec/template/spec/tolerations", []any{}),
		NewOp("add", "/spec/template/spec/tolerations/-", map[string]any{"key": "a"}),
		NewOp("add", "/spec/template/spec/tolerations/0/value", "v"),
		NewOp("add", "/metadata/annotations", map[string]any{}),
		NewOp("add", "/metadata/annotations/x", "y"),
	}
	got, err := applyOps(obj, ops)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before.Object, obj.Object); diff != "" {
		t.Fatalf("the input changed (-before +after):\n%s", diff)
	}
	tols, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "tolerations")
	if want := []any{map[string]any{"key": "a", "value": "v"}}; !cmp.Equal(tols, want) {
		t.Errorf("tolerations %v, want %v", tols, want)
	}
	// What the patch does not touch is shared, not copied.
	sameMap := func(a, b any) bool {
		x, _ := a.(map[string]any)
		y, _ := b.(map[string]any)
		return x != nil && fmt.Sprintf("%p", x) == fmt.Sprintf("%p", y)
	}
	if !sameMap(obj.Object["status"], got.Object["status"]) && obj.Object["status"] != nil {
		t.Error("status was copied")
	}
	if sel := []string{"spec", "selector"}; !sameMap(field(obj, sel), field(got, sel)) {
		t.Error("spec.selector was copied")
	}
	if p := []string{"spec", "template", "spec"}; sameMap(field(obj, p), field(got, p)) {
		t.Error("the pod spec it changed is the input's")
	}
}

func field(u *unstructured.Unstructured, path []string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
	return v
}

// Patches computed at once from one object (workloads are judged
// concurrently) give one answer and leave it alone; run with -race.
func TestPatchConcurrentlyOnOneObject(t *testing.T) {
	for _, obj := range realWorkloads(t)[:4] {
		before := obj.DeepCopy()
		var wg sync.WaitGroup
		out := make([]string, 8)
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := Patch(obj, []string{"arm64"}, WithTaints("arm64", gpuTaint))
				if err != nil {
					t.Error(err)
					return
				}
				y, err := res.Render(FormatYAML)
				if err != nil {
					t.Error(err)
				}
				out[i] = string(y) + mustJSON(res.Ops)
			}()
		}
		wg.Wait()
		for _, o := range out[1:] {
			if o != out[0] {
				t.Fatalf("%s: concurrent patches differ", obj.GetName())
			}
		}
		if diff := cmp.Diff(before.Object, obj.Object); diff != "" {
			t.Fatalf("%s: the input changed (-before +after):\n%s", obj.GetName(), diff)
		}
	}
}

// plain converts the values Patch writes exactly as decoding their JSON
// would (the patched object must be what applying the printed patch
// gives): random requirements, terms, node selectors and tolerations,
// with empty and nil lists, alone, in lists and in maps.
func TestPlainIsDecodedJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 2026))
	toleration := func() corev1.Toleration {
		tol := corev1.Toleration{}
		if rng.IntN(2) == 0 {
			tol.Key = pick(rng, []string{LabelArch, "gpu", "a/b"})
		}
		if rng.IntN(2) == 0 {
			tol.Operator = corev1.TolerationOpExists
		}
		if rng.IntN(2) == 0 {
			tol.Value = "arm64"
		}
		if rng.IntN(2) == 0 {
			tol.Effect = propEffect[rng.IntN(3)]
		}
		if rng.IntN(3) == 0 {
			s := int64(rng.IntN(3)) - 1
			tol.TolerationSeconds = &s
		}
		return tol
	}
	selector := func() *corev1.NodeSelector {
		switch rng.IntN(5) {
		case 0:
			return nil
		case 1:
			return &corev1.NodeSelector{}
		case 2:
			return &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{}}}}
		}
		ns := &corev1.NodeSelector{}
		for range rng.IntN(3) {
			ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, randomTerm(rng))
		}
		return ns
	}
	for i := range 2000 {
		var v any
		switch rng.IntN(7) {
		case 0:
			v = randomRequirement(rng)
		case 1:
			r := randomRequirement(rng)
			if rng.IntN(2) == 0 {
				r.Values = []string{}
			}
			v = []corev1.NodeSelectorRequirement{r}
		case 2:
			v = toleration()
		case 3:
			var tols []corev1.Toleration
			for range rng.IntN(3) {
				tols = append(tols, toleration())
			}
			v = tols
		case 4:
			v = selector()
		case 5:
			v = map[string]any{"nodeAffinity": map[string]any{requiredField: selector()}}
		default:
			v = map[string]any{}
		}
		var want any
		if err := utiljson.Unmarshal([]byte(mustJSON(v)), &want); err != nil {
			t.Fatal(err)
		}
		if got := plain(v); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: %s: plain gives %#v\nwant %#v", i, mustJSON(v), got, want)
		}
	}
}
