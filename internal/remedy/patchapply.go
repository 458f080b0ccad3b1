package remedy

// Applying archfit's own JSON patches to an unstructured object, without
// encoding the object to JSON and back: a warm audit patches every
// workload at risk, and the round trip through encoding/json and a JSON
// patch library cost more than everything else Patch does.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// Errors of applyOps, as RFC 6902 names the cases.
var (
	errTestFailed = errors.New("test failed")
	errNoPath     = errors.New("path does not exist")
)

// applyOps applies ops to obj as RFC 6902 applies them to obj's JSON
// document: add, remove, replace and test (the operations archfit
// writes; move and copy are refused). It returns a new object and leaves
// obj as it was: only the maps and slices on the paths the ops change are
// copied, the rest is shared with obj. Values are decoded as unstructured
// objects hold them (integers as int64). A failing op fails the whole
// patch.
func applyOps(obj *unstructured.Unstructured, ops []Operation) (*unstructured.Unstructured, error) {
	p := newPatcher(obj)
	for i, o := range ops {
		if err := p.apply(o, nil, false); err != nil {
			return nil, fmt.Errorf("operation %d (%s %s): %w", i, o.Op, o.Path, err)
		}
	}
	return p.result(), nil
}

// patcher is one application of a patch: root is the document as patched
// so far; owned are the maps it made (copies, values it added), which
// later ops may change in place.
type patcher struct {
	root  map[string]any
	owned map[uintptr]bool
}

func newPatcher(obj *unstructured.Unstructured) *patcher {
	return &patcher{root: obj.Object, owned: map[uintptr]bool{}}
}

func (p *patcher) result() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: p.root}
}

// apply applies one operation. val is its value as an unstructured object
// holds it, when known (a value only this patch holds, or for a test one
// it only reads); otherwise the value is decoded.
func (p *patcher) apply(o Operation, val any, known bool) error {
	path, err := parsePointer(o.Path)
	if err != nil {
		return err
	}
	switch o.Op {
	case "add", "replace", "test":
		if len(o.Value) == 0 {
			return errors.New("the operation has no value")
		}
		if known {
			break
		}
		if err := utiljson.Unmarshal(o.Value, &val); err != nil {
			return fmt.Errorf("decoding the value: %w", err)
		}
	case "remove":
	default:
		return fmt.Errorf("unsupported operation %q", o.Op)
	}
	if o.Op == "test" {
		have, err := get(p.root, path)
		if err != nil {
			return err
		}
		if !sameJSON(have, val) {
			return errTestFailed
		}
		return nil
	}
	if len(path) == 0 {
		// The whole document: add and replace set it, remove cannot
		// leave an object.
		m, ok := val.(map[string]any)
		if o.Op == "remove" || !ok {
			return errors.New("the object must stay an object")
		}
		p.root = m
		return nil
	}
	root, err := p.edit(p.root, path, func(parent any, key string) (any, error) {
		return p.change(o.Op, parent, key, val)
	})
	if err != nil {
		return err
	}
	p.root = root.(map[string]any)
	return nil
}

// edit walks path from node to the parent of its last token and returns
// node with change applied to that parent: each map and slice on the way
// is copied unless this patch made it, and the copy is put in its parent.
func (p *patcher) edit(node any, path []string, change func(parent any, key string) (any, error)) (any, error) {
	if len(path) == 1 {
		return change(node, path[0])
	}
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[path[0]]
		if !ok {
			return nil, fmt.Errorf("%w: no member %q", errNoPath, path[0])
		}
		child, err := p.edit(child, path[1:], change)
		if err != nil {
			return nil, err
		}
		m := p.own(n)
		m[path[0]] = child
		return m, nil
	case []any:
		i, err := arrayIndex(path[0], len(n))
		if err != nil {
			return nil, err
		}
		child, err := p.edit(n[i], path[1:], change)
		if err != nil {
			return nil, err
		}
		s := append([]any(nil), n...)
		s[i] = child
		return s, nil
	}
	return nil, fmt.Errorf("%w: %q is below a value that is not an object or array", errNoPath, path[0])
}

// change applies one add, remove or replace of key to parent, returning
// the parent to put in its place.
func (p *patcher) change(op string, parent any, key string, val any) (any, error) {
	switch n := parent.(type) {
	case map[string]any:
		if _, ok := n[key]; !ok && op != "add" {
			return nil, fmt.Errorf("%w: no member %q", errNoPath, key)
		}
		m := p.own(n)
		if op == "remove" {
			delete(m, key)
		} else {
			m[key] = val
		}
		return m, nil
	case []any:
		if op == "add" {
			i := len(n)
			if key != "-" {
				var err error
				if i, err = arrayIndex(key, len(n)+1); err != nil {
					return nil, err
				}
			}
			s := make([]any, 0, len(n)+1)
			s = append(append(append(s, n[:i]...), val), n[i:]...)
			return s, nil
		}
		i, err := arrayIndex(key, len(n))
		if err != nil {
			return nil, err
		}
		if op == "remove" {
			s := make([]any, 0, len(n)-1)
			return append(append(s, n[:i]...), n[i+1:]...), nil
		}
		s := append([]any(nil), n...)
		s[i] = val
		return s, nil
	}
	return nil, fmt.Errorf("%w: %q is below a value that is not an object or array", errNoPath, key)
}

