package render

import (
	"strings"
	"testing"
)

func TestWithNamespace(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"workload without namespace gets the release's",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web # the app\nspec:\n  replicas: 2",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web # the app\n  namespace: prod\nspec:\n  replicas: 2"},
		{"a namespace in the template wins",
			"kind: Deployment\nmetadata:\n  name: web\n  namespace: other", ""},
		{"cluster-scoped kinds are left alone",
			"kind: ClusterRole\nmetadata:\n  name: r", ""},
		{"a Service is not read by archfit: unchanged",
			"kind: Service\nmetadata:\n  name: s", ""},
		{"a document that does not parse is unchanged",
			"kind: Deployment\nmetadata: {name: [", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = tc.doc
			}
			if got := withNamespace(tc.doc, "prod"); strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
