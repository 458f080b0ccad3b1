package report

import (
	"github.com/archfit/archfit/internal/object"

	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
)

func sample() *Document {
	f := finding.New(finding.WrongArchBinary, "container app ran an amd64 binary on an arm64 node")
	f.Workload = &object.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"}
	f.Container, f.ContainerType, f.Image, f.Node, f.NodePlatform = "app", "main", "example.com/api:1", "arm-1", "linux/arm64/v8"
	f.Evidence = []string{"exec /app: exec format error"}
	w := finding.New(finding.SingleArchAtRisk, "at risk")
	return &Document{Kind: "Diagnosis", Findings: []finding.Finding{w, f}, Images: []*image.Report{{Reference: "example.com/api:1", Kind: "manifest", Platforms: []string{"linux/amd64"}}}}
}

// TestJSONShape pins the contract of DESIGN.md: these keys exist with these
// names (more may be added).
func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := JSON(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"findings", "remedies", "images", "nodes"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("top-level key %q missing", k)
		}
	}
	f := doc["findings"].([]any)[0].(map[string]any)
	for _, k := range []string{"code", "severity", "workload", "container", "containerType", "image", "node", "nodePlatform", "evidence", "message"} {
		if _, ok := f[k]; !ok {
			t.Errorf("finding key %q missing", k)
		}
	}
	if diff := cmp.Diff(map[string]any{"kind": "Deployment", "namespace": "shop", "name": "api"}, f["workload"]); diff != "" {
		t.Error(diff)
	}
	if f["code"] != "wrong-arch-binary" {
		t.Errorf("errors must sort before warnings, got %v first", f["code"])
	}
}

func TestFormats(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			f, err := For(format)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := f(&buf, sample()); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), "exec /app: exec format error") {
				t.Errorf("%s output lacks the evidence:\n%s", format, buf.String())
			}
		})
	}
	if _, err := For("xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestSARIFRules(t *testing.T) {
	var buf bytes.Buffer
	if err := SARIF(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID string `json:"ruleId"`
				Level  string `json:"level"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || len(doc.Runs) != 1 || len(doc.Runs[0].Tool.Driver.Rules) != len(finding.Rules()) {
		t.Fatalf("unexpected SARIF: %s", buf.String())
	}
	if r := doc.Runs[0].Results[0]; r.RuleID != "wrong-arch-binary" || r.Level != "error" {
		t.Errorf("first result %+v", r)
	}
}
