package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/remedy"
)

const exampleLayout = "../../examples/images"

func runPatch(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runArchfit(t, stdin, append([]string{"patch", "--oci-layout", exampleLayout, "--no-cache"}, args...)...)
}

func TestPatchFlagValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "d.yaml")
	if err := os.WriteFile(file, []byte(deployment("amd64only", "example.com/shop/worker:2.3", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", nil, "accepts 1 arg"},
		{"two targets", []string{"deploy/a", "deploy/b"}, "accepts 1 arg"},
		{"not TYPE/NAME", []string{"api"}, "want TYPE/NAME"},
		{"not a workload type", []string{"service/api"}, "not a workload type"},
		{"unknown format", []string{"deploy/a", "-f", file, "--format", "strategic"}, `--format "strategic"`},
		{"force without apply", []string{"deploy/a", "--force"}, "--force only makes sense with --apply"},
		{"apply with files", []string{"deploy/a", "-f", file, "--apply"}, "cannot be used with -f"},
		{"apply and write", []string{"deploy/a", "--apply", "--write"}, "do not go together"},
		{"write without files", []string{"deploy/a", "--write"}, "--write needs -f"},
		{"write to stdin", []string{"deploy/a", "-f", "-", "--write"}, "cannot write back to stdin"},
		{"write another format", []string{"deploy/a", "-f", file, "--write", "--format", "merge"}, "--write writes the yaml format"},
		{"bad arch", []string{"deploy/a", "-f", file, "--arch", "amd64/x/y/z"}, "--arch"},
		{"empty arch", []string{"deploy/a", "-f", file, "--arch", ","}, "names no architecture"},
		{"bad concurrency", []string{"deploy/a", "-f", file, "--concurrency", "0"}, "--concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runPatch(t, "", tc.args...)
			if code != ExitFailure {
				t.Errorf("exit %d, want %d", code, ExitFailure)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not say %q", errOut, tc.want)
			}
		})
	}
}

