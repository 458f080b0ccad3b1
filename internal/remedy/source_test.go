package remedy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func deploymentDoc(ns string) string {
	meta := "  name: api\n"
	if ns != "" {
		meta += "  namespace: " + ns + "\n"
	}
	return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n" + meta + `spec:
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
}

// The document edited is exactly the object: a document without namespace
// is in the default namespace (kubectl apply -n), so it is not other/api
// unless -n other is given, and two documents that are the object are an
// error naming both.
func TestSourceOf(t *testing.T) {
	api := object.Ref{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"}
	other := api
	other.Namespace = "other"
	defaultAPI := api
	defaultAPI.Namespace = "default"
	noNS, otherNS := deploymentDoc(""), deploymentDoc("other")
	tests := []struct {
		name, data string
		ref        object.Ref
		defaultNS  string
		want       string // path:line #index, or the error
	}{
		{"namespace-less first, other/api asked", noNS + "---\n" + otherNS, other, "default", "f.yaml:16 #1"},
		{"other/api first, namespace-less asked", otherNS + "---\n" + noNS, api, "", "f.yaml:17 #1"},
		{"namespace-less in the default namespace", otherNS + "---\n" + noNS, defaultAPI, "default", "f.yaml:17 #1"},
		{"-n other: namespace-less is other/api too", noNS + "---\n" + otherNS, other, "other", "other/Deployment/api: the object is in more than one document: f.yaml:1 and f.yaml:16"},
		{"-n other: namespace-less only", noNS, other, "other", "f.yaml:1 #0"},
		{"not there", otherNS, api, "", "none"},
		{"twice", otherNS + "---\n" + otherNS, other, "", "other/Deployment/api: the object is in more than one document: f.yaml:1 and f.yaml:17"},
		{"JSON stream", `{"kind":"Deployment","metadata":{"name":"api"}}` + "\n" + `{"kind":"Deployment","metadata":{"name":"api","namespace":"other"}}`, other, "default", "f.yaml:2 #1"},
		{"JSON stream, -n other", `{"kind":"Deployment","metadata":{"name":"api"}}` + "\n" + `{"kind":"Deployment","metadata":{"name":"api","namespace":"shop"}}`, other, "other", "f.yaml:1 #0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := SourceOf("f.yaml", []byte(tt.data), tt.ref, tt.defaultNS)
			got := "none"
			switch {
			case err != nil:
				got = err.Error()
				if !errors.Is(err, ErrAmbiguousSource) {
					t.Errorf("%v is not ErrAmbiguousSource", err)
				}
			case s != nil:
				got = s.String() + " #" + string(rune('0'+s.Index))
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFindSourceAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a.yaml": deploymentDoc("shop"), "b.yml": deploymentDoc("shop"), "c.yaml": deploymentDoc("")} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := object.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"}
	_, err := FindSource([]string{dir}, false, SourceFile{}, ref, "default")
	if !errors.Is(err, ErrAmbiguousSource) || !strings.Contains(err.Error(), "a.yaml:1") || !strings.Contains(err.Error(), "b.yml:1") {
		t.Errorf("got %v, want both files named", err)
	}
	s, err := FindSource([]string{filepath.Join(dir, "c.yaml"), "-"}, false, SourceFile{Path: "<stdin>", Data: []byte(deploymentDoc("shop"))}, ref, "default")
	if err != nil || s == nil || s.Path != "<stdin>" {
		t.Errorf("got %v %v, want the stdin document", s, err)
	}
}

// A JSON manifest edited in place stays JSON, its key order and indentation
// kept, the values around it untouched.
func TestEditKeepsJSON(t *testing.T) {
	y := deploymentDoc("shop")
	var v any
	if err := yaml.Unmarshal([]byte(y), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	src := "{\"kind\": \"ConfigMap\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"c\"}}\n" + string(b) + "\n"
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &obj.Object); err != nil {
		t.Fatal(err)
	}
	res, err := Patch(obj, []string{"arm64"}, WithSource([]byte(src)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := res.Render(FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	if first != "{\"kind\": \"ConfigMap\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"c\"}}" {
		t.Errorf("the other value changed: %s", first)
	}
	var patched map[string]any
	if err := json.Unmarshal([]byte(rest), &patched); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if !strings.Contains(rest, "\n  \"apiVersion\": \"apps/v1\",\n  \"kind\": \"Deployment\"") || !strings.Contains(rest, `"kubernetes.io/arch"`) {
		t.Errorf("order, indentation or the patch lost:\n%s", rest)
	}
}
