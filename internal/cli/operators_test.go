package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/remedy"
)

const kubePrometheus = "../cluster/testdata/operators/kube-prometheus/"

// TestAuditOperatorResources: kube-prometheus's Prometheus and Alertmanager
// are audited with their images (the registry is out of reach here: the
// images are uninspectable, and said so), not dropped.
func TestAuditOperatorResources(t *testing.T) {
	out, errOut, code := runArchfit(t, "", "audit", "--oci-layout", exampleLayout, "--no-cache", "--fail-on", "never",
		"-f", kubePrometheus+"prometheus-prometheus.yaml", "-f", kubePrometheus+"alertmanager-alertmanager.yaml", "-f", kubePrometheus+"prometheus-serviceMonitor.yaml")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"monitoring/Prometheus/k8s  prometheus  main  quay.io/prometheus/prometheus:v3.13.2",
		"monitoring/Alertmanager/main  alertmanager  main  quay.io/prometheus/alertmanager:v0.33.1",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("the audit does not list %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ServiceMonitor") {
		t.Errorf("a ServiceMonitor runs nothing, yet the audit lists it:\n%s", out)
	}
}

// TestPatchOperatorResource: patch prometheus/NAME writes spec.affinity,
// where the Prometheus Operator reads it; the image comes from the OCI
// layout (amd64 only).
func TestPatchOperatorResource(t *testing.T) {
	in := `apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: k8s, namespace: monitoring}
spec:
  image: example.com/shop/worker:2.3
  nodeSelector: {kubernetes.io/os: linux}
`
	out, errOut, code := runPatch(t, in, "prometheus/k8s", "-f", "-", "--arch", "amd64,arm64")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ops []remedy.Operation
	if err := json.Unmarshal([]byte(out), &ops); err != nil {
		t.Fatalf("output is not a JSON patch: %v\n%s", err, out)
	}
	if len(ops) != 1 || ops[0].Path != "/spec/affinity" || !strings.Contains(string(ops[0].Value), `"amd64"`) || strings.Contains(string(ops[0].Value), `"arm64"`) {
		t.Errorf("ops: %s", out)
	}
	if !strings.Contains(errOut, "monitoring/Prometheus/k8s: allowed architectures amd64") {
		t.Errorf("stderr: %s", errOut)
	}
}

// TestPatchUnknownKindRefused: a custom resource archfit found containers
// in, but whose operator it does not know: a clear error, exit 1, no
// guessed path.
func TestPatchUnknownKindRefused(t *testing.T) {
	in := `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: shop}
spec:
  runner: {name: main, image: example.com/shop/worker:2.3}
`
	out, errOut, code := runPatch(t, in, "widgets.example.com/w", "-f", "-", "--arch", "amd64,arm64")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d: %s", code, ExitFailure, errOut)
	}
	if out != "" {
		t.Errorf("a patch was printed: %s", out)
	}
	if !strings.Contains(errOut, "where its operator reads node affinity is unknown to archfit") {
		t.Errorf("stderr does not say the location is unknown: %s", errOut)
	}
}
