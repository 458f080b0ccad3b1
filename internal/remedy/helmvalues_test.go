package remedy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/render"
)

const testRelease = "edge"

// helmChart renders chartPath as installed with set, for HelmValues.
func helmChart(t *testing.T, chartPath string, set ...string) HelmChart {
	t.Helper()
	ctx := context.Background()
	vals, err := render.Values(ctx, chartPath, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	return HelmChart{Release: testRelease, Namespace: "ingress", Chart: chartPath, Values: vals,
		Render: func(ctx context.Context, extra map[string]any) ([]byte, error) {
			return render.HelmChart(ctx, chartPath, nil, set, testRelease, "ingress", render.WithValues(extra))
		}}
}

// rendered returns the workload kind/name of a render of c with extra.
func rendered(t *testing.T, c HelmChart, extra map[string]any, kind, name string) *unstructured.Unstructured {
	t.Helper()
	out, err := c.Render(context.Background(), extra)
	if err != nil {
		t.Fatal(err)
	}
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		if m != nil && u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("the render has no %s %s", kind, name)
	return nil
}

// remedyFor is the remedy of obj allowing archs, as ForWorkload computes
// it for a workload whose images run on archs.
func remedyFor(t *testing.T, obj *unstructured.Unstructured, archs ...string) *Remedy {
	t.Helper()
	res, err := Patch(obj, archs)
	if err != nil {
		t.Fatal(err)
	}
	return &Remedy{AllowedArchitectures: archs, Patch: &Interim{Result: res}}
}

func podSpec(t *testing.T, obj *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	m, _, err := unstructured.NestedMap(obj.Object, "spec", "template", "spec")
	if err != nil {
		t.Fatal(err)
	}
	var s corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// archTerms returns, for each required nodeSelectorTerm, the values of its
// kubernetes.io/arch In requirement ("" when it has none).
func archTerms(s corev1.PodSpec) []string {
	if s.Affinity == nil || s.Affinity.NodeAffinity == nil || s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	var out []string
	for _, term := range s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		v := ""
		for _, e := range term.MatchExpressions {
			if e.Key == LabelArch && e.Operator == corev1.NodeSelectorOpIn {
				v = strings.Join(e.Values, ",")
			}
		}
		out = append(out, v)
	}
	return out
}

const ingressNginx = "testdata/charts/ingress-nginx"

// The controller Deployment of ingress-nginx takes its affinity from
// controller.affinity; the default backend's key (defaultBackend.affinity)
// and the admission Jobs' are found too, and must not be chosen.
func TestHelmValuesIngressNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("renders a real chart some 20 times")
	}
	c := helmChart(t, ingressNginx, "defaultBackend.enabled=true")
	ctrl := rendered(t, c, nil, "Deployment", testRelease+"-ingress-nginx-controller")
	rem := remedyFor(t, ctrl, "amd64", "arm64")
	fix, err := rem.HelmValues(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("renders: %d, notes: %q", fix.Renders, fix.Notes)
	if len(fix.Keys) != 1 || fix.Keys[0].Path != "controller.affinity" || fix.Keys[0].Field != FieldAffinity {
		t.Fatalf("keys = %+v, want controller.affinity", fix.Keys)
	}
	if len(fix.AlsoChanges) != 0 {
		t.Errorf("the override also changes %v", fix.AlsoChanges)
	}
	if !fix.Verified || fix.PostRenderer != nil {
		t.Fatalf("verified %v, post-renderer %v; notes %q", fix.Verified, fix.PostRenderer, fix.Notes)
	}
	want := "helm upgrade edge " + ingressNginx + " --reuse-values -f archfit-values.yaml -n ingress"
	if fix.Command != want {
		t.Errorf("command\n got %s\nwant %s", fix.Command, want)
	}
	if fix.Renders > DefaultMaxRenders || fix.Capped {
		t.Errorf("renders %d, capped %v", fix.Renders, fix.Capped)
	}

	// Render again with the override, as helm upgrade -f would: the
	// controller is kept on amd64,arm64, the default backend is not touched.
	b, err := fix.ValuesYAML()
	if err != nil {
		t.Fatal(err)
	}
	var override map[string]any
	if err := yaml.Unmarshal(b, &override); err != nil {
		t.Fatal(err)
	}
	after := rendered(t, c, override, "Deployment", testRelease+"-ingress-nginx-controller")
	if got := archTerms(podSpec(t, after)); !reflect.DeepEqual(got, []string{"amd64,arm64"}) {
		t.Errorf("controller arch terms after the override = %q", got)
	}
	backend := rendered(t, c, override, "Deployment", testRelease+"-ingress-nginx-defaultbackend")
	if a := podSpec(t, backend).Affinity; a != nil {
		t.Errorf("the default backend got an affinity: %+v", a)
	}
}

