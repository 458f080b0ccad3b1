package remedy

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml3 "go.yaml.in/yaml/v3"
)

// Random Deployments written in random styles (indent 2 or 4, sequences at
// or under their key, CRLF, comments, neighbours in the same file), patched
// in place: the splice is always taken (no re-encode), the document reads
// as the patched object, and when nothing existing was replaced the output
// is the input with lines inserted.
func TestSpliceProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	n := 300
	if testing.Short() {
		n = 100
	}
	for i := 0; i < n; i++ {
		spec := map[string]any{"containers": []any{map[string]any{"name": "a", "image": "a:1", "args": []any{"--x", "y"}}}}
		replaced := false
		if rng.Intn(2) == 0 {
			spec["affinity"] = map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{
				map[string]any{"weight": 5, "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname"}}}}}
		}
		switch rng.Intn(3) {
		case 0:
			spec["tolerations"] = []any{map[string]any{"key": "x", "operator": "Exists"}}
		case 1:
			spec["tolerations"] = []any{}
			replaced = true
		}
		if rng.Intn(2) == 0 {
			spec["nodeSelector"] = map[string]any{"disk": "ssd"}
		}
		obj := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "api"},
			"spec": map[string]any{"template": map[string]any{"spec": spec}}}
		var buf bytes.Buffer
		enc := yaml3.NewEncoder(&buf)
		enc.SetIndent([]int{2, 4}[rng.Intn(2)])
		if rng.Intn(2) == 0 {
			enc.CompactSeqIndent()
		}
		if err := enc.Encode(obj); err != nil {
			t.Fatal(err)
		}
		doc := buf.String()
		if rng.Intn(2) == 0 { // a comment after the pod spec's last line
			doc += "# end of api\n"
		}
		src := doc
		if rng.Intn(2) == 0 {
			src = "kind: ConfigMap\nmetadata: {name: c}\n---\n" + src
		}
		if rng.Intn(2) == 0 {
			src += "---\nkind: ConfigMap\nmetadata: {name: d}\n"
		}
		if rng.Intn(2) == 0 {
			src = strings.ReplaceAll(src, "\n", "\r\n")
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			u := workloadDocs(t, []byte(src))[0]
			s, err := SourceOf("f.yaml", []byte(src), refOf(u), "")
			if err != nil || s == nil {
				t.Fatalf("SourceOf: %v", err)
			}
			res, err := Patch(u, []string{"amd64", "arm64"}, FromSource(s), WithTaints("arm64", gpuTaint))
			if err != nil {
				t.Fatal(err)
			}
			out, err := res.Render(FormatYAML)
			if err != nil {
				t.Fatal(err)
			}
			if res.EditNote() != "" {
				t.Fatalf("re-encoded: %s\n%s", res.EditNote(), src)
			}
			if diff := cmp.Diff(res.Patched().Object, docOf(t, out, s.Index)); diff != "" {
				t.Fatalf("not the patched object (-want +got):\n%s\n%s", diff, src)
			}
			if !replaced {
				onlyInserted(t, src, string(out))
			}
		})
	}
}
