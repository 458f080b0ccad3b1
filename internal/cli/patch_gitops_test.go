package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"

	"github.com/archfit/archfit/internal/remedy"
)

// The real argo-cd install.yaml (a slice of whole documents) and
// microservices-demo release manifests; see their NOTICE.md.
const gitopsData = "../remedy/testdata/gitops"

func copyTestFile(t *testing.T, name string, crlf bool, mode os.FileMode) (path string, data []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(gitopsData, name))
	if err != nil {
		t.Fatal(err)
	}
	if crlf {
		data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	}
	path = filepath.Join(t.TempDir(), "install.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// patchLines counts the lines the add operations of a JSON patch take as
// block YAML, with yaml.v3's own encoder.
func patchLines(t *testing.T, jsonPatch string) int {
	t.Helper()
	var ops []remedy.Operation
	if err := json.Unmarshal([]byte(jsonPatch), &ops); err != nil {
		t.Fatalf("not a JSON patch: %v\n%s", err, jsonPatch)
	}
	n := 0
	for _, o := range ops {
		if o.Op != "add" {
			continue
		}
		var v any
		_ = json.Unmarshal(o.Value, &v)
		key := o.Path[strings.LastIndex(o.Path, "/")+1:]
		var doc any = map[string]any{key: v}
		if key == "-" {
			doc = []any{v}
		}
		b, _ := yaml3.Marshal(doc)
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

// `patch deployment/argocd-server -f install.yaml -n argocd --write`: the
// file's diff is the added affinity lines only (as many as the printed
// JSON patch has, every other line byte for byte the same), CRLF stays
// CRLF, the mode stays, no temporary file is left.
func TestPatchWriteRealFiles(t *testing.T) {
	for _, tc := range []struct {
		file, target string
		ns           []string
	}{
		{"argo-cd-install-slice.yaml", "deployment/argocd-server", []string{"-n", "argocd"}},
		{"argo-cd-install-slice.yaml", "statefulset/argocd-application-controller", nil},
		{"microservices-demo-kubernetes-manifests.yaml", "deployment/frontend", nil},
		{"microservices-demo-kubernetes-manifests.yaml", "deployment/redis-cart", []string{"-n", "boutique"}},
	} {
		for _, crlf := range []bool{false, true} {
			t.Run(tc.file+"/"+tc.target+map[bool]string{true: "/crlf"}[crlf], func(t *testing.T) {
				p, orig := copyTestFile(t, tc.file, crlf, 0o640)
				// The real files' images are not in the layout: this test is
				// about the edit, so the unverified allow-list is accepted.
				base := append([]string{tc.target, "-f", p, "--arch", "amd64,arm64", "--allow-unverified"}, tc.ns...)
				jp, errOut, code := runPatch(t, "", base...)
				if code != ExitOK {
					t.Fatalf("json-patch: exit %d: %s", code, errOut)
				}
				want := patchLines(t, jp)
				_, errOut, code = runPatch(t, "", append(base, "--write")...)
				if code != ExitOK || !strings.Contains(errOut, "wrote "+p) || strings.Contains(errOut, "re-encoded") {
					t.Fatalf("--write: exit %d: %s", code, errOut)
				}
				got, _ := os.ReadFile(p)
				a, b := strings.SplitAfter(string(orig), "\n"), strings.SplitAfter(string(got), "\n")
				i, added := 0, 0
				for _, l := range b {
					if i < len(a) && l == a[i] {
						i++
						continue
					}
					added++
					if crlf != strings.HasSuffix(l, "\r\n") {
						t.Errorf("added line %q: not the file's line break", l)
					}
				}
				if i != len(a) || added != want || want == 0 {
					t.Errorf("%d of %d original lines kept, %d added; want all kept and the %d lines of the patch", i, len(a), added, want)
				}
				if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
					t.Errorf("mode %v, want 0640", fi.Mode().Perm())
				}
				if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
					t.Errorf("left in the directory: %v", ents)
				}
				// Written once, the workload is kept on its architectures.
				_, errOut, code = runPatch(t, "", append(base, "--write")...)
				if code != ExitOK || !strings.Contains(errOut, "nothing to patch") {
					t.Errorf("second --write: exit %d: %s", code, errOut)
				}
			})
		}
	}
}

// -n NS gives the objects of -f that have none that namespace, as kubectl
// apply -n does; "default" without -n. Objects that name one keep it.
func TestFileNamespaceDefaulting(t *testing.T) {
	argo := filepath.Join(gitopsData, "argo-cd-install-slice.yaml")
	layout := []string{"--oci-layout", exampleLayout, "--no-cache"}

	out, errOut, code := runPatch(t, "", "deployment/argocd-server", "-f", argo, "-n", "argocd", "--arch", "amd64", "--format", "kubectl", "--allow-unverified")
	if code != ExitOK || !strings.Contains(out, "kubectl patch deployment.apps argocd-server -n argocd ") {
		t.Errorf("patch -n argocd: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runPatch(t, "", "deployment/argocd-server", "-f", argo, "--arch", "amd64", "--format", "kubectl", "--allow-unverified")
	if code != ExitOK || !strings.Contains(out, " -n default ") {
		t.Errorf("patch without -n: exit %d, want the default namespace\n%s%s", code, out, errOut)
	}

	for _, ns := range []string{"other", ""} {
		args := append([]string{"audit", "-f", argo, "-o", "json"}, layout...)
		want := "default"
		if ns != "" {
			args, want = append(args, "-n", ns), ns
		}
		out, errOut, _ = runArchfit(t, "", args...)
		var doc struct {
			Findings []struct {
				Workload struct{ Namespace, Name string } `json:"workload"`
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Findings) == 0 {
			t.Fatalf("audit -n %q: %v\n%s%s", ns, err, out, errOut)
		}
		for _, f := range doc.Findings {
			if f.Workload.Namespace != want {
				t.Errorf("audit -n %q: %s in namespace %q, want %q", ns, f.Workload.Name, f.Workload.Namespace, want)
			}
		}
	}

	// An explicit namespace is kept; -n of another one warns (kubectl apply
	// -n would refuse the file).
	shop := deployment("api", "example.com/shop/worker:2.3", "")
	out, errOut, _ = runArchfit(t, shop, append([]string{"audit", "-f", "-", "-n", "other", "-o", "json"}, layout...)...)
	if !strings.Contains(out, `"namespace": "shop"`) || !strings.Contains(errOut, "warning: -n other: shop/Deployment/api name another namespace in the files") {
		t.Errorf("explicit namespace with -n other:\n%s%s", out, errOut)
	}
	_, errOut, code = runPatch(t, shop, "deployment/api", "-f", "-", "-n", "other", "--arch", "amd64")
	if code == ExitOK || !strings.Contains(errOut, "not found in namespace other") {
		t.Errorf("patch -n other of shop/api: exit %d: %s", code, errOut)
	}
}
