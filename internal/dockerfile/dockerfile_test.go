package dockerfile

import (
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
		fmt.Fprintf(&b, "%s %s %s %q\n    %s\n    fix: %s\n", f.Position(), f.Severity, f.Rule, f.Evidence, f.Message, f.Fix)
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
	a, err := Analyze("args-only", strings.NewReader("ARG X=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Findings) != 0 || len(a.BaseImages) != 0 {
		t.Errorf("a Dockerfile without FROM: %+v", a)
	}
}
