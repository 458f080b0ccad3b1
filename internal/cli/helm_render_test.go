package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const hooksChart = "../render/testdata/chart/hooks"

// Hooks are audited in the release namespace; helm test pods are listed
// apart (text and extra.helmTests) and count nowhere.
func TestAuditHelmTestsApart(t *testing.T) {
	args := append([]string{"audit", "--helm-chart", hooksChart, "-n", "shop", "--release-name", "rel"}, renderImageArgs...)
	out, errOut, code := runArchfit(t, "", append(args, "-o", "json")...)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if errs := schemaErrors(t, documentSchema(t), []byte(out)); len(errs) > 0 {
		t.Errorf("output does not match the schema at %v", errs)
	}
	var doc struct {
		Images []struct{ Reference string }
		Extra  struct {
			Readiness struct{ Workloads int }
			Workloads []struct {
				Workload struct{ Kind, Namespace, Name string }
			}
			HelmTests []struct {
				Kind, Namespace, Name, Template string
				Images                          []string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	var workloads []string
	for _, w := range doc.Extra.Workloads {
		workloads = append(workloads, w.Workload.Kind+" "+w.Workload.Namespace+"/"+w.Workload.Name)
	}
	if got := strings.Join(workloads, ", "); got != "Deployment shop/rel-app, Job shop/rel-migrate" || doc.Extra.Readiness.Workloads != 2 {
		t.Errorf("workloads %s (readiness counts %d), want the deployment and the hook job in shop", got, doc.Extra.Readiness.Workloads)
	}
	if len(doc.Extra.HelmTests) != 2 {
		t.Fatalf("helmTests %+v, want the two test pods", doc.Extra.HelmTests)
	}
	for _, h := range doc.Extra.HelmTests {
		if h.Kind != "Pod" || h.Template == "" || len(h.Images) == 0 {
			t.Errorf("helm test %+v", h)
		}
	}
	for _, im := range doc.Images {
		if strings.Contains(im.Reference, "curl") || strings.Contains(im.Reference, "check") {
			t.Errorf("test image %s inspected", im.Reference)
		}
	}

	out, errOut, code = runArchfit(t, "", args...)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	_, list, _ := strings.Cut(out, "Helm test hooks (run by helm test, not installed; not audited, not counted in readiness):\n")
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	want := []string{"shop/Pod/rel-test hooks/templates/test-pod.yaml example.com/busybox:1 example.com/curl:8",
		"elsewhere/Pod/rel-test-old hooks/templates/test-success.yaml example.com/check:1"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("helm tests listed as %q, want %q; text:\n%s", rows, want, out)
	}
	if !strings.Contains(errOut, "rendered chart "+hooksChart+" for Kubernetes v1.37.0 (archfit's default") {
		t.Errorf("stderr does not say the version rendered for:\n%s", errOut)
	}
}

func TestAuditHelmKubeVersionFlags(t *testing.T) {
	const ingress = "../render/testdata/chart/ingress-nginx"
	set := []string{"--set", "defaultBackend.enabled=true,defaultBackend.autoscaling.enabled=true"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"too old for the chart", append([]string{"--helm-chart", ingress, "--kube-version", "1.20"}, set...),
			"requires kubeVersion >=1.21.0-0, incompatible with Kubernetes v1.20 (--kube-version)"},
		{"not a version", []string{"--helm-chart", ingress, "--kube-version", "latest"}, `--kube-version "latest"`},
		{"without a chart", []string{"-f", "../../examples/manifests", "--api-versions", "autoscaling/v2"}, "--kube-version and --api-versions need --helm-chart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runArchfit(t, "", append(append([]string{"audit"}, tc.args...), renderImageArgs...)...)
			if code != ExitFailure || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr lacks %q:\n%s", code, tc.want, errOut)
			}
		})
	}
}

// A kubeconfig that is only there (KUBECONFIG) is not read: the render
// stays offline. Naming one with --kubeconfig asks its server.
func TestAuditHelmChartNamedCluster(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	// 192.0.2.0/24 (TEST-NET-1) is never routed.
	err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://192.0.2.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	args := append([]string{"audit", "--helm-chart", hooksChart, "--request-timeout", "2s"}, renderImageArgs...)
	_, errOut, code := runArchfit(t, "", args...)
	if code != ExitOK || strings.Contains(errOut, "192.0.2.1") {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}
	start := time.Now()
	_, errOut, code = runArchfit(t, "", append(args, "--kubeconfig", kc)...)
	if code != ExitFailure || !strings.Contains(errOut, "reading the capabilities of the cluster at https://192.0.2.1:6443") {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("the discovery took %s", d)
	}
}

func TestAuditHelmSkippedDependency(t *testing.T) {
	_, errOut, code := runArchfit(t, "", append([]string{"audit", "--helm-chart", "../render/testdata/chart/v1app"}, renderImageArgs...)...)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"warning: chart v1app: dependency db is not in charts/ and its condition db.enabled is false: rendered without it",
		"warning: chart v1app: dependency metrics is not in charts/ and its tags monitoring are false: rendered without it"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// -f on a chart directory: one error saying to use --helm-chart, not a
// warning per template.
func TestAuditChartDirectoryAsFiles(t *testing.T) {
	for _, args := range [][]string{{"-f", hooksChart}, {"-R", "-f", hooksChart}} {
		_, errOut, code := runArchfit(t, "", append(append([]string{"audit"}, args...), renderImageArgs...)...)
		if code != ExitFailure || !strings.Contains(errOut, "is a Helm chart directory (it holds Chart.yaml), not manifests: archfit audit and plan render it with --helm-chart "+hooksChart) {
			t.Errorf("%v: exit %d; stderr:\n%s", args, code, errOut)
		}
		if n := strings.Count(errOut, "\n"); n > 2 {
			t.Errorf("%v: %d lines on stderr:\n%s", args, n, errOut)
		}
	}
}

func TestPlanHelmTests(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"plan", "--helm-chart", hooksChart, "-o", "json"}, renderImageArgs...)...)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if errs := schemaErrors(t, documentSchema(t), []byte(out)); len(errs) > 0 {
		t.Errorf("output does not match the schema at %v", errs)
	}
	var doc struct {
		Extra struct{ HelmTests []struct{ Name string } }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Extra.HelmTests) != 2 {
		t.Errorf("helmTests %+v (%v), want the two test pods", doc.Extra.HelmTests, err)
	}
}
