package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	brokenDockerfile = "../../examples/dockerfile/Dockerfile"
	crossDockerfile  = "../../examples/dockerfile/cross-compile.Dockerfile"
)

type dfFinding struct {
	Code     string   `json:"code"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Evidence []string `json:"evidence"`
	Fix      string   `json:"fix"`
}

type dfCheck struct {
	File     string      `json:"file"`
	Findings []dfFinding `json:"findings"`
	Summary  string      `json:"summary"`
}

type dfAdvice struct {
	Image       string    `json:"image"`
	Dockerfiles []dfCheck `json:"dockerfiles"`
}

type dfDoc struct {
	Remedies []struct {
		Workload struct{ Kind, Namespace, Name string } `json:"workload"`
		Build    []dfAdvice                             `json:"build"`
	} `json:"remedies"`
	Extra struct {
		Blockers []struct {
			Image string    `json:"image"`
			Build *dfAdvice `json:"build"`
		} `json:"blockers"`
	} `json:"extra"`
}

// dockerfileFindings are what `archfit dockerfile PATH` reports: the
// findings --dockerfile must carry into the build advice.
func dockerfileFindings(t *testing.T, path string) []dfFinding {
	t.Helper()
	out, errOut, code := runArchfit(t, "", "dockerfile", path, "-o", "json", "--fail-on", "never")
	if code != 0 {
		t.Fatalf("archfit dockerfile %s: exit %d\n%s", path, code, errOut)
	}
	var doc struct{ Findings []dfFinding }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Findings
}

func repoOfImage(img string) string {
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		return img[:i]
	}
	return img
}

// TestDockerfileAdviceDiagnose: each Dockerfile's findings appear in the
// build advice of the image it builds, in every workload running it, and
// nowhere else.
func TestDockerfileAdviceDiagnose(t *testing.T) {
	broken, cross := dockerfileFindings(t, brokenDockerfile), dockerfileFindings(t, crossDockerfile)
	if len(broken) == 0 || len(cross) != 0 {
		t.Fatalf("the examples changed: %d findings in the broken one, %d in cross-compile", len(broken), len(cross))
	}
	args := append([]string{"diagnose"}, diagnoseExampleArgs...)
	args = append(args, "--dockerfile", "example.com/shop/cache="+brokenDockerfile,
		"--dockerfile", "example.com/shop/worker:any-tag="+crossDockerfile)
	out, errOut, code := runArchfit(t, "", append(args, "-o", "json")...)
	if code == ExitFailure {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if strings.Contains(errOut, "--dockerfile") {
		t.Errorf("unexpected warning:\n%s", errOut)
	}
	var doc dfDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]dfCheck{
		"example.com/shop/cache":  {File: brokenDockerfile, Findings: broken},
		"example.com/shop/worker": {File: crossDockerfile, Findings: []dfFinding{}},
	}
	seen := map[string]int{}
	for _, r := range doc.Remedies {
		for _, b := range r.Build {
			w, ok := want[repoOfImage(b.Image)]
			if !ok {
				if b.Dockerfiles != nil {
					t.Errorf("%s %s: a Dockerfile it was not given: %+v", r.Workload.Name, b.Image, b.Dockerfiles)
				}
				continue
			}
			seen[repoOfImage(b.Image)]++
			if len(b.Dockerfiles) != 1 {
				t.Errorf("%s %s: %d Dockerfiles, want 1", r.Workload.Name, b.Image, len(b.Dockerfiles))
				continue
			}
			got := b.Dockerfiles[0]
			if diff := cmp.Diff(w.Findings, got.Findings); got.File != w.File || diff != "" {
				t.Errorf("%s %s: file %s, findings (-want +got):\n%s", r.Workload.Name, b.Image, got.File, diff)
			}
			if len(w.Findings) == 0 && !strings.HasPrefix(got.Summary, "no finding:") {
				t.Errorf("clean Dockerfile: summary %q", got.Summary)
			}
			if wantCmd := fmt.Sprintf("docker buildx build --platform linux/amd64,linux/arm64 -f %s -t %s --push .", w.File, b.Image); !strings.Contains(got.Summary, wantCmd) {
				t.Errorf("summary %q lacks %q", got.Summary, wantCmd)
			}
		}
	}
	// cache-warmer, cache and sessions run the cache image; worker the worker one.
	if seen["example.com/shop/cache"] < 2 || seen["example.com/shop/worker"] < 1 {
		t.Errorf("advice seen per image: %v", seen)
	}

	// Text: the findings sit under the for-good line of the image they build.
	text, _, _ := runArchfit(t, "", args...)
	blocks := strings.Split(text, "\n\n")
	n := 0
	for _, b := range blocks {
		has := strings.Contains(b, brokenDockerfile+":5:")
		if has != strings.Contains(b, "for good: example.com/shop/cache:7.2") {
			t.Errorf("block with findings %v, with the cache image's advice %v:\n%s", has, !has, b)
		}
		if has {
			n++
			for _, f := range broken {
				if !strings.Contains(b, fmt.Sprintf("%s:%d: error [%s] %s", f.File, f.Line, f.Code, strings.Join(f.Evidence, " "))) {
					t.Errorf("missing %s:%d %s in\n%s", f.File, f.Line, f.Code, b)
				}
				if first := strings.SplitN(f.Fix, "\n", 2)[0]; !strings.Contains(b, first) {
					t.Errorf("missing the fix line %q", first)
				}
			}
		}
		if strings.Contains(b, "for good: example.com/shop/worker:2.3") && !strings.Contains(b, "Dockerfile: no finding: nothing in "+crossDockerfile) {
			t.Errorf("worker block lacks the clean Dockerfile's summary:\n%s", b)
		}
	}
	if n < 2 {
		t.Errorf("the findings appear in %d workload blocks, want the cache image's (>= 2)", n)
	}
}

// TestDockerfileAdviceAudit: the blockers and the remedies carry the
// findings; markdown and HTML show them.
func TestDockerfileAdviceAudit(t *testing.T) {
	broken := dockerfileFindings(t, brokenDockerfile)
	args := []string{"audit", "-f", "../../examples/cluster", "--oci-layout", "../../examples/images", "--no-cache",
		"--dockerfile", "example.com/shop/cache=" + brokenDockerfile}
	out, errOut, code := runArchfit(t, "", append(args, "-o", "json")...)
	if code == ExitFailure {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var doc dfDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range doc.Extra.Blockers {
		if b.Build == nil {
			continue
		}
		if b.Image == "example.com/shop/cache:7.2" {
			found = true
			if len(b.Build.Dockerfiles) != 1 || !cmp.Equal(b.Build.Dockerfiles[0].Findings, broken) {
				t.Errorf("blocker %s: %+v", b.Image, b.Build.Dockerfiles)
			}
		} else if b.Build.Dockerfiles != nil {
			t.Errorf("blocker %s got %+v", b.Image, b.Build.Dockerfiles)
		}
	}
	if !found {
		t.Error("no blocker for the cache image")
	}
	text, _, _ := runArchfit(t, "", args...)
	if !strings.Contains(text, "build: example.com/shop/cache:7.2 misses linux/arm64\n      Dockerfile: 4 finding(s) in "+brokenDockerfile) {
		t.Errorf("text lacks the findings under the build line:\n%s", text)
	}
	md, _, _ := runArchfit(t, "", append(args, "-o", "markdown")...)
	if !strings.Contains(md, "#### `example.com/shop/cache:7.2` built by `"+brokenDockerfile+"`") ||
		!strings.Contains(md, fmt.Sprintf("| %s:%d | error | `%s` |", broken[0].File, broken[0].Line, broken[0].Code)) {
		t.Errorf("markdown lacks the findings:\n%s", md)
	}
	html, _, _ := runArchfit(t, "", append(args, "-o", "html")...)
	if !strings.Contains(html, "Dockerfile <code>"+brokenDockerfile+"</code>: 4 finding(s)") ||
		!strings.Contains(html, fmt.Sprintf("<code>%s:%d</code>", broken[0].File, broken[0].Line)) {
		t.Error("HTML lacks the findings")
	}
}

// TestDockerfileAdvicePatch: with one workload there is one image to
// rebuild, so a bare PATH applies; the patch on stdout is unchanged.
func TestDockerfileAdvicePatch(t *testing.T) {
	base := []string{"patch", "deployment/cache-warmer", "-n", "shop", "-f", "../../examples/cluster", "--oci-layout", "../../examples/images", "--no-cache"}
	plain, _, code := runArchfit(t, "", base...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	out, errOut, code := runArchfit(t, "", append(base, "--dockerfile", brokenDockerfile)...)
	if code != 0 || out != plain {
		t.Errorf("exit %d; the patch changed:\n%s", code, out)
	}
	if !strings.Contains(errOut, "for good: rebuild example.com/shop/cache:7.2 for linux/arm64\n  Dockerfile: 4 finding(s) in "+brokenDockerfile) ||
		!strings.Contains(errOut, brokenDockerfile+":10: error [hardcoded-goarch] GOARCH=amd64") {
		t.Errorf("stderr:\n%s", errOut)
	}
	js, _, _ := runArchfit(t, "", append(base, "--dockerfile", brokenDockerfile, "-o", "json")...)
	var doc dfDoc
	if err := json.Unmarshal([]byte(js), &doc); err != nil || len(doc.Remedies) != 1 || len(doc.Remedies[0].Build) != 1 ||
		len(doc.Remedies[0].Build[0].Dockerfiles) != 1 {
		t.Errorf("json (%v):\n%s", err, js)
	}
}

func TestDockerfileAdviceWarningsAndErrors(t *testing.T) {
	args := append([]string{"diagnose"}, diagnoseExampleArgs...)
	t.Run("bare PATH with several images to rebuild", func(t *testing.T) {
		out, errOut, _ := runArchfit(t, "", append(args, "--dockerfile", brokenDockerfile, "-o", "json")...)
		if !strings.Contains(errOut, "warning: --dockerfile "+brokenDockerfile+": 4 images need a rebuild (example.com/shop/cache, example.com/shop/exporter, example.com/shop/legacy, example.com/shop/worker): say which one it builds with --dockerfile IMAGE="+brokenDockerfile) {
			t.Errorf("stderr:\n%s", errOut)
		}
		if strings.Contains(out, `"dockerfiles"`) {
			t.Error("findings attached to some image anyway")
		}
	})
	t.Run("IMAGE=PATH that matches nothing", func(t *testing.T) {
		_, errOut, code := runArchfit(t, "", append(args, "--dockerfile", "example.com/shop/api="+brokenDockerfile)...)
		if code == ExitFailure || !strings.Contains(errOut, "warning: --dockerfile example.com/shop/api="+brokenDockerfile+": no image of repository example.com/shop/api needs a rebuild here") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("a Dockerfile that does not parse fails the run after the output", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "Dockerfile")
		if err := os.WriteFile(bad, []byte("FROM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(t.TempDir(), "nope.Dockerfile")
		out, errOut, code := runArchfit(t, "", append(args, "--dockerfile", "example.com/shop/cache="+bad,
			"--dockerfile", "example.com/shop/worker="+missing, "--dockerfile", "example.com/shop/legacy="+brokenDockerfile)...)
		if code != ExitFailure {
			t.Errorf("exit %d, want %d", code, ExitFailure)
		}
		if !strings.Contains(errOut, bad) || !strings.Contains(errOut, missing) || !strings.Contains(errOut, "2 --dockerfile path(s) could not be analyzed") {
			t.Errorf("stderr does not name the broken files:\n%s", errOut)
		}
		if !strings.Contains(out, "for good: example.com/shop/legacy:3: add linux/arm64") || !strings.Contains(out, "Dockerfile: 4 finding(s) in "+brokenDockerfile) {
			t.Errorf("the rest was not printed:\n%s", out)
		}
	})
	t.Run("IMAGE that is not a reference", func(t *testing.T) {
		_, errOut, code := runArchfit(t, "", append(args, "--dockerfile", "Not A Ref="+brokenDockerfile)...)
		if code == 0 || !strings.Contains(errOut, `"Not A Ref" is not an image reference`) {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
	})
}

// TestDockerfileAdviceREADME: every line of the README's --dockerfile
// example (except "..." and the elided patches) is a line of the real
// output of the command above it, run from the repository root.
func TestDockerfileAdviceREADME(t *testing.T) {
	t.Chdir("../..")
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "#### `--dockerfile`: the Dockerfile in the build advice")
	if !ok {
		t.Fatal("README.md has no --dockerfile section")
	}
	_, block, _ := strings.Cut(section, "```\n")
	block, _, _ = strings.Cut(block, "```\n")
	var lines []string
	checked := 0
	for _, l := range strings.Split(block, "\n") {
		if cmdline, ok := strings.CutPrefix(l, "$ archfit "); ok {
			cmdline, _, _ = strings.Cut(cmdline, " > /dev/null")
			out, errOut, _ := runArchfit(t, "", append(strings.Fields(cmdline), "--no-cache")...)
			lines = strings.Split(out+errOut, "\n")
			continue
		}
		if l == "" || strings.TrimSpace(l) == "..." || strings.Contains(l, "'[...]'") {
			continue
		}
		if !slices.Contains(lines, l) {
			t.Errorf("README line is not in the output of its command:\n%s", l)
		}
		checked++
	}
	if checked < 10 {
		t.Errorf("only %d README lines checked", checked)
	}
}

