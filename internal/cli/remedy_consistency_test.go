package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/testimage"
)

// oneRemedy is what every command must agree on for a workload.
type oneRemedy struct {
	Allowed     []string          `json:"allowedArchitectures"`
	Ops         []json.RawMessage `json:"jsonPatch"`
	Tolerations []json.RawMessage `json:"addedTolerations"`
}

// TestOneRemedyPerWorkload feeds one dump to diagnose, audit, plan and
// patch and requires one identical remedy per workload (allowed
// architectures, JSON patch, added tolerations). The cluster has a GPU
// pool of amd64 nodes (never tolerated), GKE's arm64 taint (tolerated when
// arm64 is allowed), a cordoned Arm node; the workloads include one that
// tolerates everything and one whose init container decides.
func TestOneRemedyPerWorkload(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	testLayout(t, images, map[string]v1.ImageIndex{
		"example.com/amd:1":   testimage.Index(testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64")),
		"example.com/arm:1":   testimage.Index(testimage.For(testimage.App("linux/arm64", "arm64"), "linux/arm64")),
		"example.com/multi:1": testimage.MultiArch("linux/amd64", "linux/arm64/v8"),
	})
	deploy := func(name, extra string, containers ...string) string {
		s := fmt.Sprintf("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s, namespace: shop}\nspec:\n  selector: {matchLabels: {app: %s}}\n  template:\n    metadata: {labels: {app: %s}}\n    spec:\n%s", name, name, name, extra)
		return s + strings.Join(containers, "")
	}
	main := func(img string) string { return "      containers:\n      - {name: app, image: " + img + "}\n" }
	initC := func(img string) string { return "      initContainers:\n      - {name: init, image: " + img + "}\n" }
	cluster, err := os.ReadFile("testdata/remedies/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dump := string(cluster) + strings.Join([]string{
		deploy("amd-only", "", main("example.com/amd:1")),
		deploy("arm-only", "", main("example.com/arm:1")),
		deploy("init-decides", "", initC("example.com/amd:1"), main("example.com/multi:1")),
		deploy("tolerates-all", "      tolerations: [{operator: Exists}]\n", main("example.com/amd:1")),
		deploy("gpu-already", "      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n", main("example.com/arm:1")),
	}, "")
	// Two pods that cannot pull, so that diagnose inspects both images (it reads
	// only the images of failing pods) and judges the rest as at risk.
	pod := func(workload, node string) string {
		return fmt.Sprintf(`---
apiVersion: v1
kind: Pod
metadata:
  name: %[1]s-5d9c7b8f9-x1
  namespace: shop
  labels: {app: %[1]s, pod-template-hash: 5d9c7b8f9}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: %[1]s-5d9c7b8f9, uid: u-%[1]s, controller: true}]
spec:
  nodeName: %[2]s
  containers: [{name: app, image: %[3]s}]
status:
  phase: Running
  containerStatuses:
  - name: app
    image: %[3]s
    ready: false
    state:
      waiting:
        reason: ErrImagePull
        message: 'rpc error: code = NotFound desc = failed to pull and unpack image "%[3]s": get image config descriptor: no match for platform in manifest sha256:0000000000000000000000000000000000000000000000000000000000000000: not found'
`, workload, node, map[string]string{"arm-only": "example.com/arm:1", "tolerates-all": "example.com/amd:1"}[workload])
	}
	dump += pod("arm-only", "general-1") + pod("tolerates-all", "arm-1")
	dumpFile := filepath.Join(dir, "dump.yaml")
	if err := os.WriteFile(dumpFile, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"-f", dumpFile, "--oci-layout", images, "--no-cache"}

	byCommand := map[string]map[string]oneRemedy{}
	for _, cmd := range []string{"diagnose", "audit", "plan"} {
		args := append([]string{cmd, "-o", "json"}, common...)
		if cmd != "plan" {
			args = append(args, "--fail-on", "never")
		}
		out, errOut, code := runArchfit(t, "", args...)
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", cmd, code, errOut)
		}
		var doc struct {
			Remedies []struct {
				Workload             struct{ Name string }
				AllowedArchitectures []string `json:"allowedArchitectures"`
				Patch                *oneRemedy
			}
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		byCommand[cmd] = map[string]oneRemedy{}
		for _, r := range doc.Remedies {
			one := oneRemedy{Allowed: r.AllowedArchitectures}
			if r.Patch != nil {
				one.Ops, one.Tolerations = r.Patch.Ops, r.Patch.Tolerations
			}
			byCommand[cmd][r.Workload.Name] = one
		}
	}
	for _, name := range []string{"amd-only", "arm-only", "init-decides", "tolerates-all", "gpu-already"} {
		out, errOut, code := runArchfit(t, "", append([]string{"patch", "deployment/" + name, "-n", "shop", "--format", "json-patch"}, common...)...)
		if code != ExitOK {
			t.Fatalf("patch %s: exit %d: %s", name, code, errOut)
		}
		one := oneRemedy{}
		if err := json.Unmarshal([]byte(out), &one.Ops); err != nil {
			t.Fatalf("patch %s: %v\n%s", name, err, out)
		}
		for _, l := range strings.Split(errOut, "\n") {
			if _, archs, ok := strings.Cut(l, ": allowed architectures "); ok {
				one.Allowed = strings.Split(archs, ", ")
			}
		}
		for _, op := range one.Ops {
			if strings.Contains(string(op), `/tolerations`) {
				one.Tolerations = append(one.Tolerations, op)
			}
		}
		byCommand["patch"] = mergeOne(byCommand["patch"], name, one)
	}

	// What the remedy must be, whoever computes it.
	// atRisk: a pool it may land on cannot run it, so diagnose, audit and
	// plan all give it a remedy; the others (kept off the Arm pool by GKE's
	// taint) get one only when asked with patch.
	want := map[string]struct {
		allowed   string
		tolerates []string // keys of tolerations the patch adds
		atRisk    bool
	}{
		"amd-only":      {"amd64", nil, false},                           // never the GPU taint of one amd64 pool
		"arm-only":      {"arm64", []string{"kubernetes.io/arch"}, true}, // GKE's Arm taint, though one Arm node is cordoned
		"init-decides":  {"amd64", nil, false},
		"tolerates-all": {"amd64", nil, true},
		"gpu-already":   {"arm64", []string{"kubernetes.io/arch"}, true},
	}
	for name, w := range want {
		p := byCommand["patch"][name]
		if got := strings.Join(p.Allowed, ","); got != w.allowed {
			t.Errorf("patch %s: allowed %s, want %s", name, got, w.allowed)
		}
		var keys []string
		for _, op := range p.Ops {
			var o struct {
				Path  string
				Value json.RawMessage
			}
			_ = json.Unmarshal(op, &o)
			if strings.Contains(o.Path, "tolerations") {
				for _, k := range []string{"kubernetes.io/arch", "nvidia.com/gpu", "node.kubernetes.io/unschedulable"} {
					if strings.Contains(string(o.Value), `"`+k+`"`) {
						keys = append(keys, k)
					}
				}
			}
		}
		if diff := cmp.Diff(w.tolerates, keys); diff != "" {
			t.Errorf("patch %s: added tolerations (-want +got):\n%s", name, diff)
		}
		// Every command that gives the workload a remedy gives this one.
		seen := 0
		for _, cmd := range []string{"diagnose", "audit", "plan"} {
			r, ok := byCommand[cmd][name]
			if !ok {
				continue
			}
			seen++
			if diff := cmp.Diff(normalize(p), normalize(r)); diff != "" {
				t.Errorf("%s: %s's remedy differs from patch's (-patch +%s):\n%s", name, cmd, cmd, diff)
			}
		}
		if wantSeen := map[bool]int{true: 3, false: 0}[w.atRisk]; seen != wantSeen {
			t.Errorf("%s: %d of diagnose, audit, plan gave a remedy, want %d", name, seen, wantSeen)
		}
	}
}

func mergeOne(m map[string]oneRemedy, k string, v oneRemedy) map[string]oneRemedy {
	if m == nil {
		m = map[string]oneRemedy{}
	}
	m[k] = v
	return m
}

// normalize compares ops by their JSON value, whatever the spacing.
func normalize(r oneRemedy) []string {
	out := []string{strings.Join(r.Allowed, ",")}
	for _, op := range r.Ops {
		var v any
		_ = json.Unmarshal(op, &v)
		b, _ := json.Marshal(v)
		out = append(out, string(b))
	}
	return out
}
