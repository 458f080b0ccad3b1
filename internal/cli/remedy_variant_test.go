package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/testimage"
)

// TestRemedyFollowsVariantPulls (issue 12, point 5): an index whose only
// amd64 entry is amd64/v3, or whose only arm64 entry is arm64/v8.2, is not
// pulled by a containerd node of that architecture (linux/amd64 nodes ask
// for v1, linux/arm64 nodes for v8: neither matches the newer variant), so
// the allowed architectures leave that architecture out, although the
// entry list names it. The entries' binaries are genuine: only the variant
// decides.
func TestRemedyFollowsVariantPulls(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	testLayout(t, images, map[string]v1.ImageIndex{
		"example.com/amdv3:1": testimage.Index(
			testimage.For(testimage.App("linux/amd64/v3", "amd64"), "linux/amd64/v3"),
			testimage.For(testimage.App("linux/arm64/v8", "arm64"), "linux/arm64/v8")),
		"example.com/armv82:1": testimage.Index(
			testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64"),
			testimage.For(testimage.App("linux/arm64/v8.2", "arm64"), "linux/arm64/v8.2")),
		"example.com/both:1": testimage.MultiArch("linux/amd64", "linux/arm64/v8"),
	})
	nodes := `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: amd-1, labels: {kubernetes.io/arch: amd64, kubernetes.io/os: linux}}
  status: {nodeInfo: {architecture: amd64, operatingSystem: linux, containerRuntimeVersion: "containerd://2.1.4"}}
- apiVersion: v1
  kind: Node
  metadata: {name: arm-1, labels: {kubernetes.io/arch: arm64, kubernetes.io/os: linux}}
  status: {nodeInfo: {architecture: arm64, operatingSystem: linux, containerRuntimeVersion: "containerd://2.1.4"}}
`
	for _, name := range []string{"amdv3", "armv82", "both"} {
		nodes += fmt.Sprintf("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %[1]s, namespace: shop}\nspec:\n  selector: {matchLabels: {app: %[1]s}}\n  template:\n    metadata: {labels: {app: %[1]s}}\n    spec:\n      containers: [{name: app, image: example.com/%[1]s:1}]\n", name)
	}
	dump := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(dump, []byte(nodes), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		workload string
		want     string
	}{
		{"amdv3", "arm64"},  // the amd64 node would fail to pull amd64/v3
		{"armv82", "amd64"}, // the arm64 (v8) node would fail to pull arm64/v8.2
		{"both", "amd64,arm64"},
	} {
		out, errOut, code := runArchfit(t, "", "patch", "deployment/"+tc.workload, "-n", "shop", "-f", dump,
			"--oci-layout", images, "--no-cache", "-o", "json")
		if code != ExitOK {
			t.Fatalf("%s: exit %d\n%s", tc.workload, code, errOut)
		}
		var doc struct {
			Remedies []struct {
				Allowed []string `json:"allowedArchitectures"`
			} `json:"remedies"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Remedies) != 1 {
			t.Fatalf("%s: %v\n%s", tc.workload, err, out)
		}
		if got := strings.Join(doc.Remedies[0].Allowed, ","); got != tc.want {
			t.Errorf("%s: allowed %s, want %s", tc.workload, got, tc.want)
		}
	}
}
