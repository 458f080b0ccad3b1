package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writeTree writes files (slash-separated names relative to dir) and
// returns dir.
func writeTree(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const chartYAML = "apiVersion: v2\nname: evil\nversion: 0.1.0\n"

// loopingChart has a template that takes seconds (3*10^7 iterations that
// print nothing): far longer than the tests wait, short enough that the
// abandoned renders do not slow the rest of the tests for long.
func loopingChart(t *testing.T) string {
	return writeTree(t, t.TempDir(), map[string]string{
		"Chart.yaml":          chartYAML,
		"templates/loop.yaml": "{{- range until 3000 }}{{- range until 10000 }}{{- end }}{{- end }}\n",
	})
}

func TestHelmChartLoopCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := HelmChart(ctx, loopingChart(t), nil, nil, "", "")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// counter is a loopback server that counts the requests it gets: none
// should arrive.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestHelmChartFilesOutside(t *testing.T) {
	outside := writeTree(t, t.TempDir(), map[string]string{"secret.txt": "host-secret", "dir/secret.txt": "host-secret"})
	getSecret := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  s: {{ .Files.Get \"secret.txt\" | quote }}\n  d: {{ .Files.Get \"files/secret.txt\" | quote }}\n"
	for _, tc := range []struct {
		name string
		link string // chart path of the symlink
		to   string
	}{
		{"file symlink", "secret.txt", filepath.Join(outside, "secret.txt")},
		{"relative file symlink", "secret.txt", "../../" + filepath.Base(outside) + "/secret.txt"},
		{"directory symlink", "files", filepath.Join(outside, "dir")},
		{"symlink in a subchart", "charts/sub/secret.txt", filepath.Join(outside, "secret.txt")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chart := writeTree(t, filepath.Join(t.TempDir(), "c", "evil"), map[string]string{
				"Chart.yaml":            chartYAML,
				"templates/cm.yaml":     getSecret,
				"charts/sub/Chart.yaml": "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
			})
			if tc.name == "relative file symlink" {
				// ../../<outside>/secret.txt from chart/ needs outside next to c/.
				tc.to = filepath.Join(outside, "secret.txt")
				rel, err := filepath.Rel(chart, tc.to)
				if err != nil {
					t.Fatal(err)
				}
				tc.to = rel
			}
			if err := os.Symlink(tc.to, filepath.Join(chart, filepath.FromSlash(tc.link))); err != nil {
				t.Fatal(err)
			}
			out, err := HelmChart(context.Background(), chart, nil, nil, "", "")
			if bytes.Contains(out, []byte("host-secret")) {
				t.Fatalf("rendered a host file:\n%s", out)
			}
			if err == nil || !strings.Contains(err.Error(), "outside the chart") || !strings.Contains(err.Error(), filepath.Base(tc.link)) {
				t.Errorf("error %v, want one naming %s as outside the chart", err, tc.link)
			}
		})
	}
}

// TestHelmChartSymlinkInside: a link to another file of the chart is what
// helm reads too; it is allowed.
func TestHelmChartSymlinkInside(t *testing.T) {
	chart := writeTree(t, filepath.Join(t.TempDir(), "evil"), map[string]string{
		"Chart.yaml":        chartYAML,
		"real.txt":          "in-chart",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  s: {{ .Files.Get \"link.txt\" | quote }}\n",
	})
	if err := os.Symlink("real.txt", filepath.Join(chart, "link.txt")); err != nil {
		t.Fatal(err)
	}
	out, err := HelmChart(context.Background(), chart, nil, nil, "", "")
	if err != nil || !bytes.Contains(out, []byte("in-chart")) {
		t.Errorf("error %v, output:\n%s", err, out)
	}
}

// tgz packs entries (name -> content; a value starting with "->" is a
// symlink target) into a chart archive.
func tgz(t *testing.T, entries [][2]string) string {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg}
		if target, ok := strings.CutPrefix(e[1], "->"); ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e[1]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	p := filepath.Join(t.TempDir(), "evil-0.1.0.tgz")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHelmChartArchiveOutside(t *testing.T) {
	secret := writeTree(t, t.TempDir(), map[string]string{"secret.txt": "host-secret"})
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  s: {{ .Files.Get \"secret.txt\" | quote }}\n"
	for _, tc := range []struct {
		name  string
		entry [2]string
		want  string // in the error; "" for no error
	}{
		{"parent directory", [2]string{"evil/../../secret.txt", "x"}, "parent directory"},
		{"absolute path", [2]string{"evil//etc/secret.txt", "x"}, "absolute path"},
		// A symlink entry is loaded as an empty file: the host is not read.
		{"symlink entry", [2]string{"evil/secret.txt", "->" + filepath.Join(secret, "secret.txt")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tgz(t, [][2]string{{"evil/Chart.yaml", chartYAML}, {"evil/templates/cm.yaml", cm}, tc.entry})
			out, err := HelmChart(context.Background(), p, nil, nil, "", "")
			if bytes.Contains(out, []byte("host-secret")) {
				t.Fatalf("rendered a host file:\n%s", out)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// A values schema that refers to other documents would make Helm fetch
// them over HTTP or read them from the host.
func TestHelmChartSchemaRefs(t *testing.T) {
	srv, requests := counter(t)
	secret := writeTree(t, t.TempDir(), map[string]string{"schema.json": `{"type": "object"}`})
	for _, ref := range []string{
		srv.URL + "/schema.json",
		"file://" + filepath.ToSlash(filepath.Join(secret, "schema.json")),
		"other.json",
	} {
		t.Run(ref, func(t *testing.T) {
			chart := writeTree(t, filepath.Join(t.TempDir(), "evil"), map[string]string{
				"Chart.yaml":         chartYAML,
				"values.schema.json": `{"type": "object", "properties": {"a": {"$ref": "` + ref + `"}}}`,
				"templates/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
			})
			_, err := HelmChart(context.Background(), chart, nil, nil, "", "")
			if err == nil || !strings.Contains(err.Error(), "values.schema.json") || !strings.Contains(err.Error(), "refers to") {
				t.Errorf("error %v, want a refused reference", err)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d request(s) to the schema server, want none", n)
	}
	// A schema without references is still checked.
	chart := writeTree(t, filepath.Join(t.TempDir(), "evil"), map[string]string{
		"Chart.yaml":         chartYAML,
		"values.yaml":        "a: 1\n",
		"values.schema.json": `{"type": "object", "properties": {"a": {"$ref": "#/$defs/s"}}, "$defs": {"s": {"type": "string"}}}`,
		"templates/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
	})
	if _, err := HelmChart(context.Background(), chart, nil, nil, "", ""); err == nil || !strings.Contains(err.Error(), "want string") {
		t.Errorf("error %v, want a schema violation", err)
	}
}

func TestKustomizeRemote(t *testing.T) {
	srv, requests := counter(t)
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
	for _, tc := range []struct {
		name, kustomization, want string
	}{
		{"https resource", "resources:\n- " + srv.URL + "/deploy.yaml\n", srv.URL + "/deploy.yaml"},
		{"git base", "resources:\n- git::" + srv.URL + "/org/repo.git//base?ref=main\n", "git::" + srv.URL},
		{"deprecated bases", "bases:\n- " + srv.URL + "/org/repo//base\n", srv.URL},
		{"github shorthand", "resources:\n- github.com/org/repo/base?ref=v1\n", "github.com/org/repo"},
		{"scp style", "components:\n- git@127.0.0.1:org/repo.git\n", "git@127.0.0.1"},
		{"remote patch", "resources:\n- deploy.yaml\npatches:\n- path: " + srv.URL + "/p.yaml\n", srv.URL + "/p.yaml"},
		{"remote configMap file", "resources:\n- deploy.yaml\nconfigMapGenerator:\n- name: c\n  files:\n  - k=" + srv.URL + "/f\n", srv.URL + "/f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, t.TempDir(), map[string]string{"kustomization.yaml": tc.kustomization, "deploy.yaml": deploy})
			_, err := Kustomize(context.Background(), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--allow-remote-resources") {
				t.Errorf("error %v, want one naming %s and --allow-remote-resources", err, tc.want)
			}
		})
	}
	// A remote resource of a local base is refused too.
	dir := writeTree(t, t.TempDir(), map[string]string{
		"overlay/kustomization.yaml": "resources:\n- ../base\n",
		"base/kustomization.yaml":    "resources:\n- " + srv.URL + "/deploy.yaml\n",
	})
	if _, err := Kustomize(context.Background(), filepath.Join(dir, "overlay")); err == nil || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("remote resource of a base: error %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d request(s) to the remote server, want none", n)
	}
}

func TestKustomizeHelmCharts(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"kustomization.yaml": "helmCharts:\n- name: web\n  repo: https://charts.example.com\n  version: 1.0.0\n",
	})
	_, err := Kustomize(context.Background(), dir)
	if err == nil || strings.Contains(err.Error(), "--enable-helm") || !strings.Contains(err.Error(), filepath.Join(dir, "kustomization.yaml")+" inflates Helm charts (helmCharts: web)") ||
		!strings.Contains(err.Error(), "--helm-chart") {
		t.Errorf("error %v, want one that names helmCharts and no flag archfit lacks", err)
	}
}

func TestHelmChartLimits(t *testing.T) {
	_, err := HelmChart(context.Background(), loopingChart(t), nil, nil, "", "", WithTimeout(50*time.Millisecond))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("looping chart: error %v, want ErrTimeout", err)
	}
	big := writeTree(t, t.TempDir(), map[string]string{
		"Chart.yaml":         chartYAML,
		"templates/big.yaml": "# {{ repeat 200000 \"x\" }}\n",
	})
	if _, err := HelmChart(context.Background(), big, nil, nil, "", "", WithMaxOutput(100_000)); !errors.Is(err, ErrOutputTooLarge) {
		t.Errorf("200 kB output, limit 100 kB: error %v, want ErrOutputTooLarge", err)
	}
	if _, err := HelmChart(context.Background(), big, nil, nil, "", ""); err != nil {
		t.Errorf("200 kB output, default limit: %v", err)
	}
	// A template that prints in a loop is stopped by the memory it takes
	// before it ends (here it would print 100 MB).
	bomb := writeTree(t, t.TempDir(), map[string]string{
		"Chart.yaml":          chartYAML,
		"templates/bomb.yaml": "{{- range until 10000 }}{{ repeat 10000 \"x\" }}{{- end }}\n",
	})
	if _, err := HelmChart(context.Background(), bomb, nil, nil, "", "", WithMaxOutput(1<<20)); !errors.Is(err, ErrOutputTooLarge) || !strings.Contains(fmt.Sprint(err), "of memory") {
		t.Errorf("100 MB output in a loop, limit 1 MiB: error %v, want ErrOutputTooLarge for the memory taken", err)
	}
}

// A link to a directory of the chart itself would make Helm's loader walk
// it again and again.
func TestHelmChartDirectoryLink(t *testing.T) {
	chart := writeTree(t, filepath.Join(t.TempDir(), "evil"), map[string]string{"Chart.yaml": chartYAML, "templates/a.yaml": ""})
	if err := os.Symlink("..", filepath.Join(chart, "templates", "loop")); err != nil {
		t.Fatal(err)
	}
	if _, err := HelmChart(context.Background(), chart, nil, nil, "", ""); err == nil || !strings.Contains(err.Error(), "templates/loop") {
		t.Errorf("error %v, want templates/loop refused", err)
	}
}

func TestKustomizeAllowRemote(t *testing.T) {
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: remote-web\n"
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte(deploy))
	}))
	defer srv.Close()
	dir := writeTree(t, t.TempDir(), map[string]string{"kustomization.yaml": "resources:\n- " + srv.URL + "/deploy.yaml\n"})
	out, err := Kustomize(context.Background(), dir, AllowRemote(true))
	if err != nil || !bytes.Contains(out, []byte("remote-web")) || requests.Load() != 1 {
		t.Errorf("error %v, %d request(s), output:\n%s", err, requests.Load(), out)
	}
}

func TestKustomizeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Kustomize(ctx, "testdata/kustomize/base"); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// kustomize itself reads files only from inside the kustomization root,
// through symbolic links too.
func TestKustomizeFileLinkOutside(t *testing.T) {
	outside := writeTree(t, t.TempDir(), map[string]string{"secret.txt": "host-secret"})
	dir := writeTree(t, t.TempDir(), map[string]string{
		"kustomization.yaml": "configMapGenerator:\n- name: c\n  files:\n  - secret.txt\n",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "secret.txt")); err != nil {
		t.Fatal(err)
	}
	out, err := Kustomize(context.Background(), dir)
	if err == nil || bytes.Contains(out, []byte("host-secret")) {
		t.Errorf("error %v, output:\n%s", err, out)
	}
}
