package remedy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

var gpuTaint = corev1.Taint{Key: "kubernetes.io/arch", Value: "arm64", Effect: corev1.TaintEffectNoSchedule}

// workloadDocs returns the patchable objects of a multi-document file.
func workloadDocs(t testing.TB, src []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := yaml3.NewDecoder(bytes.NewReader(src))
	for {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			break
		}
		if v == nil {
			continue
		}
		b, _ := json.Marshal(v)
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if _, err := lookupKind(refOf(u)); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// lineCount is the number of lines a value takes as block YAML (yaml.v3's
// own encoder, not the one under test): as a mapping entry or as an item.
func lineCount(t *testing.T, key string, value json.RawMessage) int {
	t.Helper()
	var v any
	if err := json.Unmarshal(value, &v); err != nil {
		t.Fatal(err)
	}
	var doc any = map[string]any{key: v}
	if key == "-" {
		doc = []any{v}
	}
	b, err := yaml3.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// splitKeep splits after each "\n", keeping it (and any "\r").
func splitKeep(s string) []string { return strings.SplitAfter(s, "\n") }

// onlyInserted checks that out is orig with lines inserted and nothing
// else changed (every original line, its line break included, is there in
// order) and returns the inserted lines' indexes in out.
func onlyInserted(t *testing.T, orig, out string) []int {
	t.Helper()
	a, b := splitKeep(orig), splitKeep(out)
	var added []int
	i := 0
	for j, l := range b {
		if i < len(a) && l == a[i] {
			i++
			continue
		}
		added = append(added, j)
	}
	if i != len(a) {
		t.Fatalf("original line %d (%q) is not in the output", i+1, a[i])
	}
	return added
}

// docOf decodes document index of src.
func docOf(t *testing.T, src []byte, index int) map[string]any {
	t.Helper()
	dec := yaml3.NewDecoder(bytes.NewReader(src))
	for i := 0; ; i++ {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("no document %d: %v", index, err)
		}
		if i == index {
			// Read as an unstructured object holds it (integers as int64).
			b, _ := json.Marshal(v)
			var out map[string]any
			_ = utiljson.Unmarshal(b, &out)
			return out
		}
	}
}

// Every workload of two real GitOps files, patched in place: the file
// changes by exactly the lines of the patch (counted with another encoder),
// inserted inside the workload's document; every other line is byte for
// byte the same; the document reads as the patched object. Also with CRLF
// line breaks, which stay CRLF.
func TestEditRealFiles(t *testing.T) {
	for _, name := range []string{"argo-cd-install-slice.yaml", "microservices-demo-kubernetes-manifests.yaml"} {
		lf, err := os.ReadFile(filepath.Join("testdata", "gitops", name))
		if err != nil {
			t.Fatal(err)
		}
		crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
		for _, src := range [][]byte{lf, crlf} {
			objs := workloadDocs(t, src)
			if len(objs) < 4 {
				t.Fatalf("%s: %d workloads, want the file's Deployments and StatefulSets", name, len(objs))
			}
			for _, obj := range objs {
				eol := map[bool]string{true: "CRLF", false: "LF"}[len(src) != len(lf)]
				t.Run(name+"/"+eol+"/"+obj.GetKind()+"/"+obj.GetName(), func(t *testing.T) {
					checkSplice(t, src, obj, []string{"amd64", "arm64"}, WithTaints("arm64", gpuTaint))
				})
			}
		}
	}
}

func checkSplice(t *testing.T, src []byte, obj *unstructured.Unstructured, allowed []string, opts ...Option) {
	t.Helper()
	s, err := SourceOf("f.yaml", src, refOf(obj), "")
	if err != nil || s == nil {
		t.Fatalf("SourceOf: %v %v", s, err)
	}
	res, err := Patch(obj, allowed, append(opts, FromSource(s))...)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Skip("nothing to patch")
	}
	out, err := res.Render(FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.EditNote(); n != "" {
		t.Fatalf("re-encoded instead of spliced: %s", n)
	}
	want := 0
	for _, o := range res.Ops {
		if o.Op == "add" {
			p := splitPointer(o.Path)
			want += lineCount(t, p[len(p)-1], o.Value)
		}
	}
	added := onlyInserted(t, string(src), string(out))
	if len(added) != want {
		t.Errorf("%d lines inserted, the patch is %d lines:\n%s", len(added), want, out)
	}
	first := s.Line - 1
	docLines := splitKeep(string(src))
	end := len(docLines)
	for i := first + 1; i < len(docLines); i++ {
		if strings.HasPrefix(docLines[i], "---") {
			end = i
			break
		}
	}
	crlf := bytes.Contains(src, []byte("\r\n"))
	outLines := splitKeep(string(out))
	for _, i := range added {
		if i < first || i >= end+len(added) {
			t.Errorf("line %d inserted outside the document (lines %d-%d)", i+1, first+1, end)
		}
		if crlf != strings.HasSuffix(outLines[i], "\r\n") {
			t.Errorf("inserted line %d %q: line break not that of the file", i+1, outLines[i])
		}
	}
	if diff := cmp.Diff(res.Patched().Object, docOf(t, out, s.Index)); diff != "" {
		t.Errorf("the edited document is not the patched object (-want +got):\n%s", diff)
	}
}

// Constructs a splice must get right, or leave to a re-encode it says so.
func TestEditYAMLCases(t *testing.T) {
	head := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n"
	tests := []struct {
		name     string
		src      string
		taint    bool
		want     string // the output; "" to check only semantics
		reencode bool   // a note says the document was re-encoded
	}{
		{
			name: "empty flow affinity, its comment kept",
			src:  head + "      affinity: {}  # none yet\n      containers:\n      - name: a\n        image: a\n",
			want: head + `      affinity: # none yet
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - key: kubernetes.io/arch
                operator: In
                values:
                - arm64
      containers:
      - name: a
        image: a
`,
		},
		{
			name:  "empty flow tolerations, indented sequences, no final line break",
			src:   head + "      containers:\n        - name: a\n          image: a\n      tolerations: []",
			taint: true,
			want: head + `      containers:
        - name: a
          image: a
      tolerations:
        - key: kubernetes.io/arch
          operator: Equal
          value: arm64
          effect: NoSchedule
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: kubernetes.io/arch
                    operator: In
                    values:
                      - arm64`,
		},
		{
			name:  "toleration appended to a block list, comments after it kept",
			src:   head + "      containers:\n      - name: a\n        image: a\n      tolerations:\n      - key: x\n        operator: Exists\n      # keep me\n\n---\nkind: ConfigMap\n",
			taint: true,
			want: head + `      containers:
      - name: a
        image: a
      tolerations:
      - key: x
        operator: Exists
      - key: kubernetes.io/arch
        operator: Equal
        value: arm64
        effect: NoSchedule
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - key: kubernetes.io/arch
                operator: In
                values:
                - arm64
      # keep me

---
kind: ConfigMap
`,
		},
		{
			name: "four spaces, document end marker, BOM",
			src:  "\ufeff" + strings.ReplaceAll(head, "  ", "    ") + "            containers:\n            -   name: a\n                image: a\n...\n---\nkind: ConfigMap\n",
			want: "\ufeff" + strings.ReplaceAll(head, "  ", "    ") + `            containers:
            -   name: a
                image: a
            affinity:
                nodeAffinity:
                    requiredDuringSchedulingIgnoredDuringExecution:
                        nodeSelectorTerms:
                        - matchExpressions:
                          - key: kubernetes.io/arch
                            operator: In
                            values:
                            - arm64
...
---
kind: ConfigMap
`,
		},
		{
			name: "double-quoted values (Helm output): new strings quoted too",
			src:  head + "      containers:\n        - name: \"a\"\n          image: \"a:1\"\n          imagePullPolicy: \"IfNotPresent\"\n          terminationMessagePolicy: \"File\"\n          ports:\n            - containerPort: 80\n",
			want: head + `      containers:
        - name: "a"
          image: "a:1"
          imagePullPolicy: "IfNotPresent"
          terminationMessagePolicy: "File"
          ports:
            - containerPort: 80
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: "kubernetes.io/arch"
                    operator: "In"
                    values:
                      - "arm64"
`,
		},
		{
			// microservices-demo's style: containers indented under
			// their key, the lists inside them not.
			name:  "mixed styles: the new lines follow the map they go into",
			src:   head + "      containers:\n        - name: a\n          image: a\n          args:\n          - run\n          ports:\n          - containerPort: 80\n          env:\n          - name: X\n            value: x\n      tolerations:\n        - key: y\n          operator: Exists\n",
			taint: true,
			want: head + `      containers:
        - name: a
          image: a
          args:
          - run
          ports:
          - containerPort: 80
          env:
          - name: X
            value: x
      tolerations:
        - key: y
          operator: Exists
        - key: kubernetes.io/arch
          operator: Equal
          value: arm64
          effect: NoSchedule
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: kubernetes.io/arch
                    operator: In
                    values:
                      - arm64
`,
		},
		{
			name: "a term's requirement appended under a quoted key",
			src: head + `      affinity:
        nodeAffinity:
          "requiredDuringSchedulingIgnoredDuringExecution":
            nodeSelectorTerms:
            - matchExpressions:
              - {key: zone, operator: In, values: [a]}
      containers: [{name: a, image: a}]
`,
			want: head + `      affinity:
        nodeAffinity:
          "requiredDuringSchedulingIgnoredDuringExecution":
            nodeSelectorTerms:
            - matchExpressions:
              - {key: zone, operator: In, values: [a]}
              - key: kubernetes.io/arch
                operator: In
                values:
                - arm64
      containers: [{name: a, image: a}]
`,
		},
		{
			name: "flow pod spec: the whole spec value is replaced as block",
			src:  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec: {containers: [{name: a, image: a}]}  # inline\n",
			want: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec: # inline\n      containers:\n      - name: a\n        image: a\n      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            nodeSelectorTerms:\n            - matchExpressions:\n              - key: kubernetes.io/arch\n                operator: In\n                values:\n                - arm64\n",
		},
		{
			// A kept trailing blank line belongs to the scalar: inserting
			// after the last text line would drop it from the value.
			name:     "keep-chomped block scalar last: re-encoded, and said",
			src:      head + "      containers:\n      - name: a\n        image: a\n        args:\n        - |+\n          run\n\n---\nkind: ConfigMap\nmetadata: {name: c}   # untouched\n",
			reencode: true,
		},
		{
			name:     "anchored pod spec: re-encoded, and said",
			src:      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec: &pod\n      containers:\n      - name: a\n        image: a\n",
			reencode: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := workloadDocs(t, []byte(tt.src))[0]
			var opts []Option
			if tt.taint {
				opts = append(opts, WithTaints("arm64", gpuTaint))
			}
			res, err := Patch(obj, []string{"arm64"}, append(opts, WithSource([]byte(tt.src)))...)
			if err != nil {
				t.Fatal(err)
			}
			out, err := res.Render(FormatYAML)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.EditNote() != ""; got != tt.reencode {
				t.Errorf("re-encoded: %v (%q), want %v", got, res.EditNote(), tt.reencode)
			}
			if tt.want != "" {
				if diff := cmp.Diff(tt.want, string(out)); diff != "" {
					t.Errorf("output (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(res.Patched().Object, docOf(t, out, 0)); diff != "" {
				t.Errorf("not the patched object (-want +got):\n%s", diff)
			}
			if _, rest, ok := strings.Cut(tt.src, "\n---\n"); ok && !strings.HasSuffix(string(out), "\n---\n"+rest) {
				t.Errorf("the next document changed:\n%s", out)
			}
		})
	}
}

// The re-encode fallback changes only its document, and the splice and
// the fallback agree on what the document means.
func TestReencodeKeepsOtherDocuments(t *testing.T) {
	other := "# other\nkind: ConfigMap\nmetadata:   {name: c}\ndata:\n    k: >\n        folded\n        text\n"
	src := other + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: a\n---\n" + other
	obj := workloadDocs(t, []byte(src))[0]
	res, err := Patch(obj, []string{"amd64"})
	if err != nil {
		t.Fatal(err)
	}
	var adds []Operation
	for _, o := range res.Ops {
		if o.Op == "add" {
			adds = append(adds, o)
		}
	}
	docs, err := parseDocs([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := copyNode(docs[1])
	for _, o := range adds {
		if err := addNode(want.Content[0], o.Path, o.Value); err != nil {
			t.Fatal(err)
		}
	}
	f := newTextFile([]byte(src))
	spliced, err := f.splice(docs[1], want, adds)
	if err != nil {
		t.Fatal(err)
	}
	reencoded, err := f.reencode(docs[1], want)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{spliced, reencoded} {
		if !strings.HasPrefix(string(out), other+"---\n") || !strings.HasSuffix(string(out), "---\n"+other) {
			t.Errorf("another document changed:\n%s", out)
		}
		if err := sameDocs(out, docs, 1, want); err != nil {
			t.Error(err)
		}
	}
	if !reflect.DeepEqual(docOf(t, spliced, 1), docOf(t, reencoded, 1)) {
		t.Error("the splice and the re-encode disagree")
	}
}

// A Pod with a flow nodeSelector that does not pin the arch: the affinity
// is added after its last line, nothing else moves.
func TestEditPodFlowSelector(t *testing.T) {
	src := []byte(strings.Repeat("# pad\n", 3) + "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  nodeSelector: {disk: ssd}\n  containers:\n  - name: a\n    image: a\n")
	obj := workloadDocs(t, src)[0]
	checkSplice(t, src, obj, []string{"amd64", "arm64"})
}
