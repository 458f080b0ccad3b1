package remedy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/object"
)

// HelmValuesFile is the name archfit gives the values override in the
// helm upgrade command it prints.
const HelmValuesFile = "archfit-values.yaml"

// Bounds of the search for the values keys that reach a pod template.
const (
	// DefaultMaxRenders bounds the renders of one search.
	DefaultMaxRenders = 40
	// DefaultSearchTime bounds the time of one search.
	DefaultSearchTime = 2 * time.Minute
	// maxValuesNodes and maxValuesDepth bound the walk of the values tree.
	maxValuesNodes = 20000
	maxValuesDepth = 16
	// batchSize is how many candidate keys one render probes at once.
	batchSize = 48
)

// probeKey is the node label (affinity, nodeSelector) or taint key
// (tolerations) of the sentinel values: no node carries it.
const probeKey = "archfit.io/values-probe"

// HelmField is a pod spec field that a chart's values may set.
type HelmField string

const (
	FieldAffinity     HelmField = "affinity"
	FieldNodeSelector HelmField = "nodeSelector"
	FieldTolerations  HelmField = "tolerations"
)

// HelmKey is a values key that reaches a field of the workload's pod spec.
type HelmKey struct {
	Field HelmField `json:"field"`
	// Path is the key, dot-separated as in helm --set (a key that holds a
	// dot is written with a backslash before it).
	Path string `json:"path"`
}

