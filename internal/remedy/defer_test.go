package remedy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
)

// TestDeferPatchSameRemedy: ForWorkload with DeferPatch, then FinishPatch,
// gives exactly the remedy ForWorkload gives without it, and before
// FinishPatch already the same allowed architectures and conflict (what
// an audit judges every workload by). The workloads are every input of
// the patch fixtures (conflicting terms and selectors, owned objects,
// Rollouts redirected to their workloadRef) and of the audit tests, with
// images made up to run on amd64, arm64 or both.
func TestDeferPatchSameRemedy(t *testing.T) {
	dir := t.TempDir()
	var files []string
	fixtures, _ := filepath.Glob("testdata/patch/*.txtar")
	for _, f := range fixtures {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, in, ok := bytes.Cut(b, []byte("-- input.yaml --\n"))
		if !ok {
			continue
		}
		if i := bytes.Index(in, []byte("\n-- ")); i >= 0 {
			in = in[:i+1]
		}
		p := filepath.Join(dir, strings.TrimSuffix(filepath.Base(f), ".txtar")+".yaml")
		if err := os.WriteFile(p, in, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	// A Rollout that takes its template from a Deployment (a note when
	// the patch is redirected) and is managed by an operator's resource
	// archfit does not read (a note after it).
	managed := filepath.Join(dir, "managed-rollout.yaml")
	if err := os.WriteFile(managed, []byte(managedRollout), 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, managed)
	audits, _ := filepath.Glob("../audit/testdata/*.yaml")
	files = append(files, audits...)
	files = append(files, "../../examples/cluster/cluster.yaml")
	if len(files) < 20 {
		t.Fatalf("only %d inputs found", len(files))
	}
	compared, patched, conflicts, notes := 0, 0, 0, 0
	for _, f := range files {
		snap, _, err := cluster.LoadFiles(context.Background(), []string{f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, archs := range [][]string{{"amd64"}, {"arm64"}, {"amd64", "arm64"}} {
			var reqs []image.Request
			var reps []*image.Report
			for _, w := range snap.Workloads {
				for _, c := range w.Containers {
					reqs = append(reqs, image.Request{Ref: c.Image})
					reps = append(reps, &image.Report{Reference: c.Image, Architectures: archs})
				}
			}
			images := image.NewSet(reqs, reps)
			for _, assume := range [][]string{nil, {"amd64", "arm64"}, {"arm64"}} {
				for _, w := range snap.Workloads {
					in := Input{Workload: w, Nodes: snap.Nodes, Architectures: assume, Images: images, Lookup: snap.Object}
					want := ForWorkload(in)
					in.DeferPatch = true
					got := ForWorkload(in)
					if !jsonEqual(t, got.AllowedArchitectures, want.AllowedArchitectures) || !jsonEqual(t, got.Conflict, want.Conflict) {
						t.Errorf("%s %s archs %v assume %v: deferred judgement %v/%v, want %v/%v", f, w.Ref, archs, assume,
							got.AllowedArchitectures, got.Conflict, want.AllowedArchitectures, want.Conflict)
					}
					got.FinishPatch()
					got.FinishPatch() // a second call changes nothing
					if !jsonEqual(t, got, want) {
						g, _ := json.MarshalIndent(got, "", " ")
						wt, _ := json.MarshalIndent(want, "", " ")
						t.Errorf("%s %s archs %v assume %v: deferred remedy differs\n%s\nwant\n%s", f, w.Ref, archs, assume, g, wt)
					}
					compared++
					if want.Patch != nil {
						patched++
					}
					if want.Conflict != nil {
						conflicts++
					}
					if len(want.Notes) > 1 && want.Patch != nil {
						notes++
					}
				}
			}
		}
	}
	// The inputs must exercise what the deferral skips and keeps.
	if patched == 0 || conflicts == 0 || notes == 0 {
		t.Fatalf("%d remedies compared, %d with a patch, %d with a conflict, %d with notes around a patch: the inputs test nothing",
			compared, patched, conflicts, notes)
	}
	t.Logf("%d remedies compared, %d with a patch, %d with a conflict, %d with notes around a patch", compared, patched, conflicts, notes)
}

const managedRollout = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: front
  namespace: shop
  ownerReferences:
  - apiVersion: example.com/v1
    kind: Storefront
    name: shop
    uid: 1b7c1f0e-0000-4000-8000-000000000001
    controller: true
spec:
  replicas: 3
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: front-template
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: front-template
  namespace: shop
spec:
  replicas: 0
  selector:
    matchLabels: {app: front}
  template:
    metadata:
      labels: {app: front}
    spec:
      containers:
      - name: app
        image: registry.example/front:1.0
`

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
