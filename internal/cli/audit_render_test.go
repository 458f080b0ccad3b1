package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

const (
	renderChart = "../render/testdata/chart/web"
	renderKust  = "../render/testdata/kustomize/overlay"
)

var renderImageArgs = []string{"--oci-layout", "../../examples/images", "--no-cache", "--config", "../../examples/manifests/.archfit.yaml"}

type renderAudit struct {
	Findings []struct {
		Code, Container, ContainerType, Image string
		Workload                              struct{ Namespace, Name string }
	}
	Extra struct {
		Readiness struct{ Workloads, ReadyWorkloads, Replicas int }
		Blockers  []struct{ Image string }
	}
}

func auditRendered(t *testing.T, wantCode int, args ...string) renderAudit {
	t.Helper()
	args = append(append([]string{"audit", "-o", "json"}, args...), renderImageArgs...)
	out, errOut, code := runArchfit(t, "", args...)
	if code != wantCode {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, wantCode, errOut)
	}
	var doc renderAudit
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return doc
}

func TestAuditHelmChart(t *testing.T) {
	// The chart's defaults use a multi-arch image: ready for arm64.
	doc := auditRendered(t, ExitOK, "--helm-chart", renderChart)
	if r := doc.Extra.Readiness; r.Workloads != 1 || r.ReadyWorkloads != 1 || r.Replicas != 2 || len(doc.Findings) != 0 {
		t.Errorf("defaults: readiness %+v, findings %+v", r, doc.Findings)
	}

	// The values file switches the image and adds an amd64-only init container.
	doc = auditRendered(t, ExitOK, "--helm-chart", renderChart, "--values", renderChart+"/values-worker.yaml",
		"--release-name", "shop", "-n", "prod")
	atRisk := map[string]string{}
	for _, f := range doc.Findings {
		if f.Workload.Namespace != "prod" || f.Workload.Name != "shop-web" {
			t.Errorf("finding for %+v, want prod/shop-web", f.Workload)
		}
		if f.Code == "single-arch-at-risk" {
			atRisk[f.ContainerType+" "+f.Container] = f.Image
		}
	}
	if atRisk["init migrate"] != "example.com/shop/worker:2.3" || atRisk["main web"] != "example.com/shop/cache:7.2" {
		t.Errorf("at risk %v", atRisk)
	}
	if r := doc.Extra.Readiness; r.ReadyWorkloads != 0 {
		t.Errorf("with values: readiness %+v", r)
	}

	// --set wins over the values file.
	doc = auditRendered(t, ExitOK, "--helm-chart", renderChart, "--values", renderChart+"/values-worker.yaml",
		"--set", "image.repository=example.com/shop/api,image.tag=1.0", "--set", "migrate.enabled=false")
	if r := doc.Extra.Readiness; r.ReadyWorkloads != 1 || len(doc.Findings) != 0 {
		t.Errorf("with --set: readiness %+v, findings %+v", r, doc.Findings)
	}
}

func TestAuditKustomize(t *testing.T) {
	// The overlay pins arm64 and switches to an amd64-only image.
	doc := auditRendered(t, ExitFindings, "-k", renderKust)
	codes := map[string]bool{}
	for _, f := range doc.Findings {
		codes[f.Code] = true
		if f.Workload.Namespace != "shop" || f.Workload.Name != "api" {
			t.Errorf("finding for %+v, want shop/api", f.Workload)
		}
	}
	if !codes["arch-constraint-conflict"] {
		t.Errorf("codes %v, want arch-constraint-conflict", codes)
	}
}

func TestAuditRenderedWithFiles(t *testing.T) {
	doc := auditRendered(t, ExitFindings, "-f", "../../examples/manifests/workloads", "--helm-chart", renderChart)
	if n := doc.Extra.Readiness.Workloads; n != 8+1 {
		t.Errorf("%d workloads, want 9 (examples and chart)", n)
	}
}

func TestPlanHelmChart(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"plan", "--helm-chart", renderChart, "--values", renderChart + "/values-worker.yaml"}, renderImageArgs...)...)
	if code != ExitOK || !strings.Contains(out, "release-name-web") {
		t.Errorf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestAuditRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"values without chart", []string{"--values", renderChart + "/values-worker.yaml"}, []string{"--values and --set need --helm-chart"}},
		{"template error", []string{"--helm-chart", renderChart, "--set", "image.repository=null"},
			[]string{"rendering chart " + renderChart, "web/templates/deployment.yaml:23:20", "image.repository is required"}},
		{"parse error", []string{"--helm-chart", "../render/testdata/chart/broken"}, []string{"broken/templates/pod.yaml:8"}},
		// A document that renders but cannot be read is named by chart and
		// template, not by the temporary file.
		{"bad document", []string{"--helm-chart", renderChart, "--set", "replicas=two"},
			[]string{"warning: helm chart " + renderChart + ", web/templates/deployment.yaml (rendered):", "spec.replicas", "the input holds no workloads"}},
		{"not a kustomization", []string{"-k", renderChart}, []string{"building kustomization " + renderChart}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, stderr bytes.Buffer
			cmd := NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &stderr})
			cmd.SetArgs(append(append([]string{"audit"}, tc.args...), renderImageArgs...))
			err := cmd.ExecuteContext(context.Background())
			if code := ExitCode(err); code != ExitFailure {
				t.Errorf("exit %d, want %d", code, ExitFailure)
			}
			errOut := stderr.String() + fmt.Sprint(err)
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(errOut, "archfit-render-") {
				t.Errorf("stderr names the temporary file:\n%s", errOut)
			}
		})
	}
}
