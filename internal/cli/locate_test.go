package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type locatedDoc struct {
	Findings []struct {
		Code, Container, Image, File string
		Line                         int
		Workload                     struct{ Kind, Namespace, Name string }
	}
}

// Findings on -f point at the line of their container's image, which the
// test checks in the file itself.
func TestFindingsLocatedInManifests(t *testing.T) {
	dir := "../../examples/manifests/workloads"
	out, errOut, code := runArchfit(t, "", append([]string{"audit", "-o", "json", "-f", dir}, renderImageArgs...)...)
	if code == ExitFailure {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc locatedDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	files := map[string][]string{}
	located := 0
	for _, f := range doc.Findings {
		if f.Container == "" {
			continue
		}
		if filepath.Dir(f.File) != dir || f.Line < 1 {
			t.Errorf("%s %s/%s %s: at %s:%d", f.Code, f.Workload.Namespace, f.Workload.Name, f.Container, f.File, f.Line)
			continue
		}
		if files[f.File] == nil {
			data, err := os.ReadFile(f.File)
			if err != nil {
				t.Fatal(err)
			}
			files[f.File] = strings.Split(string(data), "\n")
		}
		lines := files[f.File]
		if f.Line > len(lines) || !strings.Contains(lines[f.Line-1], "image: "+f.Image) {
			t.Errorf("%s %s: line %d of %s does not set image %s", f.Code, f.Container, f.Line, f.File, f.Image)
		}
		located++
	}
	if located == 0 {
		t.Fatal("no finding about a container")
	}

	// Text puts file:line: in front of each; SARIF has the physical location.
	text, _, _ := runArchfit(t, "", append([]string{"audit", "-f", dir}, renderImageArgs...)...)
	sarif, _, _ := runArchfit(t, "", append([]string{"audit", "-o", "sarif", "-f", dir}, renderImageArgs...)...)
	var s struct {
		Runs []struct {
			Results []struct {
				RuleID    string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
					LogicalLocations []struct{ FullyQualifiedName string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(sarif), &s); err != nil || len(s.Runs) != 1 {
		t.Fatal(err, sarif)
	}
	for i, f := range doc.Findings {
		if f.Line == 0 {
			continue
		}
		pos := f.File + ":" + itoa(f.Line) + ": [" + f.Code + "] " + f.Container
		if !strings.Contains(text, pos) {
			t.Errorf("text lacks %q", pos)
		}
		r := s.Runs[0].Results[i]
		if r.RuleID != f.Code || len(r.Locations) != 1 {
			t.Fatalf("SARIF result %d: %+v", i, r)
		}
		l := r.Locations[0]
		if l.PhysicalLocation.ArtifactLocation.URI != filepath.ToSlash(filepath.Clean(f.File)) || l.PhysicalLocation.Region.StartLine != f.Line || len(l.LogicalLocations) != 1 {
			t.Errorf("SARIF location %+v, want %s:%d and the workload", l, f.File, f.Line)
		}
	}
}

// On --helm-chart, findings name the template under the chart directory
// as given, with no line: the rendered line is not the template's.
func TestFindingsLocatedInChart(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"audit", "-o", "json", "--helm-chart", renderChart, "--values", renderChart + "/values-worker.yaml"}, renderImageArgs...)...)
	if code == ExitFailure {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc locatedDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) == 0 {
		t.Fatal("no findings")
	}
	for _, f := range doc.Findings {
		if f.File != filepath.Join(renderChart, "templates", "deployment.yaml") || f.Line != 0 {
			t.Errorf("%s %s at %s:%d", f.Code, f.Container, f.File, f.Line)
		}
		if _, err := os.Stat(f.File); err != nil {
			t.Error(err)
		}
	}
}

// On -k, findings name the resource's file, from kustomize's origin: here
// the base's deployment.yaml beside the overlay.
func TestFindingsLocatedInKustomization(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"audit", "-o", "json", "-k", renderKust}, renderImageArgs...)...)
	if code == ExitFailure {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc locatedDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) == 0 {
		t.Fatal("no findings")
	}
	want := filepath.Join(renderKust, "..", "base", "deployment.yaml")
	for _, f := range doc.Findings {
		if f.File != want || f.Line != 0 {
			t.Errorf("%s %s at %s:%d, want %s", f.Code, f.Container, f.File, f.Line, want)
		}
	}
	if strings.Contains(out, "config.kubernetes.io/origin") {
		t.Error("the origin annotation reached the output")
	}
}
