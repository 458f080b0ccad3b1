package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateDockerfile = flag.Bool("update-dockerfile", false, "rewrite testdata/dockerfile-golden/*")

// checkGolden compares got with testdata/dockerfile-golden/name.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "dockerfile-golden", name)
	if *updateDockerfile {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// TestDockerfile runs `archfit dockerfile` on shipped, vendored real-world
// and crafted Dockerfiles: exit code, the findings (code@line), and for
// some the text and SARIF output against a golden file.
func TestDockerfile(t *testing.T) {
	const (
		example = "../../examples/dockerfile/Dockerfile"
		good    = "../../examples/dockerfile/cross-compile.Dockerfile"
		golang  = "testdata/dockerfile/docker-library-golang.Dockerfile"
		metrics = "testdata/dockerfile/metrics-server.Dockerfile"
		crafted = "../dockerfile/testdata/"
	)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		want   []string // code@file:line, in output order
		golden string
	}{
		{"shipped example", []string{example}, ExitFindings, []string{
			"hardcoded-platform@" + example + ":5",
			"hardcoded-goarch@" + example + ":10",
			"arch-specific-download@" + example + ":17", // 3rd line of the RUN
			"undeclared-platform-arg@" + example + ":19",
		}, "example"},
		{"clean cross-compiling Dockerfile", []string{good}, ExitOK, nil, "clean"},
		{"real world: docker-library/golang, arch from dpkg", []string{golang}, ExitOK, nil, ""},
		{"real world: metrics-server, make under QEMU", []string{metrics}, ExitOK, []string{"emulated-compile@" + metrics + ":34"}, ""},
		{"warning at --fail-on warning", []string{metrics, "--fail-on", "warning"}, ExitFindings, []string{"emulated-compile@" + metrics + ":34"}, ""},
		{"errors at --fail-on never", []string{example, "--fail-on", "never"}, ExitOK, nil, ""},
		{"a directory: its Dockerfiles", []string{"../../examples/dockerfile"}, ExitFindings, nil, ""},
		{"crafted: download in a heredoc", []string{crafted + "heredoc-download.Dockerfile"}, ExitFindings,
			[]string{"arch-specific-download@" + crafted + "heredoc-download.Dockerfile:7"}, ""},
		{"crafted: x64 URL on line 4 of a RUN", []string{crafted + "node-download-x64.Dockerfile"}, ExitFindings,
			[]string{"arch-specific-download@" + crafted + "node-download-x64.Dockerfile:7"}, ""},
		{"crafted: $BUILDPLATFORM stage without TARGETARCH", []string{crafted + "go-buildplatform-without-target.Dockerfile"}, ExitFindings,
			[]string{"cross-compile-without-target@" + crafted + "go-buildplatform-without-target.Dockerfile:6"}, ""},
		{"crafted: arch-pinned packages", []string{crafted + "apt-foreign-arch.Dockerfile", "--fail-on", "never"}, ExitOK, []string{
			"arch-specific-package@" + crafted + "apt-foreign-arch.Dockerfile:5", // libc6:amd64; JSON: errors first
			"arch-specific-package@" + crafted + "apt-foreign-arch.Dockerfile:5", // libstdc++6:i386
			"arch-specific-package@" + crafted + "apt-foreign-arch.Dockerfile:3",
			"emulated-compile@" + crafted + "apt-foreign-arch.Dockerfile:7",
		}, ""},
		{"crafted: final stage on $BUILDPLATFORM", []string{crafted + "final-stage-buildplatform.Dockerfile"}, ExitFindings,
			[]string{"build-platform-final-stage@" + crafted + "final-stage-buildplatform.Dockerfile:8"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runArchfit(t, "", append([]string{"dockerfile", "-o", "json"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			var doc struct {
				Kind     string
				Findings []struct {
					Code, File string
					Line       int
					Evidence   []string
					Message    string
					Fix        string
				}
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Kind != "DockerfileAnalysis" {
				t.Fatalf("kind %q (%v):\n%s", doc.Kind, err, out)
			}
			if tc.want != nil || tc.code == ExitOK && !strings.Contains(tc.name, "never") {
				var got []string
				for _, f := range doc.Findings {
					got = append(got, f.Code+"@"+f.File+":"+itoa(f.Line))
					if len(f.Evidence) != 1 || f.Message == "" || f.Fix == "" {
						t.Errorf("%s: incomplete finding %+v", f.Code, f)
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("findings (-want +got):\n%s", diff)
				}
			}
			if tc.golden == "" {
				return
			}
			for _, format := range []string{"text", "sarif"} {
				out, _, _ := runArchfit(t, "", append([]string{"dockerfile", "-o", format}, tc.args...)...)
				checkGolden(t, tc.golden+"."+format, out)
			}
		})
	}
}

// TestDockerfileBrokenInput: a file that cannot be analyzed is named with
// its line on stderr and fails the run (exit 1), but the other files are
// still analyzed and printed.
func TestDockerfileBrokenInput(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.Dockerfile")
	if err := os.WriteFile(broken, []byte("FROM alpine\nRUN <<EOF\necho never closed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.Dockerfile")
	if err := os.WriteFile(big, []byte("FROM alpine\n"+strings.Repeat("#\n", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runArchfit(t, "", "dockerfile", broken, "../../examples/dockerfile/Dockerfile", big, filepath.Join(dir, "missing"))
	if code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	for _, want := range []string{broken + ":2: unterminated heredoc", big + ": larger than 1 MiB", "missing", "3 Dockerfile path(s) could not be analyzed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "examples/dockerfile/Dockerfile:5: error [hardcoded-platform]") {
		t.Errorf("the good file was not analyzed:\n%s", out)
	}
}

func TestDockerfileUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"dockerfile"},
		{"dockerfile", "-o", "xml", "../../examples/dockerfile"},
		{"dockerfile", "--fail-on", "critical", "../../examples/dockerfile"},
		{"dockerfile", t.TempDir()}, // no Dockerfile in it
	} {
		if _, errOut, code := runArchfit(t, "", args...); code != ExitFailure || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want %d and a message", args, code, errOut, ExitFailure)
		}
	}
}

// TestDockerfileSARIF: code scanning gets rule metadata (help, default
// level) and a physical location for every result.
func TestDockerfileSARIF(t *testing.T) {
	out, _, _ := runArchfit(t, "", "dockerfile", "-o", "sarif", "../../examples/dockerfile/Dockerfile")
	var doc struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID                   string
						Help                 struct{ Text string }
						DefaultConfiguration struct{ Level string }
					}
				}
			}
			Results []struct {
				RuleID    string
				Level     string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Runs) != 1 {
		t.Fatalf("%v:\n%s", err, out)
	}
	levels := map[string]string{}
	for _, r := range doc.Runs[0].Tool.Driver.Rules {
		if r.Help.Text == "" {
			t.Errorf("rule %s has no help text", r.ID)
		}
		levels[r.ID] = r.DefaultConfiguration.Level
	}
	if levels["hardcoded-platform"] != "error" || levels["emulated-compile"] != "warning" {
		t.Errorf("default levels %v", levels)
	}
	res := doc.Runs[0].Results
	if len(res) != 4 {
		t.Fatalf("%d results, want 4", len(res))
	}
	for _, r := range res {
		pl := r.Locations[0].PhysicalLocation
		if pl.ArtifactLocation.URI != "../../examples/dockerfile/Dockerfile" || pl.Region.StartLine == 0 {
			t.Errorf("%s: location %+v", r.RuleID, pl)
		}
	}
}

// TestDockerfileREADME: the README shows the real output of the command
// it names, run from the repository root.
func TestDockerfileREADME(t *testing.T) {
	t.Chdir("../..")
	out, _, code := runArchfit(t, "", "dockerfile", "examples/dockerfile/Dockerfile")
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := "$ archfit dockerfile examples/dockerfile/Dockerfile\n" + out + "$ echo $?\n" + itoa(code) + "\n"
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md does not show this output of `archfit dockerfile examples/dockerfile/Dockerfile`:\n%s", block)
	}
	// --check-base on the example layout (stdout; stderr has timings).
	args := []string{"dockerfile", "examples/dockerfile/extends-legacy.Dockerfile", "--check-base", "--oci-layout", "examples/images"}
	out, _, code = runArchfit(t, "", append(args, "--no-cache")...)
	block = "$ archfit " + strings.Join(args, " ") + "\n" + out + "$ echo $?\n" + itoa(code) + "\n"
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md does not show this output of `archfit %s`:\n%s", strings.Join(args, " "), block)
	}
}

// TestDockerfileMarkdown: a ticket gets each finding's file:line and its
// rewritten lines as a dockerfile block.
func TestDockerfileMarkdown(t *testing.T) {
	out, _, code := runArchfit(t, "", "dockerfile", "-o", "markdown", "../../examples/dockerfile/Dockerfile")
	if code != ExitFindings {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{
		"## archfit dockerfile analysis",
		"| error | `hardcoded-platform` | ../../examples/dockerfile/Dockerfile:5 |",
		"### `hardcoded-goarch` ../../examples/dockerfile/Dockerfile:10",
		"```dockerfile\nARG TARGETOS TARGETARCH\nRUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \\\n```",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}
