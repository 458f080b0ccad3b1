package remedy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of testdata/*.txtar")

// archive is a file of named sections:
//
//	comment lines
//	-- name --
//	content
type archive struct {
	Comment  string
	Sections []section
}

type section struct {
	Name string
	Data string
}

func parseArchive(b []byte) archive {
	var a archive
	cur := -1
	for _, line := range strings.SplitAfter(string(b), "\n") {
		t := strings.TrimRight(line, "\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			a.Sections = append(a.Sections, section{Name: strings.TrimSpace(t[3 : len(t)-3])})
			cur = len(a.Sections) - 1
			continue
		}
		if cur < 0 {
			a.Comment += line
		} else {
			a.Sections[cur].Data += line
		}
	}
	return a
}

func (a archive) get(name string) (string, bool) {
	for _, s := range a.Sections {
		if s.Name == name {
			return s.Data, true
		}
	}
	return "", false
}

func (a *archive) set(name, data string) {
	for i, s := range a.Sections {
		if s.Name == name {
			a.Sections[i].Data = data
			return
		}
	}
	a.Sections = append(a.Sections, section{Name: name, Data: data})
}

func (a archive) format() []byte {
	var b bytes.Buffer
	b.WriteString(a.Comment)
	for _, s := range a.Sections {
		b.WriteString("-- " + s.Name + " --\n")
		b.WriteString(s.Data)
		if s.Data != "" && !strings.HasSuffix(s.Data, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// fixtureArgs is the "args" section.
type fixtureArgs struct {
	Allowed     []string                  `json:"allowed"`
	Taints      map[string][]corev1.Taint `json:"taints,omitempty"`
	Source      bool                      `json:"source,omitempty"` // pass input.yaml as WithSource
	IgnoreOwner bool                      `json:"ignoreOwner,omitempty"`
}

// summary is the "result" section: what Patch decided, without the patch.
type summary struct {
	PodSpecPath      string              `json:"podSpecPath"`
	Changed          bool                `json:"changed"`
	Terms            []TermDecision      `json:"terms,omitempty"`
	AddedTolerations []corev1.Toleration `json:"addedTolerations,omitempty"`
	Conflicts        []Conflict          `json:"conflicts,omitempty"`
	Recreate         bool                `json:"recreate,omitempty"`
	Immutable        bool                `json:"immutable,omitempty"`
	Notes            []string            `json:"notes,omitempty"`
}

func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/patch/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := parseArchive(raw)
			argsText, _ := a.get("args")
			var args fixtureArgs
			if err := yaml.UnmarshalStrict([]byte(argsText), &args); err != nil {
				t.Fatalf("args: %v", err)
			}
			input, ok := a.get("input.yaml")
			if !ok {
				t.Fatal("no input.yaml section")
			}
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(input), &obj.Object); err != nil {
				t.Fatalf("input.yaml: %v", err)
			}
			var opts []Option
			for arch, taints := range args.Taints {
				opts = append(opts, WithTaints(arch, taints...))
			}
			if args.Source {
				opts = append(opts, WithSource([]byte(input)))
			}
			if args.IgnoreOwner {
				opts = append(opts, IgnoreOwner())
			}

			got := map[string]string{}
			res, err := Patch(obj, args.Allowed, opts...)
			if err != nil {
				got["error"] = err.Error() + "\n"
			} else {
				s := summary{
					PodSpecPath: res.PodSpecPath, Changed: res.Changed, Terms: res.Terms,
					AddedTolerations: res.AddedTolerations, Conflicts: res.Conflicts,
					Recreate: res.Recreate, Immutable: res.Immutable, Notes: res.Notes,
				}
				b, _ := json.MarshalIndent(s, "", "  ")
				got["result.json"] = string(b) + "\n"
				for _, f := range Formats {
					out, err := res.Render(f)
					if err != nil {
						got[string(f)] = "error: " + err.Error() + "\n"
						continue
					}
					got[string(f)] = string(out)
				}
				if len(res.Conflicts) == 0 {
					checkFormatsAgree(t, obj, res, args.Source)
				}
			}

			names := []string{"error", "result.json"}
			for _, f := range Formats {
				names = append(names, string(f))
			}
			if *update {
				var keep []section
				for _, s := range a.Sections {
					if s.Name == "args" || s.Name == "input.yaml" {
						keep = append(keep, s)
					}
				}
				a.Sections = keep
				for _, n := range names {
					if v, ok := got[n]; ok {
						a.set(n, v)
					}
				}
				if err := os.WriteFile(file, a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, n := range names {
				want, _ := a.get(n)
				if diff := cmp.Diff(want, got[n]); diff != "" {
					t.Errorf("section %s (-want +got):\n%s", n, diff)
				}
			}
		})
	}
}

// checkFormatsAgree applies the json-patch with a real RFC 6902
// implementation and the merge patch with the strategic merge patch code of
// apimachinery (JSON merge patch for custom resources) and checks that both
// give the same object, and that the yaml format is that object too.
func checkFormatsAgree(t *testing.T, obj *unstructured.Unstructured, res *Result, fromSource bool) {
	t.Helper()
	orig, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	jp, _ := res.Render(FormatJSONPatch)
	p, err := jsonpatch.DecodePatch(jp)
	if err != nil {
		t.Fatalf("decoding json-patch: %v", err)
	}
	viaJSON, err := p.Apply(orig)
	if err != nil {
		t.Fatalf("applying json-patch: %v", err)
	}
	mp, _ := res.Render(FormatMerge)
	var viaMerge []byte
	if dataStruct := typedFor(res.Object.Kind); dataStruct != nil {
		viaMerge, err = strategicpatch.StrategicMergePatch(orig, mp, dataStruct)
	} else {
		viaMerge, err = jsonpatch.MergePatch(orig, mp)
	}
	if err != nil {
		t.Fatalf("applying merge patch: %v", err)
	}
	var a, b, c any
	_ = json.Unmarshal(viaJSON, &a)
	_ = json.Unmarshal(viaMerge, &b)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("json-patch and merge patch disagree (-json +merge):\n%s", diff)
	}
	y, _ := res.Render(FormatYAML)
	if fromSource {
		for _, d := range bytes.Split(y, []byte("\n---\n")) {
			var m struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if yaml.Unmarshal(d, &m) == nil && m.Kind == res.Object.Kind && m.Metadata.Name == res.Object.Name {
				y = d
				break
			}
		}
	}
	if err := yaml.Unmarshal(y, &c); err != nil {
		t.Fatalf("yaml output: %v", err)
	}
	if diff := cmp.Diff(a, c); diff != "" {
		t.Errorf("json-patch and yaml output disagree (-json +yaml):\n%s", diff)
	}
}

func typedFor(kind string) any {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}
	case "StatefulSet":
		return &appsv1.StatefulSet{}
	case "DaemonSet":
		return &appsv1.DaemonSet{}
	case "ReplicaSet":
		return &appsv1.ReplicaSet{}
	case "Job":
		return &batchv1.Job{}
	case "CronJob":
		return &batchv1.CronJob{}
	case "Pod":
		return &corev1.Pod{}
	case "PodTemplate":
		return &corev1.PodTemplate{}
	case "ReplicationController":
		return &corev1.ReplicationController{}
	}
	return nil
}

func TestRenderUnknownFormat(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x"}}},
	}}
	res, err := Patch(obj, []string{"arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Render("xml"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Render(xml) = %v, want ErrUnknownFormat", err)
	}
}
