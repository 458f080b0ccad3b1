package plan

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/remedy"
	"github.com/archfit/archfit/internal/verify"
)

func audited(t *testing.T) *audit.Result {
	t.Helper()
	res, err := image.NewResolver(image.WithOCILayout("../../examples/images"),
		image.WithVerifier(func(ctx context.Context, img v1.Image, arch string, o *image.Override) (*image.Entrypoint, error) {
			return verify.Entrypoint(ctx, img, verify.WithArch(arch))
		}))
	if err != nil {
		t.Fatal(err)
	}
	refs := res.LayoutReferences()
	reqs := make([]image.Request, len(refs))
	for i, r := range refs {
		reqs[i] = image.Request{Ref: r, Verify: true}
	}
	reps := image.NewSet(reqs, res.InspectAll(context.Background(), reqs))
	snap, docErrs, err := cluster.LoadFiles(context.Background(), []string{"testdata/fleet.yaml"}, nil)
	if err != nil || len(docErrs) > 0 {
		t.Fatal(err, docErrs)
	}
	return audit.Run(snap, reps, audit.Options{Verify: true})
}

func TestBuild(t *testing.T) {
	r := audited(t)
	p := Build(r, Options{PreferArm: true, Cluster: "prod"})
	var names []string
	for _, ph := range p.Phases {
		names = append(names, ph.Name)
		if len(ph.Gate) == 0 || len(ph.Rollback) == 0 {
			t.Errorf("phase %q lacks a gate or a rollback", ph.Name)
		}
	}
	want := []string{"Taint the Arm pools", "Fix the blockers", "Let proven multi-arch workloads onto Arm", "Watch", "Widen"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	text := dump(p.Phases[0])
	for _, s := range []string{
		"kubectl taint nodes -l karpenter.sh/nodepool=graviton,kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule",
		"kubectl taint nodes -l eks.amazonaws.com/nodegroup=arm-ng,kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule",
		"aws eks update-nodegroup-config --cluster-name prod --nodegroup-name arm-ng",
		"addOrUpdateTaints=[{key=kubernetes.io/arch,value=arm64,effect=NO_SCHEDULE}]",
		"removeTaints=",
		"taints:\n      - key: kubernetes.io/arch",
		"kubectl patch daemonset.apps agent -n kube-system", // the multi-arch DaemonSet tolerates first
	} {
		if !strings.Contains(text, s) {
			t.Errorf("phase 1 lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "nodegroup=general") {
		t.Error("phase 1 taints the amd64 node group")
	}
	if !strings.Contains(text, "NodePool mixed launches both amd64 and arm64 nodes") || strings.Contains(text, "name: mixed") {
		t.Errorf("a mixed-arch NodePool must not get a template taint:\n%s", text)
	}
	if !strings.Contains(text, "GKE node pool arm-gke") || strings.Contains(text, "gke-nodepool=arm-gke") {
		t.Error("a GKE pool gets a note, never a hand-made taint or its removal")
	}
	if !strings.Contains(dump(p.Phases[1]), "example.com/shop/worker:2.3") {
		t.Error("phase 2 does not name the blocker")
	}
	ready := map[string]bool{}
	for _, c := range p.Candidates {
		ready[c.Workload] = c.Ready
	}
	if diff := cmp.Diff(map[string]bool{"shop/Deployment/catalog": true, "kube-system/DaemonSet/agent": true, "shop/Deployment/api": false}, ready); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	p5 := dump(p.Phases[len(p.Phases)-1])
	if !strings.Contains(p5, "kubectl taint nodes -l karpenter.sh/nodepool=graviton,kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule-") {
		t.Errorf("the last phase does not remove phase 1's taint pool by pool:\n%s", p5)
	}
	if strings.Contains(p5, "-l kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule-") || !strings.Contains(p5, "GKE node pools arm-gke keep") {
		t.Errorf("the last phase must not remove GKE's own taint:\n%s", p5)
	}
	p3 := dump(p.Phases[2])
	if !strings.Contains(p3, "deployment.apps catalog") || strings.Contains(p3, "deployment.apps api ") {
		t.Errorf("phase 3 should patch catalog only:\n%s", p3)
	}
}

func dump(ph Phase) string {
	var b strings.Builder
	for _, ss := range [][]Step{ph.Steps, ph.Gate, ph.Rollback} {
		for _, s := range ss {
			b.WriteString(s.Title + "\n" + s.Text + "\n")
		}
	}
	b.WriteString(strings.Join(ph.Notes, "\n"))
	return b.String()
}

// The toleration patch applies to the real object, keeps what was there,
// and its rollback restores the object exactly.
func TestTolerationPatchRoundTrip(t *testing.T) {
	r := audited(t)
	for _, w := range r.Workloads {
		src := w.Source()
		for _, prefer := range []bool{false, true} {
			orig, err := json.Marshal(src.Original.Object)
			if err != nil {
				t.Fatal(err)
			}
			apply := func(doc []byte, ops []remedy.Operation) []byte {
				b, _ := json.Marshal(ops)
				p, err := jsonpatch.DecodePatch(b)
				if err != nil {
					t.Fatal(err)
				}
				out, err := p.Apply(doc)
				if err != nil {
					t.Fatalf("%s: %v\n%s", w.Ref, err, b)
				}
				return out
			}
			patched := apply(orig, TolerationOps(src, prefer))
			var obj map[string]any
			_ = json.Unmarshal(patched, &obj)
			s := string(patched)
			if !strings.Contains(s, `"key":"kubernetes.io/arch","operator":"Equal","value":"arm64"`) {
				t.Errorf("%s: no toleration in %s", w.Ref, s)
			}
			if src.Name == "catalog" && (!strings.Contains(s, `"dedicated"`) || !strings.Contains(s, "topology.kubernetes.io/zone")) {
				t.Errorf("%s: existing tolerations or preferences lost: %s", w.Ref, s)
			}
			if prefer != strings.Contains(s, `"values":["arm64"]`) {
				t.Errorf("%s prefer=%v: %s", w.Ref, prefer, s)
			}
			back := apply(patched, rollbackOps(src, prefer))
			if ok := jsonpatch.Equal(orig, back); !ok {
				t.Errorf("%s prefer=%v: rollback does not restore the object:\n%s\n%s", w.Ref, prefer, orig, back)
			}
		}
	}
}