func TestPatchComplete(t *testing.T) {
	o := &patchOptions{format: "json-patch", archs: []string{"x86_64", "aarch64", "amd64", " "}}
	if err := o.complete(nil, []string{"deployment.apps/api"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cluster.Target{Kind: "Deployment", Name: "api"}, o.target); diff != "" {
		t.Errorf("target (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"amd64", "arm64"}, o.allowIn); diff != "" {
		t.Errorf("--arch normalized (-want +got):\n%s", diff)
	}
	// --write implies the yaml format when none was asked for.
	o = &patchOptions{format: "json-patch", write: true}
	if err := o.complete(nil, []string{"deploy/api"}); err != nil {
		t.Fatal(err)
	}
	if o.fmt != remedy.FormatYAML {
		t.Errorf("format %q with --write, want yaml", o.fmt)
	}
}

func deployment(name, img, extra string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: shop
spec:
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
` + extra + `      containers:
      - name: app
        image: ` + img + `
`
}

func TestPatchFromFileJSONPatch(t *testing.T) {
	in := deployment("api", "example.com/shop/worker:2.3", "")
	out, errOut, code := runPatch(t, in, "deployment/api", "-f", "-", "--arch", "amd64,arm64")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ops []remedy.Operation
	if err := json.Unmarshal([]byte(out), &ops); err != nil {
		t.Fatalf("output is not a JSON patch: %v\n%s", err, out)
	}
	var value bytes.Buffer
	if len(ops) == 1 {
		_ = json.Compact(&value, ops[0].Value)
	}
	if len(ops) != 1 || ops[0].Path != "/spec/template/spec/affinity" || !strings.Contains(value.String(), `"values":["amd64"]`) {
		t.Errorf("ops: %s", out)
	}
	if !strings.Contains(errOut, "allowed architectures amd64") {
		t.Errorf("stderr does not name the allowed architectures: %s", errOut)
	}
}

func TestPatchConstraintConflictExits3(t *testing.T) {
	in := deployment("api", "example.com/shop/worker:2.3", "      nodeSelector:\n        kubernetes.io/arch: arm64\n")
	out, errOut, code := runPatch(t, in, "deployment/api", "-f", "-", "--arch", "amd64,arm64")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitFindings, errOut)
	}
	for _, want := range []string{remedy.CodeArchConstraintConflict, "nodeSelector", "arm64"} {
		if !strings.Contains(out, want) {
			t.Errorf("conflict explanation does not say %q:\n%s", want, out)
		}
	}
}

func TestPatchImageConflictExits3(t *testing.T) {
	// legacy:3 runs amd64 and 32-bit arm; the cluster is arm64 only.
	in := deployment("legacy", "example.com/shop/legacy:3", "")
	out, errOut, code := runPatch(t, in, "deployment/legacy", "-f", "-", "--arch", "arm64")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitFindings, errOut)
	}
	if !strings.Contains(out, remedy.CodeArchConstraintConflict) || !strings.Contains(out, "arm64") {
		t.Errorf("conflict explanation:\n%s", out)
	}
}

func TestPatchWriteKeepsComments(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.yaml")
	src := "# the shop's API\n" + deployment("api", "example.com/shop/worker:2.3", "") +
		"---\n# untouched\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: shop\n"
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runPatch(t, "", "deployment/api", "-f", dir, "--arch", "amd64,arm64", "--write")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "" {
		t.Errorf("--write printed to stdout: %q", out)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# the shop's API", "# untouched", "kind: ConfigMap", "kubernetes.io/arch", "- amd64"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("written file lacks %q:\n%s", want, got)
		}
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", info.Mode().Perm())
	}
	// Running again finds the workload pinned: nothing to patch, file unchanged.
	_, errOut, code = runPatch(t, "", "deployment/api", "-f", dir, "--arch", "amd64,arm64", "--write")
	again, _ := os.ReadFile(file)
	if code != ExitOK || string(again) != string(got) || !strings.Contains(errOut, "nothing to patch") {
		t.Errorf("second run: exit %d, changed %v, stderr %s", code, string(again) != string(got), errOut)
	}
}

func TestPatchFollowsRedirectInFiles(t *testing.T) {
	in := deployment("api", "example.com/shop/worker:2.3", "") + `---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: api-1
  namespace: shop
  ownerReferences:
  - {apiVersion: apps/v1, kind: Deployment, name: api, uid: u1, controller: true}
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: app
        image: example.com/shop/worker:2.3
`
	out, errOut, code := runPatch(t, in, "rs/api-1", "-f", "-", "--arch", "amd64,arm64", "--format", "kubectl")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "kubectl patch deployment.apps api -n shop") {
		t.Errorf("the patch is not of the Deployment:\n%s", out)
	}
}

func node(name, arch, taints string) string {
	return `apiVersion: v1
kind: Node
metadata:
  name: ` + name + `
  labels: {kubernetes.io/arch: ` + arch + `, kubernetes.io/os: linux}
spec:
` + taints + `status:
  nodeInfo: {architecture: ` + arch + `, operatingSystem: linux, containerRuntimeVersion: "containerd://2.1.4"}
`
}

// GKE taints every Arm node kubernetes.io/arch=arm64:NoSchedule: a workload
// allowed on arm64 gets the toleration with its affinity.
func TestPatchToleratesArchTaintOfNodes(t *testing.T) {
	gke := "  taints:\n  - {key: kubernetes.io/arch, value: arm64, effect: NoSchedule}\n"
	in := strings.Join([]string{
		node("a1", "amd64", ""), node("g1", "arm64", gke), node("g2", "arm64", gke),
		deployment("api", "example.com/shop/api:1.0", ""),
	}, "---\n")
	out, errOut, code := runPatch(t, in, "deployment/api", "-f", "-", "--format", "merge")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{`"tolerations"`, `"key": "kubernetes.io/arch"`, `"value": "arm64"`, `"effect": "NoSchedule"`, `"amd64"`} {
		if !strings.Contains(out, want) {
			t.Errorf("patch lacks %s:\n%s", want, out)
		}
	}
}
