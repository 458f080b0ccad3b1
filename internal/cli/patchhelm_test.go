package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// helmTestChart is a subset of ingress-nginx 4.15.1, kubeVersion kept (see its
// README.archfit.md). helmImage points its controller at an image of the
// example OCI layout (amd64 and arm64): registry.k8s.io is not reachable
// from the tests.
const helmTestChart = "../remedy/testdata/charts/ingress-nginx"

var helmImage = []string{"--set", "controller.image.registry=example.com,controller.image.image=shop/api,controller.image.tag=1.0,controller.image.digest=",
	"--oci-layout", exampleLayout}

func TestPatchHelmFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--values", "v.yaml"}, "--values and --set need --helm-chart"},
		{[]string{"--helm-chart", helmTestChart, "--write"}, "--helm-chart prints the values"},
		{[]string{"-o", "sarif"}, `-o "sarif": want text, json or yaml`},
		{[]string{"-o", "json", "--apply"}, "-o json prints the remedy"},
	} {
		_, errOut, code := runArchfit(t, "", append([]string{"patch", "deployment/x"}, tc.args...)...)
		if code != ExitFailure || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// patch --helm-chart prints a values file whose comments hold the helm
// command, and which sets controller.affinity, not the default backend's.
func TestPatchHelmChartPrintsValues(t *testing.T) {
	out, errOut, code := runArchfit(t, "", "patch", "deployment/edge-ingress-nginx-controller", "--helm-chart", helmTestChart,
		"--release-name", "edge", "-n", "ingress", "--set", "defaultBackend.enabled=true", "--arch", "arm64", "--no-cache", helmImage[0], helmImage[1], helmImage[2], helmImage[3])
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "#   helm upgrade edge "+helmTestChart+" --reuse-values -f archfit-values.yaml -n ingress\n") {
		t.Errorf("no helm command in\n%s", out)
	}
	var vals map[string]any
	if err := yaml.Unmarshal([]byte(out), &vals); err != nil {
		t.Fatal(err)
	}
	ctrl, _ := vals["controller"].(map[string]any)
	if len(vals) != 1 || len(ctrl) != 1 || ctrl["affinity"] == nil {
		t.Errorf("values = %v, want controller.affinity only", vals)
	}
	if !strings.Contains(out, `- arm64`) {
		t.Errorf("the override does not allow arm64:\n%s", out)
	}

	// --format asks for the object patch.
	out, _, code = runArchfit(t, "", "patch", "deployment/edge-ingress-nginx-controller", "--helm-chart", helmTestChart,
		"--release-name", "edge", "-n", "ingress", "--arch", "arm64", "--no-cache", "--format", "json-patch", helmImage[0], helmImage[1], helmImage[2], helmImage[3])
	if code != 0 || !strings.Contains(out, `"path": "/spec/template/spec/affinity"`) {
		t.Errorf("--format json-patch: exit %d\n%s", code, out)
	}
}

// -o json carries the values override and the command as fields.
func TestPatchHelmChartJSON(t *testing.T) {
	out, errOut, code := runArchfit(t, "", "patch", "deployment/edge-ingress-nginx-controller", "--helm-chart", helmTestChart,
		"--release-name", "edge", "-n", "ingress", "--arch", "amd64", "--no-cache", "-o", "json", helmImage[0], helmImage[1], helmImage[2], helmImage[3])
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Kind     string
		Remedies []struct {
			Helm struct {
				Keys     []struct{ Field, Path string }
				Values   map[string]any
				Command  string
				Verified bool
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "Patch" || len(doc.Remedies) != 1 {
		t.Fatalf("kind %s, %d remedies", doc.Kind, len(doc.Remedies))
	}
	h := doc.Remedies[0].Helm
	if len(h.Keys) != 1 || h.Keys[0].Path != "controller.affinity" || !h.Verified || h.Values["controller"] == nil ||
		h.Command != "helm upgrade edge "+helmTestChart+" --reuse-values -f archfit-values.yaml -n ingress" {
		t.Errorf("helm = %+v", h)
	}
}

// A chart without a values key for the affinity gets the post-renderer.
func TestPatchHelmChartPostRenderer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fixed")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: fixed\nversion: 1.0.0\n",
		"values.yaml": "replicas: 1\nannotations: {}\n",
		"templates/d.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-app}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers: [{name: app, image: example.com/shop/worker:2.3}]
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runArchfit(t, "", "patch", "deployment/r-app", "--helm-chart", dir, "--release-name", "r", "--no-cache", "--oci-layout", exampleLayout)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"no values key of the chart reaches the affinity or nodeSelector", "kustomization.yaml", "archfit-post-renderer.sh",
		"helm upgrade r " + dir + " --reuse-values --post-renderer ./archfit-post-renderer.sh -n default"} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, out, errOut)
		}
	}
}

// An answer that rests on unread images is not placed in the chart: the
// document says which images were not read, and archfit exits 4 (the
// chart's own image is not in the example OCI layout).
func TestPatchHelmChartUnreadImages(t *testing.T) {
	out, errOut, code := runArchfit(t, "", "patch", "deployment/edge-ingress-nginx-controller", "--helm-chart", helmTestChart,
		"--release-name", "edge", "-n", "ingress", "--arch", "amd64", "--no-cache", "-o", "json", "--oci-layout", exampleLayout)
	if code != ExitIncomplete {
		t.Fatalf("exit %d, want %d: %s", code, ExitIncomplete, errOut)
	}
	var doc struct {
		Remedies []struct {
			Unverified []string
			Helm       *struct{}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Remedies) != 1 || len(doc.Remedies[0].Unverified) == 0 || doc.Remedies[0].Helm != nil {
		t.Errorf("remedies = %+v", doc.Remedies)
	}
}
