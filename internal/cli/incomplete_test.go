package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/registry/hostiletest"
	"github.com/archfit/archfit/internal/testimage"
)

// Issue 11: an answer that rests on images archfit could not read is not
// green. These tests read real manifests (Argo CD's) and real registries.

// closedPort is a loopback address nothing listens on: connecting to it is
// refused at once, as an unreachable registry is (no network needed, and
// the test does not depend on whether the machine is online).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// argoCD writes Argo CD's Deployments (testdata/argo-cd, vendored unchanged)
// with their three registries moved to an unreachable one: the manifests
// are real, only the registry host differs. It returns the file and the
// registry host.
func argoCD(t *testing.T) (string, string) {
	t.Helper()
	b, err := os.ReadFile("testdata/argo-cd/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	host := closedPort(t)
	s := string(b)
	for _, reg := range []string{"quay.io", "ghcr.io", "public.ecr.aws"} {
		s = strings.ReplaceAll(s, "image: "+reg+"/", "image: "+host+"/")
	}
	if strings.Count(s, "image: "+host+"/") != 5 {
		t.Fatalf("expected 5 container images moved to %s:\n%s", host, s)
	}
	p := filepath.Join(t.TempDir(), "install.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, host
}

func TestUnreadImagesAudit(t *testing.T) {
	file, host := argoCD(t)
	base := []string{"audit", "-f", file, "--no-cache"}

	out, errOut, code := runArchfit(t, "", base...)
	if code != ExitIncomplete {
		t.Fatalf("exit %d, want %d (nothing could be read); stderr:\n%s", code, ExitIncomplete, errOut)
	}
	if !strings.HasPrefix(out, "INCOMPLETE: 3 of 3 image(s) could not be read") {
		t.Errorf("the output does not start with what could not be read:\n%s", out)
	}
	for _, want := range []string{
		"unreachable (3): " + host + "/argoproj/argocd:latest",
		"what to do: the registry could not be reached",
		"--oci-layout",
		"blocked 0, conflicting 0, unknown 3",
		"? (no image read: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "amd64,arm64 (unverified") {
		t.Errorf("an allow-list that rests on no image is shown:\n%s", out)
	}
	if !strings.Contains(errOut, "3 of 3 image(s) could not be read") {
		t.Errorf("stderr does not say why the exit code is 4:\n%s", errOut)
	}

	out, _, code = runArchfit(t, "", append(base, "-o", "json")...)
	if code != ExitIncomplete {
		t.Errorf("-o json: exit %d", code)
	}
	if errs := schemaErrors(t, documentSchema(t), []byte(out)); len(errs) > 0 {
		t.Errorf("schema: %v", errs)
	}
	var doc struct {
		Incomplete struct {
			UnreadImages, Images int
			ByReason             []struct {
				Reason string
				Images []string
			}
		}
		Extra struct {
			Readiness struct{ ReadyWorkloads, BlockedWorkloads, UnknownWorkloads int }
			Workloads []struct{ State string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if inc := doc.Incomplete; inc.UnreadImages != 3 || inc.Images != 3 || len(inc.ByReason) != 1 || inc.ByReason[0].Reason != "unreachable" || len(inc.ByReason[0].Images) != 3 {
		t.Errorf("incomplete: %+v", inc)
	}
	if r := doc.Extra.Readiness; r.ReadyWorkloads != 0 || r.BlockedWorkloads != 0 || r.UnknownWorkloads != 3 {
		t.Errorf("readiness: %+v", r)
	}
	for _, w := range doc.Extra.Workloads {
		if w.State != "unknown" {
			t.Errorf("a workload none of whose images was read is %q", w.State)
		}
	}

	for _, tc := range []struct {
		flags []string
		want  int
	}{
		{[]string{"--allow-unverified"}, ExitOK},
		{[]string{"--fail-on", "never"}, ExitOK},
		{[]string{"--fail-on", "warning"}, ExitIncomplete},
	} {
		if _, _, code := runArchfit(t, "", append(base, tc.flags...)...); code != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.flags, code, tc.want)
		}
	}

	// Every format says it at the top.
	md, _, _ := runArchfit(t, "", append(base, "-o", "markdown")...)
	if !strings.Contains(md, "> **Incomplete: 3 of 3 image(s) could not be read**") {
		t.Errorf("markdown:\n%s", md)
	}
	page, _, _ := runArchfit(t, "", append(base, "-o", "html")...)
	if !strings.Contains(page, "<b>Incomplete: 3 of 3 image(s) could not be read</b>") || strings.Contains(page, "No image blocks arm64.") {
		t.Errorf("html:\n%s", page)
	}
	sarif, _, _ := runArchfit(t, "", append(base, "-o", "sarif")...)
	var s struct {
		Runs []struct {
			Invocations []struct {
				ExecutionSuccessful        bool
				ToolExecutionNotifications []struct {
					Level   string
					Message struct{ Text string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(sarif), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Runs) != 1 || len(s.Runs[0].Invocations) != 1 || len(s.Runs[0].Invocations[0].ToolExecutionNotifications) != 1 ||
		!strings.Contains(s.Runs[0].Invocations[0].ToolExecutionNotifications[0].Message.Text, "3 of 3 image(s) could not be read") {
		t.Errorf("sarif: %s", sarif)
	}
}

func TestUnreadImagesPlan(t *testing.T) {
	file, host := argoCD(t)
	base := []string{"plan", "-f", file, "--no-cache"}
	out, errOut, code := runArchfit(t, "", base...)
	if code != ExitIncomplete {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitIncomplete, errOut)
	}
	if !strings.HasPrefix(out, "INCOMPLETE: 3 of 3 image(s) could not be read") {
		t.Errorf("no header:\n%s", out)
	}
	for _, bad := range []string{"No image blocks arm64.", "see blockers"} {
		if strings.Contains(out, bad) {
			t.Errorf("%q with no image read:\n%s", bad, out)
		}
	}
	for _, want := range []string{
		"First, let archfit read the 3 image(s) it could not",
		host + "/argoproj/argocd:latest  # unreachable; 3 workload(s)",
		"Deployment/argocd-server: unknown: " + host + "/argoproj/argocd:latest (unreachable) could not be read",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}

	out, _, code = runArchfit(t, "", append(base, "-o", "json")...)
	if code != ExitIncomplete {
		t.Errorf("-o json: exit %d", code)
	}
	if errs := schemaErrors(t, documentSchema(t), []byte(out)); len(errs) > 0 {
		t.Errorf("schema: %v", errs)
	}
	var doc struct {
		Extra struct {
			Plan struct {
				Candidates []struct {
					Workload, State string
					Ready           bool
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Extra.Plan.Candidates) != 3 {
		t.Errorf("candidates: %+v", doc.Extra.Plan.Candidates)
	}
	for _, c := range doc.Extra.Plan.Candidates {
		if c.State != "unknown" || c.Ready {
			t.Errorf("%s: state %q, ready %v; want unknown", c.Workload, c.State, c.Ready)
		}
	}
	md, _, code := runArchfit(t, "", append(base, "-o", "markdown")...)
	if code != ExitIncomplete || !strings.Contains(md, "**Incomplete: 3 of 3") || !strings.Contains(md, "| default/Deployment/argocd-redis | unknown |") {
		t.Errorf("markdown, exit %d:\n%s", code, md)
	}
	if _, _, code := runArchfit(t, "", append(base, "--allow-unverified")...); code != ExitOK {
		t.Errorf("--allow-unverified: exit %d", code)
	}
}

func TestUnreadImagesPatch(t *testing.T) {
	file, host := argoCD(t)
	base := []string{"patch", "deployment/argocd-server", "-f", file, "--no-cache", "--arch", "amd64,arm64"}
	out, errOut, code := runArchfit(t, "", append(base, "--format", "kubectl")...)
	if code != ExitIncomplete {
		t.Errorf("exit %d, want %d", code, ExitIncomplete)
	}
	if out != "" {
		t.Errorf("a patch that rests on an unread image was printed:\n%s", out)
	}
	if !strings.Contains(errOut, "argocd-server ("+host+"/argoproj/argocd:latest: unreachable)") || !strings.Contains(errOut, "--allow-unverified") {
		t.Errorf("stderr does not name the unread image, why, and the flag:\n%s", errOut)
	}

	out, _, code = runArchfit(t, "", append(base, "--format", "kubectl", "--allow-unverified")...)
	if code != ExitOK {
		t.Errorf("--allow-unverified: exit %d", code)
	}
	want := "# archfit: the allowed architectures (amd64, arm64) rest on unread images (--allow-unverified):\n# unverified: " + host + "/argoproj/argocd:latest (unreachable)\nkubectl patch deployment.apps argocd-server "
	if !strings.HasPrefix(out, want) {
		t.Errorf("want the patch to start with\n%s\ngot\n%s", want, out)
	}
	// JSON has no comments: the patch stays JSON, the warning is on stderr.
	out, errOut, code = runArchfit(t, "", append(base, "--format", "json-patch", "--allow-unverified")...)
	var ops []map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &ops) != nil || len(ops) == 0 {
		t.Errorf("json-patch, exit %d:\n%s", code, out)
	}
	if !strings.Contains(errOut, "warning: --allow-unverified") {
		t.Errorf("stderr:\n%s", errOut)
	}
	// A JSON manifest edited by the yaml format stays JSON: no comment.
	js := filepath.Join(t.TempDir(), "web.json")
	manifest := `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
 "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
  "spec": {"containers": [{"name": "web", "image": "` + host + `/web:1"}]}}}}`
	if err := os.WriteFile(js, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code = runArchfit(t, "", "patch", "deployment/web", "-f", js, "--no-cache", "--arch", "amd64", "--format", "yaml", "--allow-unverified")
	var obj map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &obj) != nil {
		t.Errorf("yaml format of a JSON file, exit %d:\n%s", code, out)
	}
}

// TestUnknownIsNeitherReadyNorBlocked: with real registries, a workload
// whose read images run on arm64 but one image is refused (401) is
// unknown; one whose read image runs only on amd64 is blocked whatever the
// unread one holds; one with every image read and multi-arch is ready.
func TestUnknownIsNeitherReadyNorBlocked(t *testing.T) {
	_, push := testRegistry(t)
	amd := push("amd:1", testimage.App("linux/amd64", "amd64"))
	multi := push("multi:1", testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	locked := hostiletest.New(t, hostiletest.WithBasicAuth("ci", "secret"))
	private := locked.Host(hostiletest.Registry) + "/private:1"

	manifests := appDeployment("blocked", amd, private) + "---\n" + appDeployment("unknown", multi, private) + "---\n" + appDeployment("ready", multi)
	file := filepath.Join(t.TempDir(), "apps.yaml")
	if err := os.WriteFile(file, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runArchfit(t, "", "audit", "-f", file, "--no-cache", "-o", "json")
	// The amd64-only image is a single-arch-at-risk warning, not an error:
	// the run is incomplete.
	if code != ExitIncomplete {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var doc struct {
		Incomplete struct {
			UnreadImages, Images int
			ByReason             []struct{ Reason, Advice string }
		}
		Extra struct {
			Readiness struct{ ReadyWorkloads, BlockedWorkloads, UnknownWorkloads int }
			Blockers  []struct{ Image string }
			Workloads []struct {
				Workload struct{ Name string }
				State    string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if inc := doc.Incomplete; inc.UnreadImages != 1 || inc.Images != 3 || len(inc.ByReason) != 1 || inc.ByReason[0].Reason != "auth" ||
		!strings.Contains(inc.ByReason[0].Advice, "--registry-config") {
		t.Errorf("incomplete: %+v", inc)
	}
	states := map[string]string{}
	for _, w := range doc.Extra.Workloads {
		states[w.Workload.Name] = w.State
	}
	if states["blocked"] != "blocked" || states["unknown"] != "unknown" || states["ready"] != "ready" {
		t.Errorf("states: %v", states)
	}
	if r := doc.Extra.Readiness; r.ReadyWorkloads != 1 || r.BlockedWorkloads != 1 || r.UnknownWorkloads != 1 {
		t.Errorf("readiness: %+v", r)
	}
	if len(doc.Extra.Blockers) != 1 || doc.Extra.Blockers[0].Image != amd {
		t.Errorf("blockers: %+v (only the image read and amd64-only blocks)", doc.Extra.Blockers)
	}

	out, _, _ = runArchfit(t, "", "plan", "-f", file, "--no-cache")
	for _, want := range []string{
		"Deployment/blocked: does not run on arm64 (see blockers)",
		"Deployment/unknown: unknown: " + private + " (auth) could not be read",
		"1. " + amd + " (runs on amd64",
		// No interim pin that ignores the unread image.
		"# default/Deployment/blocked: no pin until archfit can read the image of c1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "kubectl patch deployment.apps blocked") {
		t.Errorf("plan pins a workload on an allow-list that ignores its unread image:\n%s", out)
	}

	// A waiver accepts the unread image deliberately: it no longer makes
	// the run incomplete (the header still says it could not be read).
	cfg := filepath.Join(t.TempDir(), "archfit.yaml")
	waiver := "waivers:\n- code: image-uninspectable\n  image: " + private + "\n  reason: vendor image, checked by hand\n"
	if err := os.WriteFile(cfg, []byte(waiver), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runArchfit(t, "", "audit", "-f", file, "--no-cache", "--config", cfg)
	if code != ExitOK || !strings.HasPrefix(out, "INCOMPLETE: 1 of 3 image(s) could not be read") {
		t.Errorf("waived: exit %d; stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
}

// appDeployment is a minimal Deployment running the images.
func appDeployment(name string, images ...string) string {
	var cs strings.Builder
	for i, img := range images {
		cs.WriteString("      - name: c" + string(rune('0'+i)) + "\n        image: " + img + "\n")
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
` + cs.String()
}
