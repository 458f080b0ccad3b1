package remedy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", "web"},
		{"deployment.apps", "deployment.apps"},
		{"", "''"},
		{`[{"op":"add"}]`, `'[{"op":"add"}]'`},
		{"it's", `'it'\''s'`},
		{"a b", "'a b'"},
		{"$HOME", "'$HOME'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := shellQuote(tt.in); got != tt.want {
				t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestDetectStyle(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want style
	}{
		{"kubectl style", "a:\n  b:\n  - x\n", style{2, 0, false}},
		{"indented sequences", "a:\n  b:\n    - x\n", style{2, 2, false}},
		{"four spaces", "# c\na:\n    b:\n    - x\n", style{4, 0, false}},
		{"four spaces, dashes at two", "a:\n    b:\n      - x\n      - y\n", style{4, 2, false}},
		{"no sequences", "a:\n  b: 1\n", style{2, 0, false}},
		{"CRLF", "a:\r\n  b:\r\n    - x\r\n", style{2, 2, false}},
		{"the most used wins", "a:\n  - x\nb:\n    - y\nc:\n    - z\nd:\n    e: 1\n", style{4, 4, false}},
		{"under a sequence item", "- a:\n    b: 1\n  c:\n  - x\n", style{2, 0, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detectStyle([]byte(tt.src)); got != tt.want {
				t.Errorf("detectStyle = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// A multi-document file: only the document of the object changes.
func TestYAMLMultiDocument(t *testing.T) {
	src := `# shop
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80 # http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: web:1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  template:
    spec:
      containers:
        - name: other
          image: other:1
`
	want := `# shop
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80 # http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: web:1
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: kubernetes.io/arch
                    operator: In
                    values:
                      - arm64
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  template:
    spec:
      containers:
        - name: other
          image: other:1
`
	docs := splitDocs(t, src)
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(docs[1]), &obj.Object); err != nil {
		t.Fatal(err)
	}
	res, err := Patch(obj, []string{"arm64"}, WithSource([]byte(src)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Render(FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("yaml (-want +got):\n%s", diff)
	}

	// The object must be in the source.
	res, _ = Patch(obj, []string{"arm64"}, WithSource([]byte(docs[0])))
	if _, err := res.Render(FormatYAML); err == nil {
		t.Error("Render(yaml) with a source lacking the object: want an error")
	}
}

func splitDocs(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	cur := ""
	for _, l := range splitLines(s) {
		if l == "---\n" {
			out = append(out, cur)
			cur = ""
			continue
		}
		cur += l
	}
	return append(out, cur)
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i+1])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func TestPatchErrors(t *testing.T) {
	pod := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"},
			"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x"}}},
		}}
	}
	noTemplate := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"},
	}}
	tests := []struct {
		name    string
		obj     *unstructured.Unstructured
		allowed []string
		want    error
	}{
		{"no allowed arch", pod(), nil, ErrNoArchitecture},
		{"no template", noTemplate, []string{"amd64"}, ErrNoPodTemplate},
		{"unsupported kind", &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}, []string{"amd64"}, ErrUnsupportedKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Patch(tt.obj, tt.allowed)
			if !errors.Is(err, tt.want) {
				t.Errorf("Patch: %v, want %v", err, tt.want)
			}
		})
	}

	owned := pod()
	owned.SetOwnerReferences(nil)
	obj := owned.Object
	obj["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{
		"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true,
	}}
	var re *RedirectError
	if _, err := Patch(owned, []string{"amd64"}); !errors.As(err, &re) || re.To.Kind != "ReplicaSet" {
		t.Errorf("owned Pod: %v, want a RedirectError to the ReplicaSet", err)
	}
	if _, err := Patch(owned, []string{"amd64"}, IgnoreOwner()); err != nil {
		t.Errorf("owned Pod with IgnoreOwner: %v", err)
	}
}
