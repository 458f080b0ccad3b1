package dockerfile

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// render is the golden form: one line per base image and per finding.
func render(a *Analysis) string {
	var b strings.Builder
	for _, bi := range a.BaseImages {
		fmt.Fprintf(&b, "base %d %s", bi.Line, bi.Ref)
		if bi.Stage != "" {
			fmt.Fprintf(&b, " stage=%s", bi.Stage)
		}
		if bi.Platform != "" {
			fmt.Fprintf(&b, " platform=%s", bi.Platform)
		}
		if bi.Unresolved {
			b.WriteString(" unresolved")
		}
		if bi.Final {
			b.WriteString(" final")
		}
		b.WriteByte('\n')
	}
	for _, f := range a.Findings {
		fmt.Fprintf(&b, "%s %s %s %q\n    %s\n", f.Position(), f.Severity, f.Code, f.Evidence[0], f.Message)
		for _, l := range strings.Split(f.Fix, "\n") {
			fmt.Fprintf(&b, "    fix: %s\n", l)
		}
	}
	return b.String()
}

func TestAnalyze(t *testing.T) {
	files, err := filepath.Glob("testdata/*.Dockerfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Dockerfiles: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".Dockerfile"), func(t *testing.T) {
			a, err := AnalyzeFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := render(a)
			golden := strings.TrimSuffix(file, ".Dockerfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestCompileStep(t *testing.T) {
	tests := []struct {
		script, needle, lang string
		toolchain            bool
	}{
		{"CGO_ENABLED=0 go build ./...", "go build", "go", false},
		{"go mod download", "", "", false},
		{"apt-get update && apt-get install -y make gcc", "", "", false},
		{"cd /src && ./configure && make", "./configure", "c", false},
		{"cargo build --release", "cargo build", "rust", false},
		{"npm ci", "", "", false},
		{"npm ci --omit=dev", "npm ci", "node", true},
		{"yarn", "yarn", "node", true},
		{"echo go build", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			needle, lang := compileStep(tt.script, tt.toolchain)
			if needle != tt.needle || lang != tt.lang {
				t.Errorf("compileStep = %q, %q; want %q, %q", needle, lang, tt.needle, tt.lang)
			}
		})
	}
}

func TestAnalyzeErrors(t *testing.T) {
	if _, err := AnalyzeFile("testdata/does-not-exist"); err == nil {
		t.Error("AnalyzeFile of a missing file: want an error")
	}
	if _, err := Analyze("empty", strings.NewReader("# nothing\n")); err == nil {
		t.Error("a Dockerfile with no instruction: want an error")
	}
	for _, tc := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"unterminated heredoc", "FROM alpine\nRUN <<EOF\necho hi\n", 2, "unterminated heredoc"},
		{"unknown instruction", "FROM alpine\nRUN true\nFORM alpine\n", 3, `unknown instruction "FORM"`},
		{"FROM without image", "# x\nFROM\n", 2, "FROM needs an image"},
		{"ENV without value", "FROM alpine\nENV A\n", 2, "ENV must have two arguments"},
		{"binary", "FROM alpine\nRUN \x00\x01\n", 2, "NUL byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Analyze("bad/Dockerfile", strings.NewReader(tc.src))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *ParseError", err)
			}
			if pe.File != "bad/Dockerfile" || pe.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v (%q), want line %d and %q", pe, err, tc.line, tc.want)
			}
			if want := fmt.Sprintf("bad/Dockerfile:%d:", tc.line); !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not name %s", err, want)
			}
		})
	}
	big := "FROM alpine\n" + strings.Repeat("# padding\n", MaxSize/10)
	if _, err := Analyze("big", strings.NewReader(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a Dockerfile over 1 MiB: %v, want ErrTooLarge", err)
	}
	a, err := Analyze("args-only", strings.NewReader("ARG X=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Findings) != 0 || len(a.BaseImages) != 0 {
		t.Errorf("a Dockerfile without FROM: %+v", a)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"Dockerfile", "api.Dockerfile", "Dockerfile.prod", "Containerfile", "README.md", "Dockerfile.golden.txt.bak"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("FROM alpine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "Dockerfile.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, filepath.Base(g))
	}
	want := []string{"Containerfile", "Dockerfile", "Dockerfile.golden.txt.bak", "Dockerfile.prod", "api.Dockerfile"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if got, err := Files(filepath.Join(dir, "README.md")); err != nil || len(got) != 1 {
		t.Errorf("a file given by name is analyzed whatever its name: %v %v", got, err)
	}
	if _, err := Files(t.TempDir()); !errors.Is(err, ErrNoDockerfile) {
		t.Errorf("empty directory: %v, want ErrNoDockerfile", err)
	}
	if _, err := Files(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path: no error")
	}
}

// TestLineInsideMultiLineRun: a finding is on the line of the offending
// text, not on the RUN's first line.
func TestLineInsideMultiLineRun(t *testing.T) {
	src := "FROM debian:12\n" + // 1
		"RUN apt-get update \\\n" + // 2
		" && apt-get install -y curl \\\n" + // 3
		" && curl -fsSLo /k https://dl.k8s.io/release/v1.30.2/bin/linux/amd64/kubectl \\\n" + // 4
		" && CGO_ENABLED=0 GOARCH=arm64 \\\n" + // 5
		"    go build ./...\n" // 6
	a, err := Analyze("Dockerfile", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range a.Findings {
		got[f.Code] = f.Line
	}
	want := map[string]int{"arch-specific-download": 4, "hardcoded-goarch": 5, "emulated-compile": 6}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}
