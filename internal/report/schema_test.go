package report_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/diagnose"
	"github.com/archfit/archfit/internal/dockerfile"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/plan"
	"github.com/archfit/archfit/internal/remedy"
	"github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/report"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := report.CompileSchema()
	if err != nil {
		t.Fatalf("compiling the schema: %v", err)
	}
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, out []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	return sch.Validate(inst)
}

// schemaDefs reads the schema's $defs and top-level object.
func schemaDefs(t *testing.T) (top schemaObject, defs map[string]schemaObject) {
	t.Helper()
	var s struct {
		schemaObject
		Defs map[string]schemaObject `json:"$defs"`
	}
	if err := json.Unmarshal(report.Schema(), &s); err != nil {
		t.Fatal(err)
	}
	return s.schemaObject, s.Defs
}

type schemaObject struct {
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
	Enum                 []string                   `json:"enum"`
}

// jsonFields lists a struct's JSON field names as encoding/json writes them,
// with whether each is always written (no omitempty).
func jsonFields(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" && f.Anonymous {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero")
	}
	return out
}

// TestSchemaMatchesGoTypes derives every object of the schema from the json
// tags of the Go type it describes: a field added, renamed or made optional
// in Go without the schema (or the other way round) fails here, even when
// no example output happens to contain it.
func TestSchemaMatchesGoTypes(t *testing.T) {
	top, defs := schemaDefs(t)
	closed := map[string]any{
		"":                   report.Document{},
		"finding":            finding.Finding{},
		"objectRef":          object.Ref{},
		"remedy":             remedy.Remedy{},
		"remedyContainer":    remedy.Container{},
		"helmFix":            remedy.HelmFix{},
		"helmKey":            remedy.HelmKey{},
		"postRenderer":       remedy.PostRenderer{},
		"conflict":           remedy.Conflict{},
		"exclusion":          remedy.Exclusion{},
		"patch":              remedy.Interim{},
		"termDecision":       remedy.TermDecision{},
		"jsonPatchOperation": remedy.Operation{},
		"buildAdvice":        remedy.BuildAdvice{},
		"brokenEntry":        remedy.BrokenEntry{},
		"dockerfileCheck":    remedy.DockerfileCheck{},
		"recipe":             remedy.Recipe{},
		"node":               report.Node{},
		"imageReport":        image.Report{},
		"entry":              image.Entry{},
		"exec":               image.Exec{},
		"entrypoint":         image.Entrypoint{},
		"pull":               image.Pull{},
		"baseImage":          image.BaseImage{},
		"problem":            image.Problem{},
		"failure":            image.Failure{},
		"imageStats":         image.Stats{},
		"layoutEntry":        image.LayoutEntry{},
		"override":           image.Override{},
		"alternative":        image.Alternative{},
		"notArch":            diagnose.NotArch{},
		"pool":               audit.Pool{},
		"readiness":          audit.Readiness{},
		"blocker":            audit.Blocker{},
		"auditWorkload":      audit.Workload{},
		"auditContainer":     audit.Container{},
		"cell":               audit.Cell{},
		"allowed":            remedy.Allowed{},
		"plan":               plan.Plan{},
		"phase":              plan.Phase{},
		"step":               plan.Step{},
		"candidate":          plan.Candidate{},
		"dockerfileBase":     dockerfile.BaseImage{},
		"incomplete":         report.Incomplete{},
		"unreadReason":       report.UnreadReason{},
		"helmTest":           render.TestHook{},
	}
	// Objects archfit does not own: the schema names some of their fields
	// and leaves the others open.
	open := map[string]any{
		"ociPlatform": specs.Platform{},
		"toleration":  corev1.Toleration{},
		"taint":       corev1.Taint{},
	}
	// Sections of extra are open (commands may add keys) but their known
	// keys are those of the Go type.
	sections := map[string]any{"auditExtra": audit.Result{}}
	// Keys internal/cli adds to a section beside the Go type's.
	added := map[string][]string{"auditExtra": {"helmTests"}}
	// Built as maps in internal/cli: checked on real output by
	// internal/cli's TestSchemaEveryCommand only.
	fromMaps := []string{"diagnosisExtra", "diagnosisStats", "planExtra", "dockerfileExtra"}
	for name, v := range merge(closed, sections) {
		def := top
		if name != "" {
			def = defs[name]
		}
		var goNames, goRequired []string
		for f, always := range jsonFields(reflect.TypeOf(v)) {
			goNames = append(goNames, f)
			if always {
				goRequired = append(goRequired, f)
			}
		}
		goNames = append(goNames, added[name]...)
		sort.Strings(goNames)
		sort.Strings(goRequired)
		names := slices.Sorted(maps.Keys(def.Properties))
		req := slices.Sorted(slices.Values(def.Required))
		if diff := cmp.Diff(goNames, names); diff != "" {
			t.Errorf("%q (%T): properties differ from the json tags (-go +schema):\n%s", name, v, diff)
		}
		if diff := cmp.Diff(goRequired, req, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%q (%T): required differs from the fields without omitempty (-go +schema):\n%s", name, v, diff)
		}
		if _, ok := closed[name]; ok && (def.AdditionalProperties == nil || *def.AdditionalProperties) {
			t.Errorf("%q: an object archfit owns must have additionalProperties: false", name)
		}
	}
	for name, v := range open {
		def := defs[name]
		fields := jsonFields(reflect.TypeOf(v))
		for p := range def.Properties {
			if _, ok := fields[p]; !ok {
				t.Errorf("%q (%T): property %q is not a field of the Go type", name, v, p)
			}
		}
		for _, r := range def.Required {
			if !fields[r] {
				t.Errorf("%q (%T): %q is required but the Go type may omit it", name, v, r)
			}
		}
	}
	var unlisted []string
	for name, d := range defs {
		_, c := closed[name]
		_, o := open[name]
		_, x := sections[name]
		if !c && !o && !x && !slices.Contains(fromMaps, name) && d.Properties != nil {
			unlisted = append(unlisted, name)
		}
	}
	if len(unlisted) > 0 {
		t.Errorf("$defs objects with no Go type in this test: %v", unlisted)
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// TestSchemaFindingCodes: the schema lists exactly the codes of rules.yaml.
func TestSchemaFindingCodes(t *testing.T) {
	_, defs := schemaDefs(t)
	var codes []string
	for _, r := range finding.Rules() {
		codes = append(codes, r.Code)
	}
	if diff := cmp.Diff(codes, defs["findingCode"].Enum); diff != "" {
		t.Errorf("findingCode enum differs from rules.yaml (-rules +schema):\n%s", diff)
	}
}

// validDocument is a Diagnosis with one of everything the schema closes.
func validDocument(t *testing.T) map[string]any {
	t.Helper()
	f := finding.New(finding.WrongArchBinary, "container app ran an amd64 binary on an arm64 node")
	f.Workload = &object.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"}
	f.Container, f.ContainerType, f.Image, f.Node, f.NodePlatform = "app", "main", "example.com/api:1", "arm-1", "linux/arm64/v8"
	f.ImagePlatforms, f.Evidence, f.Confidence = []string{"linux/amd64"}, []string{"exec /app: exec format error"}, "high"
	rem := &remedy.Remedy{
		Workload:             object.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"},
		AllowedArchitectures: []string{"amd64"},
		Containers:           []remedy.Container{{Name: "app", Role: "main", Image: "example.com/api:1", Architectures: []string{"amd64"}}},
		Patch: &remedy.Interim{Result: &remedy.Result{
			Object:      object.Ref{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "api"},
			PodSpecPath: "/spec/template/spec", Allowed: []string{"amd64"}, Changed: true,
			Ops: []remedy.Operation{{Op: "add", Path: "/spec/template/spec/nodeSelector", Value: json.RawMessage(`{"kubernetes.io/arch":"amd64"}`)}},
		}, Kubectl: "kubectl patch ..."},
		Build: []remedy.BuildAdvice{{Image: "example.com/api:1", Needed: true, Runs: []string{"amd64"}, Missing: []string{"linux/arm64"}}},
	}
	rep := &image.Report{Reference: "example.com/api:1", Kind: image.KindManifest, Platforms: []string{"linux/amd64"}, Architectures: []string{"amd64"},
		Entries: []image.Entry{{Digest: "sha256:0123456789abcdef", MediaType: specs.MediaTypeImageManifest,
			Platform: &specs.Platform{OS: "linux", Architecture: "amd64"}, Entrypoint: &image.Entrypoint{Verdict: image.VerdictOK, Arch: "amd64"}}}}
	doc := &report.Document{Kind: "Diagnosis", Findings: []finding.Finding{f}, Remedies: []*remedy.Remedy{rem}, Images: []*image.Report{rep},
		Nodes: []report.Node{{Name: "arm-1", Platform: "linux/arm64/v8", Runtime: "containerd://2.1.4", Matchers: []string{"containerd-transfer"}}},
		Extra: map[string]any{"notArch": []diagnose.NotArch{}, "stats": map[string]int{
			"pods": 1, "failingPods": 1, "images": 1, "apiRequests": 0, "registryRequests": 0, "cacheHits": 0}}}
	var buf bytes.Buffer
	if err := report.JSON(&buf, doc); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// rename moves the value at path (keys and array indexes) to newKey.
func rename(m map[string]any, path []any, newKey string) {
	var cur any = m
	for _, p := range path[:len(path)-1] {
		switch k := p.(type) {
		case string:
			cur = cur.(map[string]any)[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	obj := cur.(map[string]any)
	old := path[len(path)-1].(string)
	obj[newKey] = obj[old]
	delete(obj, old)
}

// TestSchemaRejects proves the schema can fail: a document that validates
// is broken one field at a time, and each must be rejected.
func TestSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	ok, err := json.Marshal(validDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, ok); err != nil {
		t.Fatalf("the valid document is rejected: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"top-level field renamed", func(m map[string]any) { rename(m, []any{"findings"}, "finding") }},
		{"finding code renamed", func(m map[string]any) { rename(m, []any{"findings", 0, "code"}, "id") }},
		{"finding workload name renamed", func(m map[string]any) { rename(m, []any{"findings", 0, "workload", "name"}, "workloadName") }},
		{"remedy field renamed", func(m map[string]any) { rename(m, []any{"remedies", 0, "allowedArchitectures"}, "allowedArchs") }},
		{"patch field renamed", func(m map[string]any) { rename(m, []any{"remedies", 0, "patch", "jsonPatch"}, "ops") }},
		{"build advice field renamed", func(m map[string]any) { rename(m, []any{"remedies", 0, "build", 0, "runs"}, "architectures") }},
		{"image field renamed", func(m map[string]any) { rename(m, []any{"images", 0, "reference"}, "ref") }},
		{"entrypoint field renamed", func(m map[string]any) { rename(m, []any{"images", 0, "entries", 0, "entrypoint", "verdict"}, "result") }},
		{"node field renamed", func(m map[string]any) { rename(m, []any{"nodes", 0, "platform"}, "arch") }},
		{"extra section renamed", func(m map[string]any) { rename(m, []any{"extra", "stats"}, "statistics") }},
		{"unknown finding code", func(m map[string]any) { m["findings"].([]any)[0].(map[string]any)["code"] = "arch-mismatch" }},
		{"unknown kind", func(m map[string]any) { m["kind"] = "Report" }},
		{"null instead of a list", func(m map[string]any) { m["remedies"] = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validDocument(t)
			tc.mutate(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(t, sch, b); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestSchemaOpenWhereNotOurs: unknown fields are accepted inside extra and
// embedded Kubernetes objects, where archfit does not own the shape.
func TestSchemaOpenWhereNotOurs(t *testing.T) {
	sch := compileSchema(t)
	m := validDocument(t)
	m["extra"].(map[string]any)["somethingNew"] = []any{1, "two"}
	p := m["remedies"].([]any)[0].(map[string]any)["patch"].(map[string]any)
	p["addedTolerations"] = []any{map[string]any{"key": "kubernetes.io/arch", "operator": "Equal", "value": "arm64", "effect": "NoSchedule", "futureField": true}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, b); err != nil {
		t.Error(err)
	}
}
