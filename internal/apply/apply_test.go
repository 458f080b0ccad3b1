package apply

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
)

// The patch requests themselves (dry run first, JSON patch, field manager);
// what the API server does with them is checked in live_test.go.
func TestApplierRequests(t *testing.T) {
	obj, res := patched(t, helmDeployment, "amd64")
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(gvr.GroupVersion().WithKind("Deployment"), meta.RESTScopeNamespace)
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: "DeploymentList"}, obj)
	var patches []clienttesting.PatchActionImpl
	client.PrependReactor("patch", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		patches = append(patches, a.(clienttesting.PatchActionImpl))
		return false, nil, nil
	})
	a := &Applier{Client: client, Mapper: mapper}
	ctx := context.Background()

	live, err := a.Get(ctx, res.Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, diff, err := a.DryRun(ctx, live, res); err != nil || !strings.Contains(diff, "+affinity:") {
		t.Fatalf("DryRun: %v, diff %q", err, diff)
	}
	after, err := a.Apply(ctx, live, res)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedSlice(after.Object, "spec", "template", "spec", "affinity", "nodeAffinity",
		"requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"); len(v) != 1 {
		t.Errorf("patched object terms: %v", v)
	}
	if len(patches) != 2 {
		t.Fatalf("%d patch requests, want 2 (dry run, then real)", len(patches))
	}
	for i, wantDryRun := range []bool{true, false} {
		p := patches[i]
		if p.PatchType != types.JSONPatchType {
			t.Errorf("request %d: patch type %s, want a JSON patch", i, p.PatchType)
		}
		if p.PatchOptions.FieldManager != FieldManager {
			t.Errorf("request %d: field manager %q", i, p.PatchOptions.FieldManager)
		}
		if got := len(p.PatchOptions.DryRun) == 1 && p.PatchOptions.DryRun[0] == metav1.DryRunAll; got != wantDryRun {
			t.Errorf("request %d: dryRun %v, want dry run %v", i, p.PatchOptions.DryRun, wantDryRun)
		}
	}
}

func TestChangedUnderneath(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	unprocessable := func(msg string) error {
		// As the API server builds it: the json-patch message is dropped.
		return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "patch", gr, "api", msg, 0, false)
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{unprocessable("testing value /spec/template/spec/affinity/nodeAffinity failed: test failed"), true},
		{unprocessable("add operation does not apply: doc is missing path: \"/spec/template/spec/affinity/x\": missing value"), true},
		{apierrors.NewConflict(gr, "api", errors.New("modified")), true},
		{apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "api", field.ErrorList{
			field.Invalid(field.NewPath("spec", "template", "spec", "affinity"), "x", "bad")}), false},
		{apierrors.NewForbidden(gr, "api", errors.New("no")), false},
	} {
		if got := changedUnderneath(tc.err); got != tc.want {
			t.Errorf("changedUnderneath(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
