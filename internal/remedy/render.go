package remedy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Format of a rendered patch.
type Format string

// Formats (the --format values of `archfit patch`).
const (
	// FormatJSONPatch is RFC 6902: per-term adds guarded by test ops.
	FormatJSONPatch Format = "json-patch"
	// FormatMerge is a strategic merge patch carrying complete
	// nodeSelectorTerms and tolerations lists (SMP replaces those lists
	// wholesale). For custom resources (Argo Rollout) the same document is
	// a JSON merge patch (RFC 7386).
	FormatMerge Format = "merge"
	// FormatKustomize is a kustomization `patches` entry with its target,
	// then the JSON 6902 patch file it names.
	FormatKustomize Format = "kustomize"
	// FormatKubectl is a ready `kubectl patch` command line.
	FormatKubectl Format = "kubectl"
	// FormatYAML is the whole object patched; with WithSource, the source
	// file edited in place (comments and field order kept; a JSON file
	// stays JSON).
	FormatYAML Format = "yaml"
)

// Formats lists every format, in the order of the --format help.
var Formats = []Format{FormatJSONPatch, FormatMerge, FormatKustomize, FormatKubectl, FormatYAML}

// Render writes the patch in the given format. It returns ErrConflict when
// the workload pins a forbidden architecture. An unchanged workload renders
// as an empty patch ([] or {}) or, for kubectl, a comment saying so.
func (r *Result) Render(f Format) ([]byte, error) {
	if len(r.Conflicts) > 0 {
		var msgs []string
		for _, c := range r.Conflicts {
			msgs = append(msgs, c.Message)
		}
		return nil, fmt.Errorf("%s: %w: %s", r.Object, ErrConflict, strings.Join(msgs, "; "))
	}
	switch f {
	case FormatJSONPatch:
		return r.jsonPatch(true)
	case FormatMerge:
		return r.mergePatch()
	case FormatKustomize:
		return r.kustomize()
	case FormatKubectl:
		return r.kubectl()
	case FormatYAML:
		return r.yaml()
	}
	return nil, fmt.Errorf("%q: %w (want one of %s)", f, ErrUnknownFormat, joinFormats())
}

func joinFormats() string {
	var s []string
	for _, f := range Formats {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}

func (r *Result) jsonPatch(indent bool) ([]byte, error) {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(r.Ops, "", "  ")
	} else {
		b, err = json.Marshal(r.Ops)
	}
	if err != nil {
		return nil, err
	}
	if indent {
		b = append(b, '\n')
	}
	return b, nil
}

// MergePatch returns the strategic merge patch as a nested map: the pod
// spec path down to the complete nodeSelectorTerms and tolerations lists
// that changed. A list on the way (ECK's nodeSets) is carried whole: a
// merge patch cannot address one element.
func (r *Result) MergePatch() map[string]any {
	out := map[string]any{}
	under := func(path, prefix string) bool {
		return prefix != "" && (path == prefix || strings.HasPrefix(path, prefix+"/"))
	}
	for _, l := range r.locs {
		aff, tol := pointer(l.affinity...), ""
		if l.tolerations != nil {
			tol = pointer(l.tolerations...)
		}
		var affinity, tolerations bool
		for _, o := range r.Ops {
			if o.Op == "test" {
				continue
			}
			affinity = affinity || under(o.Path, aff)
			tolerations = tolerations || under(o.Path, tol)
		}
		if affinity {
			p := append(slices.Clone(l.affinity), "nodeAffinity", requiredField, "nodeSelectorTerms")
			terms, _, _ := unstructured.NestedFieldCopy(r.patched.Object, p...)
			r.setMerge(out, p, terms)
		}
		if tolerations {
			tols, _, _ := unstructured.NestedFieldCopy(r.patched.Object, l.tolerations...)
			r.setMerge(out, l.tolerations, tols)
		}
	}
	return out
}

