package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The tools are pinned in the Makefile (`make release-tools`), built from
// the Go module proxy into ~/.cache/archfit-tools; pre-commit is Debian's.
// `make test` sets ARCHFIT_RELEASE_TOOLS=required: there a missing tool is
// a failure, elsewhere (go test ./... by hand) the test is skipped.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if dir := os.Getenv("ARCHFIT_TOOLS_BIN"); dir != "" {
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	if os.Getenv("ARCHFIT_RELEASE_TOOLS") == "required" {
		t.Fatalf("%s is not installed (make release-tools; pre-commit is the Debian package)", name)
	}
	t.Skipf("%s is not installed (make release-tools)", name)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func must(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// repoRoot is the checkout this test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// snapshotRepo commits the checkout's tracked files, as they are in the
// work tree, to a new git repository: pre-commit installs a hook from a
// repository at a revision, and this one holds exactly what is being
// tested, edits included.
func snapshotRepo(t *testing.T) (dir, rev string) {
	t.Helper()
	root := repoRoot(t)
	files := must(t, root, nil, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	dir = t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(files, "\x00"), "\x00") {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	git := []string{"-c", "user.name=archfit test", "-c", "user.email=test@archfit.invalid", "-c", "commit.gpgsign=false"}
	must(t, dir, nil, "git", "init", "-q")
	must(t, dir, nil, "git", "add", "-A")
	must(t, dir, nil, "git", append(git, "commit", "-qm", "snapshot")...)
	return dir, strings.TrimSpace(must(t, dir, nil, "git", "rev-parse", "HEAD"))
}

// TestPreCommitHook installs the archfit-dockerfile hook of
// .pre-commit-hooks.yaml with the real pre-commit into a throwaway
// repository and runs it: it fails the commit on the shipped broken
// Dockerfile with archfit's findings, passes the fixed one, and is not
// given files that are not Dockerfiles.
func TestPreCommitHook(t *testing.T) {
	if testing.Short() {
		t.Skip("builds archfit through pre-commit")
	}
	preCommit := tool(t, "pre-commit")
	hookRepo, rev := snapshotRepo(t)
	root := repoRoot(t)

	work := t.TempDir()
	must(t, work, nil, "git", "init", "-q")
	cfg := fmt.Sprintf("repos:\n- repo: %s\n  rev: %s\n  hooks:\n  - id: archfit-dockerfile\n", hookRepo, rev)
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write(".pre-commit-config.yaml", cfg)
	write("svc/Dockerfile", read("examples/dockerfile/Dockerfile"))
	// Named like Dockerfiles but not: the hook must not hand them over
	// (archfit would fail to parse them).
	write("docs/Dockerfile.md", "# How we build\n\nSee `svc/Dockerfile`.\n")
	write("svc/.dockerignore", "*.tmp\n")
	must(t, work, nil, "git", "add", "-A")

	gomodcache := strings.TrimSpace(must(t, root, nil, "go", "env", "GOMODCACHE"))
	env := []string{
		"PRE_COMMIT_HOME=" + t.TempDir(),
		// pre-commit builds the hook with GOPATH in its own directory; the
		// module cache stays the machine's, so nothing is downloaded twice.
		"GOMODCACHE=" + gomodcache, "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local",
	}
	out, err := run(t, work, env, preCommit, "run", "--all-files", "--color", "never")
	if err == nil {
		t.Fatalf("pre-commit passed a Dockerfile with four errors:\n%s", out)
	}
	for _, want := range []string{
		"archfit dockerfile",
		"Failed",
		"svc/Dockerfile:5: error [hardcoded-platform]",
		"svc/Dockerfile:10: error [hardcoded-goarch]",
		"4 finding(s): 4 error, 0 warning",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pre-commit output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Dockerfile.md") || strings.Contains(out, "dockerignore") {
		t.Errorf("the hook was given a file that is not a Dockerfile:\n%s", out)
	}

	write("svc/Dockerfile", read("examples/dockerfile/cross-compile.Dockerfile"))
	must(t, work, nil, "git", "add", "-A")
	out, err = run(t, work, env, preCommit, "run", "--all-files", "--color", "never")
	if err != nil || !regexp.MustCompile(`archfit dockerfile\.+Passed`).MatchString(out) {
		t.Errorf("pre-commit on the fixed Dockerfile: %v\n%s", err, out)
	}
}

// TestKrewManifest fills in .krew.yaml as krew-release-bot does for a tag,
// checks it with krew's own validate-krew-manifest, and installs the
// plugin with the real krew from an archive laid out as .goreleaser.yaml
// lays it out (binary, LICENSE, README.md), then runs it as kubectl runs
// plugins. Only this machine's platform is installed; the other platforms'
// sha256 are of placeholder bytes, which the validator does not download.
func TestKrewManifest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds archfit")
	}
	validate := tool(t, "validate-krew-manifest")
	krew := tool(t, "krew")
	root := repoRoot(t)
	tmp := t.TempDir()

	bin := filepath.Join(tmp, "build", "archfit")
	// No -trimpath: the test reuses the build cache of the other tests.
	must(t, root, nil, "go", "build", "-ldflags", "-X github.com/archfit/archfit/internal/cli.version=v0.0.1", "-o", bin, "./cmd/archfit")
	archive := filepath.Join(tmp, fmt.Sprintf("archfit_%s_%s.tar.gz", runtime.GOOS, runtime.GOARCH))
	writeTarGz(t, archive, map[string]string{"archfit": bin, "LICENSE": filepath.Join(root, "LICENSE"), "README.md": filepath.Join(root, "README.md")})

	tmpl, err := os.ReadFile(filepath.Join(root, ".krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const tag = "v0.0.1"
	manifest := fillKrewTemplate(t, string(tmpl), tag, func(uri string) string {
		if strings.HasSuffix(uri, "/"+filepath.Base(archive)) {
			return sha256File(t, archive)
		}
		sum := sha256.Sum256([]byte(uri))
		return hex.EncodeToString(sum[:])
	})
	// validate-krew-manifest wants the file named after the plugin.
	mpath := filepath.Join(tmp, "archfit.yaml")
	if err := os.WriteFile(mpath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, tmp, nil, validate, "-manifest", mpath, "-skip-install"); err != nil {
		t.Fatalf("validate-krew-manifest: %v\n%s\n%s", err, out, manifest)
	}

	krewRoot := filepath.Join(tmp, "krew")
	env := []string{"KREW_ROOT=" + krewRoot, "KREW_NO_UPGRADE_CHECK=1"}
	if out, err := run(t, tmp, env, krew, "install", "--manifest", mpath, "--archive", archive); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	plugin := filepath.Join(krewRoot, "bin", "kubectl-archfit")
	out := must(t, tmp, nil, plugin, "version")
	if !strings.Contains(out, tag) {
		t.Errorf("kubectl-archfit version: %q, want %s", out, tag)
	}
	// kubectl runs a plugin by its name: archfit then speaks as kubectl
	// archfit in its help.
	if out := must(t, tmp, nil, plugin, "--help"); !strings.Contains(out, "kubectl archfit") {
		t.Errorf("kubectl-archfit --help does not say `kubectl archfit`:\n%s", out)
	}
	// A wrong sha256 is refused: the check above is not vacuous.
	bad := strings.Replace(manifest, sha256File(t, archive), strings.Repeat("0", 64), 1)
	if err := os.WriteFile(mpath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, tmp, []string{"KREW_ROOT=" + filepath.Join(tmp, "krew2"), "KREW_NO_UPGRADE_CHECK=1"}, krew, "install", "--manifest", mpath, "--archive", archive); err == nil {
		t.Errorf("krew installed an archive whose sha256 the manifest does not name:\n%s", out)
	}
}

// fillKrewTemplate does what krew-release-bot does with .krew.yaml: the
// tag for {{ .TagName }}, and `uri:`/`sha256:` lines for each
// {{addURIAndSha "URL" .TagName }}.
func fillKrewTemplate(t *testing.T, tmpl, tag string, sum func(uri string) string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^( *)\{\{\s*addURIAndSha "([^"]+)" \.TagName\s*\}\}$`)
	n := 0
	out := re.ReplaceAllStringFunc(tmpl, func(m string) string {
		sub := re.FindStringSubmatch(m)
		uri := strings.ReplaceAll(sub[2], "{{ .TagName }}", tag)
		n++
		return fmt.Sprintf("%suri: %s\n%ssha256: %s", sub[1], uri, sub[1], sum(uri))
	})
	if n != 6 {
		t.Fatalf(".krew.yaml has %d addURIAndSha lines, want 6 (linux, darwin, windows x amd64, arm64)", n)
	}
	out = strings.ReplaceAll(out, "{{ .TagName }}", tag)
	if strings.Contains(out, "{{") {
		t.Fatalf(".krew.yaml holds a template action krew-release-bot would not fill:\n%s", out)
	}
	return out
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		mode := int64(0o644)
		if name == "archfit" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGoReleaserConfig runs `goreleaser check` on .goreleaser.yaml, and
// checks that its archive names are the ones .krew.yaml downloads.
func TestGoReleaserConfig(t *testing.T) {
	goreleaser := tool(t, "goreleaser")
	root := repoRoot(t)
	if out, err := run(t, root, nil, goreleaser, "check", "--config", ".goreleaser.yaml"); err != nil {
		t.Fatalf("goreleaser check: %v\n%s", err, out)
	}
	cfg, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// goreleaser check refuses a field it does not know: the pass above
	// means something.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, bytes.Replace(cfg, []byte("formats: [tar.gz]"), []byte("formatz: [tar.gz]"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, root, nil, goreleaser, "check", "--config", bad); err == nil {
		t.Errorf("goreleaser check passed a configuration with an unknown field:\n%s", out)
	}
	if !strings.Contains(string(cfg), `name_template: "{{ .ProjectName }}_{{ .Os }}_{{ .Arch }}"`) {
		t.Errorf(".goreleaser.yaml archive name_template changed: update .krew.yaml's URLs and this test")
	}
	krew, err := os.ReadFile(filepath.Join(root, ".krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, os := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			ext := ".tar.gz"
			if os == "windows" {
				ext = ".zip"
			}
			if name := "archfit_" + os + "_" + arch + ext; !strings.Contains(string(krew), "/"+name+`"`) {
				t.Errorf(".krew.yaml does not download %s", name)
			}
		}
	}
}

// TestGitHubActionsExample runs the archfit commands of
// examples/ci/github-actions.yml as written (the step's shell, the job's
// env pointed at the shipped examples, the registries unreachable as on
// an offline runner): the SARIF steps succeed and write SARIF with
// physical locations, and the gate fails the deliberately broken examples.
func TestGitHubActionsExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds archfit")
	}
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "examples/ci/github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Env   map[string]string `json:"env"`
			Steps []struct {
				Name string `json:"name"`
				Run  string `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	job, ok := wf.Jobs["archfit"]
	if !ok || job.Env["DOCKERFILES"] == "" || job.Env["MANIFESTS"] == "" {
		t.Fatalf("workflow: want job archfit with env DOCKERFILES and MANIFESTS: %+v", wf)
	}
	binDir := filepath.Join(t.TempDir(), "bin")
	must(t, root, nil, "go", "build", "-o", filepath.Join(binDir, "archfit"), "./cmd/archfit")
	work := t.TempDir()
	env := []string{
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"DOCKERFILES=" + filepath.Join(root, "examples/dockerfile"),
		"MANIFESTS=" + filepath.Join(root, "examples/manifests"),
		"XDG_CACHE_HOME=" + t.TempDir(),
		// GitHub's runners run `run:` with bash -e; no registry answers
		// here: the closed port makes that certain on a machine with network.
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=",
	}
	ran := 0
	for _, step := range job.Steps {
		if !strings.Contains(step.Run, "archfit ") || strings.Contains(step.Run, "go install") {
			continue
		}
		ran++
		out, err := run(t, work, env, "bash", "-e", "-c", step.Run)
		switch step.Name {
		case "Gate":
			if err == nil {
				t.Errorf("gate passed the broken examples:\n%s", out)
			}
		default:
			if err != nil {
				t.Errorf("step %q: %v\n%s", step.Name, err, out)
			}
		}
	}
	if ran != 3 {
		t.Fatalf("ran %d archfit steps, want 3 (two SARIF, one gate)", ran)
	}
	for _, f := range []string{"archfit-dockerfile.sarif", "archfit-audit.sarif"} {
		b, err := os.ReadFile(filepath.Join(work, f))
		if err != nil {
			t.Fatal(err)
		}
		var sarif struct {
			Version string `json:"version"`
			Runs    []struct {
				Results []struct {
					Locations []struct {
						PhysicalLocation *struct {
							ArtifactLocation struct {
								URI string `json:"uri"`
							} `json:"artifactLocation"`
						} `json:"physicalLocation"`
					} `json:"locations"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(b, &sarif); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sarif.Version != "2.1.0" || len(sarif.Runs) != 1 || len(sarif.Runs[0].Results) == 0 {
			t.Errorf("%s: want SARIF 2.1.0 with results: %s", f, b)
			continue
		}
		if f == "archfit-dockerfile.sarif" {
			r := sarif.Runs[0].Results[0]
			if len(r.Locations) == 0 || r.Locations[0].PhysicalLocation == nil || !strings.Contains(r.Locations[0].PhysicalLocation.ArtifactLocation.URI, "Dockerfile") {
				t.Errorf("%s: first result has no physical location in a Dockerfile: %+v", f, r)
			}
		}
	}
}
