package cli

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runDiagnose(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runArchfit(t, stdin, append([]string{"diagnose"}, args...)...)
}

var diagnoseExampleArgs = []string{"-f", "../../examples/cluster", "--oci-layout", "../../examples/images", "--no-cache"}

type diagDoc struct {
	Kind     string `json:"kind"`
	Findings []struct {
		Code     string `json:"code"`
		Workload struct {
			Kind, Namespace, Name string
		} `json:"workload"`
		Container string   `json:"container"`
		Evidence  []string `json:"evidence"`
	} `json:"findings"`
	Remedies []struct {
		Workload             struct{ Kind, Namespace, Name string } `json:"workload"`
		AllowedArchitectures []string                               `json:"allowedArchitectures"`
	} `json:"remedies"`
	Nodes []struct {
		Name, Platform string
	} `json:"nodes"`
	Extra struct {
		Stats map[string]int `json:"stats"`
	} `json:"extra"`
}

func TestDiagnoseCommand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		// wantWorkloads are the workloads with findings, sorted.
		wantWorkloads []string
	}{
		{
			name: "all", args: diagnoseExampleArgs, wantCode: ExitFindings,
			wantWorkloads: []string{"batch/CronJob/nightly-report", "monitoring/DaemonSet/node-exporter", "shop/Deployment/api", "shop/Deployment/cache-warmer",
				"shop/Deployment/frontend", "shop/Deployment/legacy-billing", "shop/Deployment/orders", "shop/Deployment/sessions", "shop/Deployment/worker", "shop/StatefulSet/cache"},
		},
		{
			name: "target", args: append([]string{"deployment/worker", "-n", "shop"}, diagnoseExampleArgs...), wantCode: ExitFindings,
			wantWorkloads: []string{"shop/Deployment/worker"},
		},
		{
			name: "target pod", args: append([]string{"pod/cache-1"}, diagnoseExampleArgs...), wantCode: ExitFindings,
			wantWorkloads: []string{"shop/StatefulSet/cache"},
		},
		{
			// A warning only, but its image is not in the layout: the
			// answer is incomplete.
			name: "namespace", args: append([]string{"-n", "batch"}, diagnoseExampleArgs...), wantCode: ExitIncomplete,
			wantWorkloads: []string{"batch/CronJob/nightly-report"},
		},
		{
			name: "allow-unverified", args: append([]string{"-n", "batch", "--allow-unverified"}, diagnoseExampleArgs...), wantCode: ExitOK,
			wantWorkloads: []string{"batch/CronJob/nightly-report"},
		},
		{
			name: "fail-on warning", args: append([]string{"-n", "batch", "--fail-on", "warning"}, diagnoseExampleArgs...), wantCode: ExitFindings,
			wantWorkloads: []string{"batch/CronJob/nightly-report"},
		},
		{
			name: "fail-on never", args: append([]string{"--fail-on", "never"}, diagnoseExampleArgs...), wantCode: ExitOK,
			wantWorkloads: []string{"batch/CronJob/nightly-report", "monitoring/DaemonSet/node-exporter", "shop/Deployment/api", "shop/Deployment/cache-warmer",
				"shop/Deployment/frontend", "shop/Deployment/legacy-billing", "shop/Deployment/orders", "shop/Deployment/sessions", "shop/Deployment/worker", "shop/StatefulSet/cache"},
		},
		{
			name: "healthy workload", args: append([]string{"deployment/api", "-n", "shop", "--fail-on", "never"}, diagnoseExampleArgs...), wantCode: ExitOK,
			wantWorkloads: []string{"shop/Deployment/api"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runDiagnose(t, "", append(tc.args, "-o", "json")...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.wantCode, stderr)
			}
			var doc diagDoc
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if doc.Kind != "Diagnosis" {
				t.Errorf("kind %q", doc.Kind)
			}
			seen := map[string]bool{}
			var got []string
			for _, f := range doc.Findings {
				k := f.Workload.Namespace + "/" + f.Workload.Kind + "/" + f.Workload.Name
				if !seen[k] {
					seen[k] = true
					got = append(got, k)
				}
				if len(f.Evidence) == 0 {
					t.Errorf("%s %s: no evidence", k, f.Code)
				}
			}
			sort.Strings(got)
			if diff := cmp.Diff(tc.wantWorkloads, got); diff != "" {
				t.Errorf("workloads with findings (-want +got):\n%s", diff)
			}
			if !strings.Contains(stderr, "failing pod(s)") {
				t.Errorf("no progress line on stderr: %q", stderr)
			}
		})
	}
}

func TestDiagnoseOnlyFailingImagesAreRead(t *testing.T) {
	out, _, _ := runDiagnose(t, "", append([]string{"-o", "json", "--fail-on", "never"}, diagnoseExampleArgs...)...)
	var doc struct {
		Images []struct{ Reference string } `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, r := range doc.Images {
		refs = append(refs, r.Reference)
	}
	sort.Strings(refs)
	refs = compactStrings(refs)
	// The api image is read for the crashing api, search and checkout pods;
	// no healthy-only image is read.
	want := []string{"example.com/shop/api:1.0", "example.com/shop/cache:7.2", "example.com/shop/exporter:0.9", "example.com/shop/legacy:3",
		"example.com/shop/worker:2.3", "example.com/tools/migrate:1", "ghcr.io/acme/frontend:4.1", "registry.example.com/finance/report:5.2"}
	if diff := cmp.Diff(want, refs); diff != "" {
		t.Errorf("images read (-want +got):\n%s", diff)
	}
}

func compactStrings(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func TestDiagnoseFormats(t *testing.T) {
	for _, format := range []string{"text", "yaml", "markdown", "sarif"} {
		t.Run(format, func(t *testing.T) {
			out, stderr, code := runDiagnose(t, "", append([]string{"-o", format}, diagnoseExampleArgs...)...)
			if code != ExitFindings {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(out, "wrong-arch-binary") {
				t.Errorf("%s output does not name wrong-arch-binary:\n%s", format, out)
			}
			if format == "sarif" {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Errorf("sarif is not JSON: %v", err)
				}
			}
		})
	}
}

func TestDiagnoseStdin(t *testing.T) {
	dump, err := os.ReadFile("../../examples/cluster/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Without logs: the worker crash on arm64 is still wrong-arch, from the
	// exit code and the image, with lower confidence.
	out, stderr, code := runDiagnose(t, string(dump), "-f", "-", "deployment/worker", "--oci-layout", "../../examples/images", "--no-cache", "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Findings []struct {
			Code, Confidence string
			Missing          []string
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != 1 || doc.Findings[0].Code != "wrong-arch-binary" || doc.Findings[0].Confidence != "medium" {
		t.Errorf("findings = %+v, want one wrong-arch-binary of medium confidence", doc.Findings)
	}
}

func TestDiagnoseUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicator/x", "-f", "../../examples/cluster"},
		{"deployment/nope", "-f", "../../examples/cluster", "--oci-layout", "../../examples/images"},
		{"-f", "does-not-exist.yaml"},
		{"-o", "xml", "-f", "../../examples/cluster"},
		{"--fail-on", "sometimes", "-f", "../../examples/cluster"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, code := runDiagnose(t, "", args...)
			if code != ExitFailure {
				t.Errorf("exit %d, want %d", code, ExitFailure)
			}
		})
	}
}