// TestDockerfileAdvicePlan: the rollout's step for the image the
// Dockerfile builds is followed by what blocks it, and no other is.
func TestDockerfileAdvicePlan(t *testing.T) {
	broken := dockerfileFindings(t, brokenDockerfile)
	out, errOut, code := runArchfit(t, "", "plan", "-f", "../../examples/cluster", "--oci-layout", "../../examples/images", "--no-cache",
		"--dockerfile", "example.com/shop/cache="+brokenDockerfile, "-o", "json")
	if code == ExitFailure {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var doc struct {
		Extra struct {
			Plan struct {
				Phases []struct {
					Steps []struct{ Title, Lang, Text string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ph := range doc.Extra.Plan.Phases {
		for i, st := range ph.Steps {
			if !strings.HasPrefix(st.Title, "Dockerfile: ") {
				continue
			}
			n++
			if i == 0 || !strings.Contains(ph.Steps[i-1].Title, "example.com/shop/cache:7.2 (") {
				t.Errorf("the Dockerfile step does not follow the cache image's: %+v", ph.Steps[max(i-1, 0)])
			}
			for _, f := range broken {
				if !strings.Contains(st.Text, fmt.Sprintf("# %s:%d [%s]", f.File, f.Line, f.Code)) || !strings.Contains(st.Text, f.Fix) {
					t.Errorf("step lacks %s:%d %s:\n%s", f.File, f.Line, f.Code, st.Text)
				}
			}
			if st.Lang != "dockerfile" {
				t.Errorf("lang %q", st.Lang)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d Dockerfile steps, want 1", n)
	}
}