// setMerge sets v at path in the merge patch m; when the path goes through
// a list, the patched object's whole list is set instead.
func (r *Result) setMerge(m map[string]any, path []string, v any) {
	for i, f := range path {
		if _, err := strconv.Atoi(f); err == nil && i > 0 {
			whole, _ := cluster.Get(r.patched.Object, path[:i])
			r.setMerge(m, path[:i], runtime.DeepCopyJSONValue(whole))
			return
		}
	}
	for _, f := range path[:len(path)-1] {
		next, ok := m[f].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[f] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func (r *Result) mergePatch() ([]byte, error) {
	b, err := json.MarshalIndent(r.MergePatch(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// KustomizePatch is a patch file and the kustomization entry that uses it.
type KustomizePatch struct {
	// FileName suggested for the patch file.
	FileName string
	// Entry is the `patches:` snippet of kustomization.yaml with the target.
	Entry []byte
	// Patch is the JSON 6902 patch in YAML (kustomize applies the test ops
	// too, so a base that changed shape fails the build instead of being
	// patched in the wrong place).
	Patch []byte
}

// Kustomize returns the patch as a kustomize patch file plus its target.
func (r *Result) Kustomize() (KustomizePatch, error) {
	gv := groupVersion(r.Object)
	kp := KustomizePatch{FileName: fmt.Sprintf("archfit-%s-%s.yaml", strings.ToLower(r.Object.Kind), r.Object.Name)}
	target := []string{}
	if gv.Group != "" {
		target = append(target, "group: "+gv.Group)
	}
	target = append(target, "version: "+gv.Version, "kind: "+r.Object.Kind, "name: "+r.Object.Name)
	if r.Object.Namespace != "" {
		target = append(target, "namespace: "+r.Object.Namespace)
	}
	var b bytes.Buffer
	b.WriteString("patches:\n  - path: " + kp.FileName + "\n    target:\n")
	for _, t := range target {
		b.WriteString("      " + t + "\n")
	}
	kp.Entry = b.Bytes()
	raw, err := json.Marshal(r.Ops)
	if err != nil {
		return kp, err
	}
	kp.Patch, err = jsonToYAML(raw)
	return kp, err
}

func (r *Result) kustomize() ([]byte, error) {
	kp, err := r.Kustomize()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# kustomization.yaml\n")
	b.Write(kp.Entry)
	b.WriteString("---\n# " + kp.FileName + "\n")
	b.Write(kp.Patch)
	return b.Bytes(), nil
}

func (r *Result) kubectl() ([]byte, error) {
	if !r.Changed {
		return []byte(fmt.Sprintf("# %s already admits only nodes of allowed architectures (%s): nothing to patch\n", r.Object, strings.Join(r.Allowed, ", "))), nil
	}
	var b bytes.Buffer
	if r.Recreate {
		// A Pod's affinity is immutable: recreate it from the patched
		// manifest, stripped of what the server set (nodeName would bind
		// it to the same node again).
		m := r.Patched()
		for _, f := range [][]string{
			{"status"}, {"spec", "nodeName"}, {"metadata", "resourceVersion"}, {"metadata", "uid"},
			{"metadata", "creationTimestamp"}, {"metadata", "managedFields"}, {"metadata", "generation"},
			{"metadata", "selfLink"},
		} {
			unstructured.RemoveNestedField(m.Object, f...)
		}
		y, err := yaml.Marshal(m.Object)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "# a Pod's affinity cannot change: this deletes %s and creates it again, patched\n", r.Object)
		fmt.Fprintf(&b, "kubectl delete %s %s%s --wait\n", r.kind.resource, shellQuote(r.Object.Name), nsFlag(r.Object.Namespace))
		fmt.Fprintf(&b, "kubectl create -f - <<'EOF'\n%sEOF\n", y)
		return b.Bytes(), nil
	}
	if r.Immutable {
		fmt.Fprintf(&b, "# the API server rejects this unless %s is suspended and has never started: otherwise recreate it from the patched manifest\n", r.Object)
	}
	p, err := r.jsonPatch(false)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "kubectl patch %s %s%s --type json -p %s\n", r.kind.resource, shellQuote(r.Object.Name), nsFlag(r.Object.Namespace), shellQuote(string(p)))
	return b.Bytes(), nil
}

// KubectlPatch is the one kubectl command builder: `kubectl patch` of the
// object with a JSON patch, names quoted for a POSIX shell.
func KubectlPatch(ref object.Ref, apiVersion string, ops []Operation) string {
	ref.APIVersion = apiVersion
	resource := strings.ToLower(ref.Kind)
	if k, err := lookupKind(ref); err == nil {
		resource = k.resource
	}
	p, err := json.Marshal(ops)
	if err != nil {
		panic(fmt.Sprintf("remedy: marshalling a patch: %v", err)) // only our own types get here
	}
	return fmt.Sprintf("kubectl patch %s %s%s --type json -p %s", resource, shellQuote(ref.Name), nsFlag(ref.Namespace), shellQuote(string(p)))
}

func nsFlag(ns string) string {
	if ns == "" {
		return ""
	}
	return " -n " + shellQuote(ns)
}

// shellQuote quotes s for a POSIX shell, leaving plain words as they are.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (r *Result) yaml() ([]byte, error) {
	if len(r.source) > 0 {
		out, note, err := editSource(r.source, r.Object, r.sourceNS, r.found, r.Ops)
		r.editNote = note
		return out, err
	}
	return yaml.Marshal(r.patched.Object)
}

// MergePatchType is the kubectl/API patch type of the merge format:
// "strategic" for built-in kinds, "merge" (RFC 7386) for custom resources
// such as Argo Rollouts, which take no strategic merge patch.
func (r *Result) MergePatchType() string {
	if r.kind.strategic {
		return "strategic"
	}
	return "merge"
}
