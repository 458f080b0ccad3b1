package render

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func namespaceOf(o map[string]any) any { return o["metadata"].(map[string]any)["namespace"] }

// Hooks and tests are created in the release namespace, as helm install
// and helm test create them; tests are kept apart from the release.
func TestHooksAndTests(t *testing.T) {
	c, err := RenderChart(context.Background(), "testdata/chart/hooks", nil, nil, "rel", "shop")
	if err != nil {
		t.Fatal(err)
	}
	objs := docs(t, c.Manifests)
	for _, o := range []map[string]any{find(t, objs, "Deployment", "rel-app"), find(t, objs, "Job", "rel-migrate")} {
		if ns := namespaceOf(o); ns != "shop" {
			t.Errorf("%s in namespace %v, want shop", o["kind"], ns)
		}
	}
	for _, o := range objs {
		if o["kind"] == "Pod" {
			t.Errorf("test pod %v among the manifests", o["metadata"])
		}
	}
	tests := docs(t, c.Tests)
	if ns := namespaceOf(find(t, tests, "Pod", "rel-test")); ns != "shop" {
		t.Errorf("test pod in namespace %v, want shop", ns)
	}
	// A namespace the template names stays.
	if ns := namespaceOf(find(t, tests, "Pod", "rel-test-old")); ns != "elsewhere" {
		t.Errorf("test-success pod in namespace %v, want elsewhere", ns)
	}
	find(t, tests, "ConfigMap", "rel-test-script")
	want := []TestHook{
		{Kind: "Pod", Namespace: "elsewhere", Name: "rel-test-old", Template: "hooks/templates/test-success.yaml", Images: []string{"example.com/check:1"}},
		{Kind: "Pod", Namespace: "shop", Name: "rel-test", Template: "hooks/templates/test-pod.yaml", Images: []string{"example.com/busybox:1", "example.com/curl:8"}},
	}
	got := c.TestHooks()
	less := func(a, b TestHook) bool { return a.Name < b.Name }
	if d := cmp.Diff(want, got, cmpSortTestHooks(less)); d != "" {
		t.Errorf("TestHooks (-want +got):\n%s", d)
	}
	// HelmChart prints everything, tests last, as helm template does.
	all, err := HelmChart(context.Background(), "testdata/chart/hooks", nil, nil, "rel", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if string(all) != string(c.Manifests)+string(c.Tests) {
		t.Error("HelmChart is not the manifests followed by the tests")
	}
	if !strings.Contains(string(all), "helm.sh/hook: test-success") {
		t.Error("test-success hook not in HelmChart's output")
	}
}

func cmpSortTestHooks(less func(a, b TestHook) bool) cmp.Option {
	return cmpopts.SortSlices(less)
}
