package remedy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A JSON manifest (as kubectl -o json writes it, CRLF or not) edited in
// place changes only where the patch lands: its members are appended after
// the last one (whose line gets the comma), the rest stays byte for byte,
// escapes and one-line arrays included. A value on one line is re-encoded
// whole, and the note says so.
func TestEditJSONSplice(t *testing.T) {
	doc := `{
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "annotations": {"note": "a <b> & \u00e9"}},
    "spec": {
        "containers": [{"name": "a", "image": "a", "args": ["--rate", "1.0"]}],
        "tolerations": [
            {
                "key": "x",
                "operator": "Exists"
            }
        ]
    }
}`
	for _, eol := range []string{"\n", "\r\n"} {
		src := "{\"kind\": \"ConfigMap\"}\n" + strings.ReplaceAll(doc, "\n", eol) + eol
		obj := &unstructured.Unstructured{}
		if err := json.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		res, err := Patch(obj, []string{"arm64"}, WithSource([]byte(src)), WithTaints("arm64", gpuTaint))
		if err != nil {
			t.Fatal(err)
		}
		out, err := res.Render(FormatYAML)
		if err != nil {
			t.Fatal(err)
		}
		if res.EditNote() != "" {
			t.Errorf("re-encoded: %s", res.EditNote())
		}
		want := strings.ReplaceAll(`{
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "annotations": {"note": "a <b> & \u00e9"}},
    "spec": {
        "containers": [{"name": "a", "image": "a", "args": ["--rate", "1.0"]}],
        "tolerations": [
            {
                "key": "x",
                "operator": "Exists"
            },
            {
                "key": "kubernetes.io/arch",
                "operator": "Equal",
                "value": "arm64",
                "effect": "NoSchedule"
            }
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": [
                                        "arm64"
                                    ]
                                }
                            ]
                        }
                    ]
                }
            }
        }
    }
}`, "\n", eol)
		if diff := cmp.Diff("{\"kind\": \"ConfigMap\"}\n"+want+eol, string(out)); diff != "" {
			t.Errorf("%q: (-want +got):\n%s", eol, diff)
		}
	}

	oneLine := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"a"}]}}`
	obj := &unstructured.Unstructured{}
	_ = json.Unmarshal([]byte(oneLine), &obj.Object)
	res, err := Patch(obj, []string{"arm64"}, WithSource([]byte(oneLine)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := res.Render(FormatYAML)
	var got map[string]any
	if err != nil || json.Unmarshal(out, &got) != nil || !strings.Contains(res.EditNote(), "re-encoded whole") {
		t.Errorf("one-line JSON: %v, note %q:\n%s", err, res.EditNote(), out)
	}
	if diff := cmp.Diff(res.Patched().Object, got); diff != "" {
		t.Errorf("one-line JSON (-want +got):\n%s", diff)
	}
}
