package apply

import (
	"encoding/json"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4" // the library kube-apiserver applies JSON patches with

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Ownership is read from labels, annotations and ownerReferences, which
// change without a new metadata.generation: the patch must test them too,
// so that a tool taking the object over between the check and the patch
// makes the patch fail instead of landing.
func TestGuardedTestsOwnership(t *testing.T) {
	before, res := patched(t, plainDeployment, "amd64")
	before.SetGeneration(3)
	tests := []struct {
		name   string
		change func(u *unstructured.Unstructured)
		fails  bool
	}{
		{"unchanged", func(*unstructured.Unstructured) {}, false},
		{"an unrelated label", func(u *unstructured.Unstructured) { setLabel(u, "team", "shop") }, false},
		{"Helm adopts it", func(u *unstructured.Unstructured) { setLabel(u, labelManagedBy, "Helm") }, true},
		{"a Helm release annotation", func(u *unstructured.Unstructured) { setAnnotation(u, annotationHelmRelease, "shop") }, true},
		{"an Argo CD tracking id", func(u *unstructured.Unstructured) {
			setAnnotation(u, annotationArgoTracking, "app:apps/Deployment:shop/api")
		}, true},
		{"a Flux label", func(u *unstructured.Unstructured) { setLabel(u, labelFluxKustomizeName, "apps") }, true},
		{"managed-by changes", func(u *unstructured.Unstructured) { setLabel(u, labelManagedBy, "Helm") }, true},
		{"an operator's ownerReference", func(u *unstructured.Unstructured) {
			u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "App", Name: "api", UID: "u1"}})
		}, true},
		{"a spec change", func(u *unstructured.Unstructured) { u.SetGeneration(4) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := guarded(before, res.Ops)
			if err != nil {
				t.Fatal(err)
			}
			p, err := jsonpatch.DecodePatch(ops)
			if err != nil {
				t.Fatal(err)
			}
			now := before.DeepCopy()
			tt.change(now)
			doc, _ := json.Marshal(now.Object)
			_, err = p.Apply(doc)
			if (err != nil) != tt.fails {
				t.Errorf("apply error %v, want failure %v; patch %s", err, tt.fails, ops)
			}
		})
	}
	// An object that has no labels or annotations at all: adding the
	// first ones (Helm's) fails the patch too.
	bare, res := patched(t, plainDeployment, "amd64")
	bare.SetLabels(nil)
	bare.SetAnnotations(nil)
	ops, _ := guarded(bare, res.Ops)
	p, _ := jsonpatch.DecodePatch(ops)
	now := bare.DeepCopy()
	setLabel(now, labelManagedBy, "Helm")
	doc, _ := json.Marshal(now.Object)
	if _, err := p.Apply(doc); err == nil {
		t.Errorf("labels added to a bare object: patch applied; %s", ops)
	}
	doc, _ = json.Marshal(bare.Object)
	if _, err := p.Apply(doc); err != nil {
		t.Errorf("unchanged bare object: %v; %s", err, ops)
	}
}

func setLabel(u *unstructured.Unstructured, k, v string) {
	l := u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[k] = v
	u.SetLabels(l)
}

func setAnnotation(u *unstructured.Unstructured, k, v string) {
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	u.SetAnnotations(a)
}

const plainDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  labels: {app: api}
  annotations: {note: x}
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: app
        image: example.com/api:1
`
