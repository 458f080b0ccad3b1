package render

import (
	"bytes"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// TestHook is one helm test hook of a chart: an object `helm test` creates
// and runs, not a workload of the release.
type TestHook struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Template is the chart template it comes from.
	Template string `json:"template"`
	// Images are its containers' images (init containers first), in
	// order, each once.
	Images []string `json:"images"`
}

// maxTestHooks bounds the test hooks listed from one render.
const maxTestHooks = 1000

// TestHooks lists the workloads (pods and the kinds that make pods) of
// Chart.Tests; the other test hooks (a ConfigMap, a ServiceAccount) run
// nothing. A document that does not parse is listed by its template with
// no name; more than 1000 are cut.
func (c *Chart) TestHooks() []TestHook {
	var out []TestHook
	src := ""
	for _, doc := range bytes.Split(c.Tests, []byte("\n---\n")) {
		doc = bytes.TrimPrefix(doc, []byte("---\n"))
		if s, rest, ok := bytes.Cut(doc, []byte("\n")); ok && bytes.HasPrefix(s, []byte(SourcePrefix)) {
			src, doc = string(bytes.TrimPrefix(s, []byte(SourcePrefix))), rest
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if len(out) == maxTestHooks {
			break
		}
		if h := testHook(doc, src); h.Kind == "" || workloadKinds[h.Kind] {
			out = append(out, h)
		}
	}
	return out
}

type podSpec struct {
	InitContainers []struct {
		Image string `yaml:"image"`
	} `yaml:"initContainers"`
	Containers []struct {
		Image string `yaml:"image"`
	} `yaml:"containers"`
}

func testHook(doc []byte, src string) TestHook {
	var obj struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec struct {
			podSpec  `yaml:",inline"`
			Template struct {
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	h := TestHook{Template: src, Images: []string{}}
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&obj); err != nil && !errors.Is(err, io.EOF) {
		return h
	}
	h.Kind, h.Name, h.Namespace = obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace
	seen := map[string]bool{}
	for _, s := range []podSpec{obj.Spec.podSpec, obj.Spec.Template.Spec} {
		for _, c := range append(s.InitContainers, s.Containers...) {
			if c.Image != "" && !seen[c.Image] {
				seen[c.Image] = true
				h.Images = append(h.Images, c.Image)
			}
		}
	}
	return h
}
