package cluster

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// DefaultNamespace puts namespace-less objects in the namespace, as
// kubectl apply -n does: a Deployment, its Pod (linked to it through the
// ReplicaSet), a Rollout and its workloadRef; an object naming its
// namespace keeps it, a node gets none, and a namespace-less document that
// is then the same object as a later one is read once (the later wins).
func TestDefaultNamespace(t *testing.T) {
	files := map[string]string{
		"app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: a, image: a:1}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: api-1
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: api, uid: u1, controller: true}]
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: a, image: a:1}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: api-1-x
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: api-1, uid: u2, controller: true}]
spec: {containers: [{name: a, image: a:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: data}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: d, image: d:1}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ro}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: api}
---
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels: {kubernetes.io/arch: arm64, kubernetes.io/os: linux}
`,
		// The same Deployment with its namespace spelled out, read later.
		"z-again.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: a, image: a:2}]}
`,
	}
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	workloads := func(s *Snapshot) []string {
		var out []string
		for _, w := range s.Workloads {
			ns := ""
			if w.Original != nil {
				ns = w.Original.GetNamespace()
			}
			out = append(out, w.Ref.String()+" (object in "+ns+", image "+w.Template.Spec.Containers[0].Image+", pods "+strconv.Itoa(len(w.Pods))+")")
		}
		sort.Strings(out)
		return out
	}

	s, _, err := LoadFiles(context.Background(), []string{dir}, nil, DefaultNamespace("shop"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"data/Deployment/db (object in data, image d:1, pods 0)",
		"shop/Deployment/api (object in shop, image a:2, pods 1)",
		"shop/Rollout/ro (object in shop, image a:2, pods 0)",
	}
	if diff := cmp.Diff(want, workloads(s)); diff != "" {
		t.Errorf("-n shop (-want +got):\n%s", diff)
	}
	if len(s.Nodes) != 1 || s.Nodes[0].Object.Namespace != "" {
		t.Errorf("nodes: %+v", s.Nodes)
	}
	if len(s.Pods) != 1 || s.Pods[0].Namespace != "shop" || s.Pods[0].Workload == nil || s.Pods[0].Workload.Name != "api" {
		t.Errorf("the pod is not shop's, under its Deployment: %+v", s.Pods)
	}

	// Without the option, namespace-less objects stay without one.
	s, _, err = LoadFiles(context.Background(), []string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(workloads(s), "\n")
	if !strings.Contains(got, "Deployment/api (object in , image a:1, pods 1)") || !strings.Contains(got, "shop/Deployment/api (object in shop, image a:2, pods 0)") {
		t.Errorf("without DefaultNamespace:\n%s", got)
	}
}
