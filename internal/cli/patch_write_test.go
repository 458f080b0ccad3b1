package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func writeManifest(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The document patched is exactly the one the target names, a document
// without namespace being in the namespace of -n ("default" without it), as
// kubectl apply -n puts it: with -n default it is default/api, not
// other/api; with -n other both documents are other/api, and the error
// names both rather than pick one.
func TestPatchWriteExactDocument(t *testing.T) {
	noNS := strings.Replace(deployment("api", "example.com/shop/worker:2.3", ""), "  namespace: shop\n", "", 1)
	other := strings.Replace(deployment("api", "example.com/shop/worker:2.3", ""), "namespace: shop", "namespace: other", 1)
	for _, tt := range []struct {
		name      string
		args      []string
		patched   int // the document patched, -1 for an error
		errSubstr string
	}{
		{"-n default", []string{"-n", "default"}, 0, ""},
		{"-n other", []string{"-n", "other"}, -1, "more than one document"},
		{"no -n", nil, -1, "names 2 workloads (default/Deployment/api, other/Deployment/api): narrow it with -n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeManifest(t, "app.yaml", noNS+"---\n"+other)
			args := append([]string{"deployment/api", "-f", p, "--arch", "amd64,arm64", "--write"}, tt.args...)
			_, errOut, code := runPatch(t, "", args...)
			got, _ := os.ReadFile(p)
			if tt.patched < 0 {
				if code == ExitOK || !strings.Contains(errOut, tt.errSubstr) || string(got) != noNS+"---\n"+other {
					t.Errorf("exit %d, want an error with %q and the file unchanged:\n%s", code, tt.errSubstr, errOut)
				}
				return
			}
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			docs := strings.Split(string(got), "---\n")
			for i, d := range docs {
				if strings.Contains(d, "kubernetes.io/arch") != (i == tt.patched) {
					t.Errorf("document %d patched: %v, want only document %d:\n%s", i, !(i == tt.patched), tt.patched, got)
				}
			}
		})
	}
}

func TestPatchWriteAmbiguousDocument(t *testing.T) {
	d := deployment("api", "example.com/shop/worker:2.3", "")
	p := writeManifest(t, "app.yaml", d+"---\n"+d)
	_, errOut, code := runPatch(t, "", "deployment/api", "-n", "shop", "-f", p, "--arch", "amd64,arm64", "--write")
	lines := strings.Count(d, "\n")
	if code == ExitOK || !strings.Contains(errOut, p+":1") || !strings.Contains(errOut, p+":"+itoa(lines+2)) {
		t.Errorf("exit %d, want an error naming both documents:\n%s", code, errOut)
	}
	if got, _ := os.ReadFile(p); string(got) != d+"---\n"+d {
		t.Error("the file was changed")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// --write on a JSON file keeps it JSON, and archfit reads it again.
func TestPatchWriteKeepsJSON(t *testing.T) {
	js, err := yaml.YAMLToJSON([]byte(deployment("api", "example.com/shop/worker:2.3", "")))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	_ = json.Unmarshal(js, &v)
	pretty, _ := json.MarshalIndent(v, "", "    ")
	p := writeManifest(t, "app.json", string(pretty)+"\n")
	_, errOut, code := runPatch(t, "", "deployment/api", "-f", p, "--arch", "amd64,arm64", "--write")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got, _ := os.ReadFile(p)
	if err := json.Unmarshal(got, &v); err != nil || !strings.Contains(string(got), "\n    \"kind\": \"Deployment\"") || !strings.Contains(string(got), "kubernetes.io/arch") {
		t.Errorf("not the patched JSON (%v):\n%s", err, got)
	}
	_, errOut, code = runPatch(t, "", "deployment/api", "-f", p, "--arch", "amd64,arm64", "--write")
	if code != ExitOK || !strings.Contains(errOut, "nothing to patch") {
		t.Errorf("reading the written file again: exit %d, %s", code, errOut)
	}
}
