package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

var exampleArgs = []string{"-f", "../../examples/manifests/workloads", "--oci-layout", "../../examples/images", "--no-cache",
	"--config", "../../examples/manifests/.archfit.yaml"}

func TestAuditJSON(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"audit", "-o", "json"}, exampleArgs...)...)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitFindings, errOut)
	}
	var doc struct {
		Kind     string
		Findings []struct{ Code, Waived, Container, ContainerType string }
		Remedies []struct {
			AllowedArchitectures []string
			Patch                any
		}
		Extra struct {
			Readiness struct{ Workloads, ReadyWorkloads int }
			Blockers  []struct {
				Image     string
				Workloads int
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Kind != "Audit" || doc.Extra.Readiness.Workloads != 8 || doc.Extra.Readiness.ReadyWorkloads != 2 {
		t.Errorf("kind %s readiness %+v", doc.Kind, doc.Extra.Readiness)
	}
	if len(doc.Extra.Blockers) == 0 || doc.Extra.Blockers[0].Image != "example.com/shop/worker:2.3" || doc.Extra.Blockers[0].Workloads != 3 {
		t.Errorf("blockers %+v", doc.Extra.Blockers)
	}
	waived, sidecar := 0, false
	for _, f := range doc.Findings {
		if f.Waived != "" {
			waived++
		}
		if f.Code == "single-arch-at-risk" && f.ContainerType == "sidecar" {
			sidecar = true
		}
	}
	if waived != 2 || !sidecar {
		t.Errorf("waived %d (want 2: annotation and config), sidecar at risk %v", waived, sidecar)
	}
	if len(doc.Remedies) == 0 {
		t.Error("no remedies")
	}
}

func TestAuditFormats(t *testing.T) {
	for _, format := range []string{"text", "yaml", "markdown", "sarif", "html"} {
		t.Run(format, func(t *testing.T) {
			out, errOut, code := runArchfit(t, "", append([]string{"audit", "-o", format, "--fail-on", "never"}, exampleArgs...)...)
			if code != ExitOK || out == "" {
				t.Fatalf("exit %d, %d bytes; stderr:\n%s", code, len(out), errOut)
			}
			if format == "html" && (!strings.Contains(out, `class="fails"`) || !strings.Contains(out, "Plan, phase 1") || strings.Contains(out, "<script")) {
				t.Error("html lacks the grid or the plan")
			}
			if format == "text" && !strings.Contains(out, "waived: replaced by node-agent v4") {
				t.Errorf("text does not show the waiver reason:\n%s", out)
			}
		})
	}
}

func TestPlanCommand(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"plan", "--prefer-arm"}, exampleArgs...)...)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, s := range []string{"Phase 1: Taint the Arm pools", "kubectl patch deployment.apps catalog -n shop --type json", "Rollback:", "Gate:"} {
		if !strings.Contains(out, s) {
			t.Errorf("plan lacks %q", s)
		}
	}
	if _, errOut, code := runArchfit(t, "", "audit", "-f", "../../examples/manifests/workloads", "--config", "missing.yaml"); code != ExitFailure {
		_ = errOut
		t.Errorf("missing --config: exit %d", code)
	}
}