// own returns m itself when this patch made it, else a copy it now owns.
func (p *patcher) own(m map[string]any) map[string]any {
	if m != nil && p.owned[reflect.ValueOf(m).Pointer()] {
		return m
	}
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	p.owned[reflect.ValueOf(c).Pointer()] = true
	return c
}

// get returns the value at path.
func get(node any, path []string) (any, error) {
	for _, tok := range path {
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, fmt.Errorf("%w: no member %q", errNoPath, tok)
			}
			node = v
		case []any:
			i, err := arrayIndex(tok, len(n))
			if err != nil {
				return nil, err
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("%w: %q is below a value that is not an object or array", errNoPath, tok)
		}
	}
	return node, nil
}

// arrayIndex reads an RFC 6901 array index (digits, no leading zero;
// "-", the element after the last, exists for add only) below n.
func arrayIndex(tok string, n int) (int, error) {
	if tok == "" || len(tok) > 1 && tok[0] == '0' || strings.Trim(tok, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %q is not an array index", errNoPath, tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i >= n {
		return 0, fmt.Errorf("%w: index %s is out of range (%d elements)", errNoPath, tok, n)
	}
	return i, nil
}

// parsePointer splits an RFC 6901 JSON pointer into its reference tokens
// ("~1" is "/", "~0" is "~").
func parsePointer(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q does not start with /", s)
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		if !strings.Contains(t, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '~' {
				b.WriteByte(t[j])
				continue
			}
			if j+1 == len(t) || t[j+1] != '0' && t[j+1] != '1' {
				return nil, fmt.Errorf("JSON pointer %q: ~ must be followed by 0 or 1", s)
			}
			b.WriteByte("~/"[t[j+1]-'0'])
			j++
		}
		toks[i] = b.String()
	}
	return toks, nil
}

// sameJSON is RFC 6902's equality of JSON values: numbers by value,
// objects by members whatever their order, arrays element by element.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	x, ok := number(a)
	if !ok {
		return false
	}
	y, ok := number(b)
	return ok && x.equal(y)
}

// num is a JSON number as unstructured objects hold it: an int64 when it
// is an integer that fits, else a float64.
type num struct {
	i     int64
	f     float64
	isInt bool
}

func number(v any) (num, bool) {
	switch x := v.(type) {
	case int64:
		return num{i: x, isInt: true}, true
	case int:
		return num{i: int64(x), isInt: true}, true
	case int32:
		return num{i: int64(x), isInt: true}, true
	case float64:
		return num{f: x}, true
	case float32:
		return num{f: float64(x)}, true
	}
	return num{}, false
}

func (a num) equal(b num) bool {
	switch {
	case a.isInt && b.isInt:
		return a.i == b.i
	case !a.isInt && !b.isInt:
		return a.f == b.f
	case a.isInt:
		a, b = b, a
	}
	// a is a float, b an integer: equal when the float is that integer.
	return a.f == math.Trunc(a.f) && a.f >= -(1<<63) && a.f < 1<<63 && int64(a.f) == b.i
}

// plain is v as an unstructured object holds it: what decoding v's JSON
// gives (integers as int64). The values Patch writes (requirements,
// tolerations, node selectors, maps of them) are converted directly,
// others through JSON.
func plain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plain(e)
		}
		return m
	case *corev1.NodeSelector:
		if x == nil {
			return nil
		}
		return map[string]any{"nodeSelectorTerms": plainList(x.NodeSelectorTerms, plainTerm)}
	case corev1.NodeSelectorRequirement:
		return plainRequirement(x)
	case []corev1.NodeSelectorRequirement:
		return plainList(x, plainRequirement)
	case corev1.Toleration:
		return plainToleration(x)
	case []corev1.Toleration:
		return plainList(x, plainToleration)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("remedy: marshalling a patch value: %v", err)) // only our own types get here
	}
	var out any
	if err := utiljson.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("remedy: decoding a patch value: %v", err))
	}
	return out
}

// plainList is a list: null when nil, as encoding/json has it.
func plainList[T any](xs []T, f func(T) map[string]any) any {
	if xs == nil {
		return nil
	}
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func plainTerm(t corev1.NodeSelectorTerm) map[string]any {
	m := map[string]any{} // both lists omitempty
	if len(t.MatchExpressions) > 0 {
		m["matchExpressions"] = plainList(t.MatchExpressions, plainRequirement)
	}
	if len(t.MatchFields) > 0 {
		m["matchFields"] = plainList(t.MatchFields, plainRequirement)
	}
	return m
}

func plainRequirement(r corev1.NodeSelectorRequirement) map[string]any {
	m := map[string]any{"key": r.Key, "operator": string(r.Operator)}
	if len(r.Values) > 0 {
		vs := make([]any, len(r.Values))
		for i, v := range r.Values {
			vs[i] = v
		}
		m["values"] = vs
	}
	return m
}

func plainToleration(t corev1.Toleration) map[string]any {
	m := map[string]any{} // every field omitempty
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("key", t.Key)
	set("operator", string(t.Operator))
	set("value", t.Value)
	set("effect", string(t.Effect))
	if t.TolerationSeconds != nil {
		m["tolerationSeconds"] = *t.TolerationSeconds
	}
	return m
}
