package apply

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/remedy"
)

func object(labels, annotations map[string]string, managers ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apps/v1")
	u.SetKind("Deployment")
	u.SetNamespace("shop")
	u.SetName("api")
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	var mfs []metav1.ManagedFieldsEntry
	for _, m := range managers {
		mfs = append(mfs, metav1.ManagedFieldsEntry{Manager: m, Operation: metav1.ManagedFieldsOperationApply})
	}
	u.SetManagedFields(mfs)
	return u
}

type lbl = map[string]string

func TestOwners(t *testing.T) {
	type want struct {
		Tool      Tool
		Name      string
		Namespace string
	}
	for _, tc := range []struct {
		name        string
		labels, ann lbl
		managers    []string
		want        []want
	}{
		{name: "plain kubectl", labels: lbl{"app": "api"}, managers: []string{"kubectl-client-side-apply", "kube-controller-manager"}},
		{name: "helm label and annotations",
			labels: lbl{"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "shop"},
			ann:    lbl{"meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": "prod"},
			want:   []want{{Helm, "shop", "prod"}}},
		{name: "helm annotation only", ann: lbl{"meta.helm.sh/release-name": "shop"}, want: []want{{Helm, "shop", ""}}},
		{name: "helm field manager only", managers: []string{"helm"}, want: []want{{Helm, "", ""}}},
		{name: "managed-by another tool", labels: lbl{"app.kubernetes.io/managed-by": "kustomize"}},
		// Helm charts set app.kubernetes.io/instance too: alone it is not Argo CD.
		{name: "instance label alone", labels: lbl{"app.kubernetes.io/instance": "shop"}},
		{name: "argo tracking annotation",
			ann:  lbl{"argocd.argoproj.io/tracking-id": "shop-prod:apps/Deployment:shop/api"},
			want: []want{{ArgoCD, "shop-prod", ""}}},
		{name: "argo instance label with tracking annotation",
			labels: lbl{"app.kubernetes.io/instance": "shop-prod"},
			ann:    lbl{"argocd.argoproj.io/tracking-id": "shop-prod:apps/Deployment:shop/api"},
			want:   []want{{ArgoCD, "shop-prod", ""}}},
		{name: "argo instance label with argo field manager",
			labels: lbl{"app.kubernetes.io/instance": "shop-prod"}, managers: []string{"argocd-controller"},
			want: []want{{ArgoCD, "shop-prod", ""}}},
		{name: "argo custom instance label", labels: lbl{"argocd.argoproj.io/instance": "shop"}, want: []want{{ArgoCD, "shop", ""}}},
		{name: "flux kustomization",
			labels: lbl{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
			want:   []want{{FluxKustomize, "apps", "flux-system"}}},
		{name: "flux kustomize-controller manager", managers: []string{"kustomize-controller"}, want: []want{{FluxKustomize, "", ""}}},
		{name: "flux helmrelease with helm labels",
			labels: lbl{"helm.toolkit.fluxcd.io/name": "shop", "helm.toolkit.fluxcd.io/namespace": "prod", "app.kubernetes.io/managed-by": "Helm"},
			ann:    lbl{"meta.helm.sh/release-name": "prod-shop"}, managers: []string{"helm-controller"},
			want: []want{{FluxHelm, "shop", "prod"}, {Helm, "prod-shop", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []want
			for _, o := range Owners(object(tc.labels, tc.ann, tc.managers...)) {
				if len(o.Evidence) == 0 {
					t.Errorf("%s without evidence", o.Tool)
				}
				if o.Advice() == "" {
					t.Errorf("%s without advice", o.Tool)
				}
				got = append(got, want{o.Tool, o.Name, o.Namespace})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOwnerAdvice(t *testing.T) {
	for tool, want := range map[Tool]string{
		Helm:          "values of Helm release prod/shop",
		FluxHelm:      "spec.values of Flux HelmRelease prod/shop",
		ArgoCD:        "Git repository Argo CD application shop",
		FluxKustomize: "Git repository of Flux Kustomization prod/shop",
	} {
		if got := (Owner{Tool: tool, Name: "shop", Namespace: "prod"}).Advice(); !strings.Contains(got, want) {
			t.Errorf("%s: advice %q lacks %q", tool, got, want)
		}
	}
}

func patched(t *testing.T, src string, allowed ...string) (*unstructured.Unstructured, *remedy.Result) {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(src), &u.Object); err != nil {
		t.Fatal(err)
	}
	res, err := remedy.Patch(u, allowed)
	if err != nil {
		t.Fatal(err)
	}
	return u, res
}

const helmDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  labels: {app.kubernetes.io/managed-by: Helm}
spec:
  template:
    spec:
      tolerations:
      - {key: dedicated, operator: Exists}
      containers:
      - {name: app, image: app:1}
`

func TestDiff(t *testing.T) {
	before, res := patched(t, helmDeployment, "amd64")
	d, err := Diff(before, res.Patched(), res.PodSpecPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- deployment/api /spec/template/spec (live)", "+affinity:", "+          - amd64", " tolerations:"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if d, _ := Diff(before, before, res.PodSpecPath); d != "" {
		t.Errorf("diff of equal objects: %q", d)
	}
}

func TestCheck(t *testing.T) {
	obj, res := patched(t, helmDeployment, "amd64")
	err := Check(obj, res, false)
	var me *ManagedError
	if !errors.As(err, &me) || !errors.Is(err, ErrManaged) || me.Owners[0].Tool != Helm {
		t.Fatalf("Check of a Helm deployment: %v", err)
	}
	if err := Check(obj, res, true); err != nil {
		t.Errorf("Check with force: %v", err)
	}

	pod, res := patched(t, `apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  nodeName: node-1
  containers:
  - {name: app, image: app:1}
status: {phase: Running}
`, "amd64")
	if err := Check(pod, res, true); !errors.Is(err, ErrRecreate) {
		t.Errorf("Check of a Pod: %v, want ErrRecreate even with force", err)
	}
	m := Manifest(res.Patched())
	if _, ok := m.Object["status"]; ok {
		t.Error("manifest keeps status")
	}
	if n, _, _ := unstructured.NestedString(m.Object, "spec", "nodeName"); n != "" {
		t.Error("manifest keeps spec.nodeName, which would bypass the new affinity")
	}
	if _, ok, _ := unstructured.NestedMap(m.Object, "spec", "affinity"); !ok {
		t.Error("manifest lacks the affinity")
	}

	job, res := patched(t, `apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: app, image: app:1}
`, "amd64")
	if err := Check(job, res, true); !errors.Is(err, ErrImmutable) {
		t.Errorf("Check of a Job: %v, want ErrImmutable", err)
	}

	// Suspended and never started: scheduling directives may change.
	job, res = patched(t, `apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: shop}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: app, image: app:1}
`, "amd64")
	if err := Check(job, res, true); err != nil {
		t.Errorf("Check of a suspended, never started Job: %v, want nil", err)
	}
}