// An affinity already set through the values is kept: the override is the
// rendered affinity with the arch requirement added to every term, and its
// pod anti-affinity stays.
func TestHelmValuesMergesExistingAffinity(t *testing.T) {
	if testing.Short() {
		t.Skip("renders a real chart some 20 times")
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`
controller:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: topology.kubernetes.io/zone, operator: In, values: [eu-west-1a]}
        - matchExpressions:
          - {key: node.kubernetes.io/instance-type, operator: Exists}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/component: controller}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	vals, err := render.Values(ctx, ingressNginx, []string{values}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := HelmChart{Release: testRelease, Namespace: "ingress", Chart: ingressNginx, Values: vals,
		Render: func(ctx context.Context, extra map[string]any) ([]byte, error) {
			return render.HelmChart(ctx, ingressNginx, []string{values}, nil, testRelease, "ingress", render.WithValues(extra))
		}}
	ctrl := rendered(t, c, nil, "Deployment", testRelease+"-ingress-nginx-controller")
	fix, err := remedyFor(t, ctrl, "arm64").HelmValues(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !fix.Verified || len(fix.Keys) != 1 || fix.Keys[0].Path != "controller.affinity" {
		t.Fatalf("fix = %+v", fix)
	}
	after := podSpec(t, rendered(t, c, fix.Values, "Deployment", testRelease+"-ingress-nginx-controller"))
	if got := archTerms(after); !reflect.DeepEqual(got, []string{"arm64", "arm64"}) {
		t.Errorf("arch terms = %q, want arm64 in both terms", got)
	}
	terms := after.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if terms[0].MatchExpressions[0].Key != "topology.kubernetes.io/zone" || terms[1].MatchExpressions[0].Key != "node.kubernetes.io/instance-type" {
		t.Errorf("the existing requirements were not kept: %+v", terms)
	}
	if after.Affinity.PodAntiAffinity == nil || len(after.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("the pod anti-affinity was lost: %+v", after.Affinity.PodAntiAffinity)
	}
}

// writeChart writes a one-Deployment chart whose pod spec is podSpec
// (template text) and whose values.yaml is values.
func writeChart(t *testing.T, podSpec, values string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "web")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"values.yaml": values,
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
` + podSpec + `
      containers:
      - name: web
        image: example.com/web:1
`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A chart with no values key for the pod's scheduling gets the
// post-renderer patch; kustomize applied to the render really keeps the
// pods on the allowed architecture.
func TestHelmValuesNoKeyPostRenderer(t *testing.T) {
	chart := writeChart(t, "      tolerations: []", "podAnnotations: {}\nresources: {}\nimage: {tag: \"1\"}\n")
	c := helmChart(t, chart)
	obj := rendered(t, c, nil, "Deployment", testRelease+"-web")
	fix, err := remedyFor(t, obj, "amd64").HelmValues(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if fix.PostRenderer == nil || fix.Values != nil || len(fix.Keys) != 0 {
		t.Fatalf("fix = %+v", fix)
	}
	if !strings.Contains(strings.Join(fix.Notes, "\n"), "no values key of the chart reaches the affinity") {
		t.Errorf("notes %q do not say that no key reaches the affinity", fix.Notes)
	}
	if !strings.Contains(fix.Command, "--post-renderer ./archfit-post-renderer.sh") {
		t.Errorf("command = %s", fix.Command)
	}
	// Run the post-renderer's kustomization on Helm's output (without the
	// namespace archfit's renderer adds, as helm passes it).
	out, err := c.Render(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out = bytes.ReplaceAll(out, []byte("\n  namespace: ingress"), nil)
	dir := t.TempDir()
	for name, data := range map[string]string{"helm-rendered.yaml": string(out), "kustomization.yaml": fix.PostRenderer.Kustomization, fix.PostRenderer.PatchFile: fix.PostRenderer.Patch} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	built, err := render.Kustomize(context.Background(), dir)
	if err != nil {
		t.Fatalf("kustomize build of the post-renderer: %v", err)
	}
	var got *unstructured.Unstructured
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(built), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		if u := (&unstructured.Unstructured{Object: m}); u.GetKind() == "Deployment" {
			got = u
		}
	}
	if got == nil {
		t.Fatalf("kustomize output has no Deployment:\n%s", built)
	}
	if terms := archTerms(podSpec(t, got)); !reflect.DeepEqual(terms, []string{"amd64"}) {
		t.Errorf("arch terms after the post-renderer = %q", terms)
	}
}

// A chart that exposes only a nodeSelector gets it set when one
// architecture is allowed; with two, a nodeSelector cannot say it and the
// post-renderer is given.
func TestHelmValuesNodeSelectorFallback(t *testing.T) {
	chart := writeChart(t, "      {{- with .Values.web.nodeSelector }}\n      nodeSelector: {{ toYaml . | nindent 8 }}\n      {{- end }}",
		"web:\n  nodeSelector:\n    disk: ssd\n  labels: {}\n")
	c := helmChart(t, chart)
	obj := rendered(t, c, nil, "Deployment", testRelease+"-web")

	fix, err := remedyFor(t, obj, "arm64").HelmValues(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !fix.Verified || len(fix.Keys) != 1 || fix.Keys[0].Path != "web.nodeSelector" || fix.Keys[0].Field != FieldNodeSelector {
		t.Fatalf("fix = %+v", fix)
	}
	want := map[string]any{"web": map[string]any{"nodeSelector": map[string]any{"disk": "ssd", LabelArch: "arm64"}}}
	if !reflect.DeepEqual(fix.Values, want) {
		t.Errorf("values = %v, want %v", fix.Values, want)
	}

	fix, err = remedyFor(t, obj, "amd64", "arm64").HelmValues(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if fix.PostRenderer == nil || fix.Values != nil {
		t.Fatalf("two archs: fix = %+v", fix)
	}
}

// The search stops at its render bound and says so.
func TestHelmValuesRenderCap(t *testing.T) {
	chart := writeChart(t, "", "a: {}\nb: {}\nc: {}\n")
	c := helmChart(t, chart)
	c.MaxRenders = 1 // the baseline render only
	obj := rendered(t, c, nil, "Deployment", testRelease+"-web")
	fix, err := remedyFor(t, obj, "amd64").HelmValues(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !fix.Capped || fix.Renders != 1 || fix.PostRenderer == nil {
		t.Errorf("fix = %+v", fix)
	}
}

func TestSplitJoinPath(t *testing.T) {
	for _, p := range [][]string{{"a"}, {"controller", "affinity"}, {"node.kubernetes.io", "x"}} {
		if got := splitPath(joinPath(p)); !reflect.DeepEqual(got, p) {
			t.Errorf("splitPath(joinPath(%q)) = %q", p, got)
		}
	}
}

// On GKE the arm64 nodes carry the taint kubernetes.io/arch=arm64:NoSchedule:
// the toleration goes to the chart's tolerations key, beside the affinity.
func TestHelmValuesTolerations(t *testing.T) {
	if testing.Short() {
		t.Skip("renders a real chart")
	}
	c := helmChart(t, ingressNginx)
	ctrl := rendered(t, c, nil, "Deployment", testRelease+"-ingress-nginx-controller")
	taint := corev1.Taint{Key: LabelArch, Value: "arm64", Effect: corev1.TaintEffectNoSchedule}
	rem := &Remedy{AllowedArchitectures: []string{"arm64"}, opts: []Option{WithTaints("arm64", taint)}}
	res, err := rem.Repatch(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	rem.Patch = &Interim{Result: res}
	fix, err := rem.HelmValues(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, k := range fix.Keys {
		paths = append(paths, string(k.Field)+"="+k.Path)
	}
	if want := []string{"affinity=controller.affinity", "tolerations=controller.tolerations"}; !reflect.DeepEqual(paths, want) || !fix.Verified {
		t.Fatalf("keys %q (verified %v), want %q; notes %q", paths, fix.Verified, want, fix.Notes)
	}
	tols := podSpec(t, rendered(t, c, fix.Values, "Deployment", testRelease+"-ingress-nginx-controller")).Tolerations
	if len(tols) != 1 || tols[0].Key != LabelArch || tols[0].Value != "arm64" || tols[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("tolerations after the override = %+v", tols)
	}
}

// A chart with a global affinity that each component's own key overrides:
// the component's key is chosen for the component that has one; for the
// one that has none, the global key is, and the check render says which
// other workload it changes.
func TestHelmValuesGlobalKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "two")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	deploy := func(name, affinity string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ` + name + `}
spec:
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      {{- with ` + affinity + ` }}
      affinity: {{ toYaml . | nindent 8 }}
      {{- end }}
      containers: [{name: c, image: example.com/` + name + `:1}]
`
	}
	for name, data := range map[string]string{
		"Chart.yaml":           "apiVersion: v2\nname: two\nversion: 0.1.0\n",
		"values.yaml":          "global:\n  affinity: {}\nweb:\n  affinity: {}\n  podLabels: {}\n",
		"templates/web.yaml":   deploy("web", "(.Values.web.affinity | default .Values.global.affinity)"),
		"templates/batch.yaml": deploy("batch", ".Values.global.affinity"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := helmChart(t, dir)
	for _, tc := range []struct {
		target, key string
		also        []string
	}{
		{"web", "web.affinity", nil},
		{"batch", "global.affinity", []string{"ingress/Deployment/web"}},
	} {
		obj := rendered(t, c, nil, "Deployment", tc.target)
		fix, err := remedyFor(t, obj, "arm64").HelmValues(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		var also []string
		for _, r := range fix.AlsoChanges {
			also = append(also, r.String())
		}
		if len(fix.Keys) != 1 || fix.Keys[0].Path != tc.key || !fix.Verified || !reflect.DeepEqual(also, tc.also) {
			t.Errorf("%s: keys %+v, verified %v, also changes %q; want %s, %q", tc.target, fix.Keys, fix.Verified, also, tc.key, tc.also)
		}
	}
}