// HelmFix says where the fix of a Helm-managed workload belongs: a values
// override found by rendering the chart, or, when no values key reaches the
// pod template, a kustomize post-renderer patch of the rendered object.
type HelmFix struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	Chart     string `json:"chart"`
	// Keys are the values keys the override sets.
	Keys []HelmKey `json:"keys,omitempty"`
	// Values is the override: the keys, with the pod spec fields as the
	// object patch leaves them (the rendered field merged with the
	// architecture requirement).
	Values     map[string]any `json:"values,omitempty"`
	ValuesFile string         `json:"valuesFile,omitempty"`
	// Verified: the chart rendered with the override gives the workload a
	// pod template the object patch has nothing to add to.
	Verified bool `json:"verified"`
	// AlsoChanges are the other workloads whose pod scheduling fields the
	// override changes (the key is shared), seen in the same render.
	AlsoChanges  []object.Ref  `json:"alsoChanges,omitempty"`
	PostRenderer *PostRenderer `json:"postRenderer,omitempty"`
	// Command is the helm upgrade command that applies Values or
	// PostRenderer.
	Command string `json:"command,omitempty"`
	// Renders counts the renders of the search; Capped says it stopped at
	// its bound before every candidate key was tried.
	Renders int      `json:"renders"`
	Capped  bool     `json:"capped,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// PostRenderer is a kustomize post-renderer for helm upgrade
// --post-renderer: the script feeds Helm's rendered manifests to
// kustomize, which applies the patch to the workload.
type PostRenderer struct {
	Kustomization string `json:"kustomization"`
	PatchFile     string `json:"patchFile"`
	Patch         string `json:"patch"`
	ScriptFile    string `json:"scriptFile"`
	Script        string `json:"script"`
}

// HelmChart is a chart to search, with how to render it.
type HelmChart struct {
	// Release, Namespace and Chart are used in the helm upgrade command;
	// Chart as the user names it (a path, or REPO/NAME).
	Release, Namespace, Chart string
	// ChartVersion, when set, is added as --version.
	ChartVersion string
	// Values is the values tree the templates see (render.Values).
	Values map[string]any
	// Render renders the chart as installed, with extra merged over the
	// values (render.HelmChart with render.WithValues).
	Render func(ctx context.Context, extra map[string]any) ([]byte, error)
	// MaxRenders and Timeout bound the search; 0 means the defaults.
	MaxRenders int
	Timeout    time.Duration
}

// ErrNotRendered: the chart's render does not hold the workload.
var ErrNotRendered = errors.New("the chart's render does not hold the workload")

// HelmValues finds where the remedy's patch of a Helm-managed workload
// belongs. It renders the chart with a unique sentinel at candidate values
// keys (those named like the field first, then every empty map or list and
// null) and keeps the keys whose sentinel lands in the workload's pod
// template: no key is guessed from its name. The override sets them to the
// pod spec fields of the object patch (computed again against the
// workload as the chart renders it now), and one more render checks that
// the override leaves the object patch nothing to do. When no key reaches
// the pod template, or the override does not hold, it gives a kustomize
// post-renderer patch instead.
func (r *Remedy) HelmValues(ctx context.Context, c HelmChart) (*HelmFix, error) {
	if r.Patch == nil || r.Patch.Result == nil {
		return nil, errors.New("no patch to place in the chart")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultSearchTime
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := &search{chart: c, max: c.MaxRenders, target: r.Patch.Object, podSpec: r.Patch.podSpec}
	if s.max <= 0 {
		s.max = DefaultMaxRenders
	}
	fix := &HelmFix{Release: c.Release, Namespace: c.Namespace, Chart: c.Chart, ValuesFile: HelmValuesFile}

	base, err := s.render(ctx, nil)
	if err != nil {
		return nil, err
	}
	obj := base.target
	if obj == nil {
		return nil, fmt.Errorf("%s: %w", s.target, ErrNotRendered)
	}
	res, err := r.Repatch(obj)
	if err != nil {
		return nil, err
	}
	if len(res.Conflicts) > 0 {
		return nil, fmt.Errorf("%s as the chart renders it: %w", s.target, ErrConflict)
	}
	defer func() { fix.Renders = s.renders }()
	if !res.Changed {
		fix.Verified = true
		fix.Notes = append(fix.Notes, fmt.Sprintf("%s as the chart renders it already admits only %s: no values to change", s.target, strings.Join(r.AllowedArchitectures, ", ")))
		return fix, nil
	}
	patched := res.Patched()
	spec, _, _ := unstructured.NestedMap(patched.Object, res.podSpec...)

	// What the patch changed decides the fields to find keys for.
	var fields []HelmField
	if changedField(obj, patched, res.podSpec, "affinity") {
		fields = append(fields, FieldAffinity)
	}
	if changedField(obj, patched, res.podSpec, "tolerations") {
		fields = append(fields, FieldTolerations)
	}
	override := map[string]any{}
	var missing []string
	for _, f := range fields {
		key, err := s.find(ctx, f)
		if err != nil {
			return nil, err
		}
		what := string(f)
		if key == nil && f == FieldAffinity && len(r.AllowedArchitectures) == 1 {
			// A nodeSelector can pin one architecture.
			what = "affinity or nodeSelector"
			if key, err = s.find(ctx, FieldNodeSelector); err != nil {
				return nil, err
			}
			if key != nil {
				sel := map[string]any{}
				if cur, ok := spec["nodeSelector"].(map[string]any); ok {
					sel = cur
				}
				sel[LabelArch] = r.AllowedArchitectures[0]
				setPath(override, splitPath(key.Path), sel)
				fix.Keys = append(fix.Keys, *key)
				fix.Notes = append(fix.Notes, fmt.Sprintf("the chart has no values key that reaches the affinity of %s; %s sets its nodeSelector instead, which is ANDed with any affinity. The override lists the whole nodeSelector: a values file merges maps key by key, but the chart may build the field from it in its own way", s.target, key.Path))
				continue
			}
		}
		if key == nil {
			missing = append(missing, what)
			continue
		}
		setPath(override, splitPath(key.Path), spec[string(f)])
		fix.Keys = append(fix.Keys, *key)
	}
	if s.capped && len(missing) == 0 {
		fix.Capped = true
		fix.Notes = append(fix.Notes, fmt.Sprintf("the search stopped at its bound (%d renders, %s) before it tried every candidate key: a more specific key may exist", s.max, timeoutOf(c)))
	}
	if len(missing) == 0 {
		// The check is not left out for the bounds: one more render,
		// with the caller's context.
		s.max = max(s.max, s.renders+1)
		after, err := s.render(outer, override)
		switch {
		case err != nil:
			fix.Notes = append(fix.Notes, fmt.Sprintf("the chart does not render with the override: %v", err))
		case after.target == nil:
			fix.Notes = append(fix.Notes, fmt.Sprintf("the chart rendered with the override has no %s", s.target))
		default:
			check, err := r.Repatch(after.target)
			if err == nil && !check.Changed && len(check.Conflicts) == 0 {
				fix.Values, fix.Verified = override, true
				fix.AlsoChanges = changedOthers(base, after)
				if len(fix.AlsoChanges) > 0 {
					fix.Notes = append(fix.Notes, fmt.Sprintf("the override also changes the scheduling of %s: the chart uses the key for them too", refList(fix.AlsoChanges)))
				}
				fix.Command = helmUpgrade(c, "--reuse-values -f "+HelmValuesFile)
				return fix, nil
			}
			fix.Notes = append(fix.Notes, fmt.Sprintf("rendered with the override, %s still does not admit only %s: the chart does not pass the value through as it is", s.target, strings.Join(r.AllowedArchitectures, ", ")))
		}
	} else {
		// The first render is the chart as it is.
		how := fmt.Sprintf("%d render(s) of the chart with a sentinel value at each candidate key", s.renders-1)
		switch {
		case s.renders == 1 && !s.capped:
			how = "its values have no map, list or null that could hold it"
		case s.capped:
			how = "not every candidate key was tried: see the next note"
		}
		fix.Notes = append(fix.Notes, fmt.Sprintf("no values key of the chart reaches the %s of %s's pod template (%s)", strings.Join(missing, ", nor the "), s.target, how))
	}
	if s.capped && !fix.Capped {
		fix.Capped = true
		fix.Notes = append(fix.Notes, fmt.Sprintf("the search stopped at its bound (%d renders, %s) before it tried every candidate key", s.max, timeoutOf(c)))
	}
	fix.Keys = nil
	pr, err := postRenderer(res)
	if err != nil {
		return nil, err
	}
	fix.PostRenderer = pr
	fix.Command = helmUpgrade(c, "--reuse-values --post-renderer ./"+pr.ScriptFile)
	return fix, nil
}

func timeoutOf(c HelmChart) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultSearchTime
}

func helmUpgrade(c HelmChart, args string) string {
	cmd := "helm upgrade " + shellQuote(c.Release) + " " + shellQuote(c.Chart)
	if c.ChartVersion != "" {
		cmd += " --version " + shellQuote(c.ChartVersion)
	}
	cmd += " " + args
	if c.Namespace != "" {
		cmd += " -n " + shellQuote(c.Namespace)
	}
	return cmd
}

func refList(refs []object.Ref) string {
	s := make([]string, 0, 3)
	for i, r := range refs {
		if i == 3 {
			s = append(s, fmt.Sprintf("%d more", len(refs)-3))
			break
		}
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}

// postRenderer is the object patch as a kustomize post-renderer. Helm
// passes the rendered manifests without the namespace a template does not
// set, so the target names none.
func postRenderer(res *Result) (*PostRenderer, error) {
	r := *res
	r.Object.Namespace = ""
	kp, err := r.Kustomize()
	if err != nil {
		return nil, err
	}
	return &PostRenderer{
		Kustomization: "resources:\n  - helm-rendered.yaml\n" + string(kp.Entry),
		PatchFile:     kp.FileName,
		Patch:         string(kp.Patch),
		ScriptFile:    "archfit-post-renderer.sh",
		// kubectl kustomize reads the kustomization in the current
		// directory: run helm from the one that holds these files.
		Script: "#!/bin/sh\n# helm post-renderer: Helm's manifests on stdin, kustomize's on stdout\nset -e\ncat > helm-rendered.yaml\nexec kubectl kustomize .\n",
	}, nil
}

// changedOthers lists the workloads other than the target whose pod
// scheduling fields differ between two renders.
func changedOthers(before, after *rendering) []object.Ref {
	var out []object.Ref
	for ref, a := range after.others {
		b, ok := before.others[ref]
		if !ok {
			continue
		}
		spec := podSpecOf(a)
		for _, f := range []string{"affinity", "nodeSelector", "tolerations"} {
			if changedField(b, a, spec, f) {
				out = append(out, ref)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func changedField(a, b *unstructured.Unstructured, podSpec []string, f string) bool {
	x, _, _ := unstructured.NestedFieldNoCopy(a.Object, append(slices.Clone(podSpec), f)...)
	y, _, _ := unstructured.NestedFieldNoCopy(b.Object, append(slices.Clone(podSpec), f)...)
	return !reflect.DeepEqual(x, y)
}

// search probes a chart's values keys by rendering.
type search struct {
	chart   HelmChart
	max     int
	renders int
	capped  bool
	target  object.Ref
	podSpec []string
}

// rendering is one render's workloads: the target, and the others by ref.
type rendering struct {
	target *unstructured.Unstructured
	others map[object.Ref]*unstructured.Unstructured
}

var errCapped = errors.New("render limit reached")

func (s *search) render(ctx context.Context, extra map[string]any) (*rendering, error) {
	if s.renders >= s.max {
		s.capped = true
		return nil, errCapped
	}
	if err := ctx.Err(); err != nil {
		s.capped = true
		return nil, errCapped
	}
	s.renders++
	out, err := s.chart.Render(ctx, extra)
	if err != nil {
		return nil, err
	}
	rd := &rendering{others: map[object.Ref]*unstructured.Unstructured{}}
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the render: %w", err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		ref := refOf(u).ID()
		if ref == s.target.ID() {
			rd.target = u
		} else if podSpecOf(u) != nil {
			rd.others[ref] = u
		}
	}
	return rd, nil
}

// candidate is a values key to probe.
type candidate struct {
	path []string
	tier int // 0: named like the field, 1: any empty map, list or null
}

// find returns the best key that reaches field f of the target's pod spec,
// or nil.
func (s *search) find(ctx context.Context, f HelmField) (*HelmKey, error) {
	cands := candidates(s.chart.Values, f)
	type hit struct {
		c      candidate
		shared []object.Ref
	}
	var hits []hit
	nonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	var probe func(batch []candidate) error
	probe = func(batch []candidate) error {
		extra := map[string]any{}
		ids := map[string]candidate{}
		for i, c := range batch {
			id := fmt.Sprintf("%s-%d", nonce, i)
			ids[id] = c
			setPath(extra, c.path, sentinel(f, id))
		}
		rd, err := s.render(ctx, extra)
		if errors.Is(err, errCapped) {
			return err
		}
		if err != nil || rd.target == nil {
			// A sentinel where the chart wants something else breaks the
			// render: probe the halves apart.
			if len(batch) == 1 {
				return nil
			}
			if err := probe(batch[:len(batch)/2]); err != nil {
				return err
			}
			return probe(batch[len(batch)/2:])
		}
		for _, id := range found(rd.target, s.podSpec, f) {
			c, ok := ids[id]
			if !ok {
				continue
			}
			h := hit{c: c}
			for ref, o := range rd.others {
				if slices.Contains(found(o, podSpecOf(o), f), id) {
					h.shared = append(h.shared, ref)
				}
			}
			sort.Slice(h.shared, func(i, j int) bool { return h.shared[i].String() < h.shared[j].String() })
			hits = append(hits, h)
		}
		return nil
	}
	for tier := 0; tier <= 1 && len(hits) == 0; tier++ {
		var batch []candidate
		for _, c := range cands {
			if c.tier == tier {
				batch = append(batch, c)
			}
		}
		for i := 0; i < len(batch); i += batchSize {
			if err := probe(batch[i:min(i+batchSize, len(batch))]); errors.Is(err, errCapped) {
				break
			}
		}
	}
	if len(hits) == 0 {
		return nil, nil
	}
	// The key that reaches this workload alone, then the most specific.
	sort.SliceStable(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		if len(a.shared) != len(b.shared) {
			return len(a.shared) < len(b.shared)
		}
		if a.c.tier != b.c.tier {
			return a.c.tier < b.c.tier
		}
		if len(a.c.path) != len(b.c.path) {
			return len(a.c.path) > len(b.c.path)
		}
		return joinPath(a.c.path) < joinPath(b.c.path)
	})
	return &HelmKey{Field: f, Path: joinPath(hits[0].c.path)}, nil
}

func newNonce() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// sentinel is a value for field f that no chart default produces.
func sentinel(f HelmField, id string) any {
	switch f {
	case FieldAffinity:
		return map[string]any{"nodeAffinity": map[string]any{requiredField: map[string]any{
			"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{
				map[string]any{"key": probeKey, "operator": "In", "values": []any{id}}}}}}}}
	case FieldNodeSelector:
		return map[string]any{probeKey: id}
	default:
		return []any{map[string]any{"key": probeKey, "operator": "Equal", "value": id, "effect": "NoSchedule"}}
	}
}

// found lists the sentinel ids in field f of obj's pod spec.
func found(obj *unstructured.Unstructured, podSpec []string, f HelmField) []string {
	if podSpec == nil {
		return nil
	}
	v, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, append(slices.Clone(podSpec), string(f))...)
	if !ok {
		return nil
	}
	var ids []string
	switch f {
	case FieldAffinity:
		terms, _, _ := unstructured.NestedSlice(asMap(v), "nodeAffinity", requiredField, "nodeSelectorTerms")
		for _, t := range terms {
			exprs, _, _ := unstructured.NestedSlice(asMap(t), "matchExpressions")
			for _, e := range exprs {
				em := asMap(e)
				if em["key"] != probeKey {
					continue
				}
				vals, _, _ := unstructured.NestedStringSlice(em, "values")
				ids = append(ids, vals...)
			}
		}
	case FieldNodeSelector:
		if id, ok := asMap(v)[probeKey].(string); ok {
			ids = append(ids, id)
		}
	case FieldTolerations:
		list, _ := v.([]any)
		for _, t := range list {
			tm := asMap(t)
			if tm["key"] == probeKey {
				if id, ok := tm["value"].(string); ok {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// podSpecOf is the pod spec path of a workload of a known kind, nil
// otherwise.
func podSpecOf(obj *unstructured.Unstructured) []string {
	k, err := lookupKind(refOf(obj))
	if err != nil {
		return nil
	}
	return k.podSpec
}

// candidates walks the values tree for keys that may hold field f: those
// named like it (tier 0) and every other empty map (affinity,
// nodeSelector), empty list (tolerations) or null (tier 1).
func candidates(vals map[string]any, f HelmField) []candidate {
	var out []candidate
	nodes := 0
	var walk func(m map[string]any, path []string)
	walk = func(m map[string]any, path []string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if nodes++; nodes > maxValuesNodes {
				return
			}
			p := append(slices.Clone(path), k)
			v := m[k]
			named := strings.Contains(strings.ToLower(k), strings.ToLower(string(f)))
			sub, isMap := v.(map[string]any)
			list, isList := v.([]any)
			switch {
			case v == nil:
				out = append(out, candidate{path: p, tier: tierOf(named)})
			case f == FieldTolerations && isList && (named || len(list) == 0):
				out = append(out, candidate{path: p, tier: tierOf(named)})
			case f != FieldTolerations && isMap && (named || len(sub) == 0 || (f == FieldAffinity && looksLikeAffinity(sub))):
				out = append(out, candidate{path: p, tier: tierOf(named || looksLikeAffinity(sub))})
				continue
			}
			if isMap && len(path) < maxValuesDepth {
				walk(sub, p)
			}
		}
	}
	walk(vals, nil)
	sort.SliceStable(out, func(i, j int) bool { return out[i].tier < out[j].tier })
	return out
}

func tierOf(named bool) int {
	if named {
		return 0
	}
	return 1
}

func looksLikeAffinity(m map[string]any) bool {
	for _, k := range []string{"nodeAffinity", "podAffinity", "podAntiAffinity"} {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// setPath sets m[path...] = v, making the maps on the way.
func setPath(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func joinPath(path []string) string {
	s := make([]string, len(path))
	for i, p := range path {
		s[i] = strings.ReplaceAll(p, ".", `\.`)
	}
	return strings.Join(s, ".")
}

func splitPath(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '.':
			cur.WriteByte('.')
			i++
		case s[i] == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// ValuesYAML is the override as a values file.
func (f *HelmFix) ValuesYAML() ([]byte, error) {
	return yaml.Marshal(f.Values)
}
