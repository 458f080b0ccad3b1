package render

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got), refresh with -update if intended:\n%s", p, d)
	}
}

const webChart = "testdata/chart/web"

func TestHelmChart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  []string
		set     []string
		release string
		ns      string
	}{
		{name: "web"},
		{name: "web-worker", values: []string{webChart + "/values-worker.yaml"}, release: "shop", ns: "prod"},
		// --set wins over the values files; later files win over earlier ones.
		{name: "web-set", values: []string{webChart + "/values-worker.yaml", webChart + "/values.yaml"}, set: []string{"image.tag=1.1,replicas=1", "migrate.enabled=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HelmChart(context.Background(), webChart, tc.values, tc.set, tc.release, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, got)
		})
	}
}

func TestHelmChartErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chart  string
		values []string
		set    []string
		want   string
		is     error
	}{
		{name: "required value", chart: webChart, set: []string{"image.repository=null"},
			want: "web/templates/deployment.yaml:23:20): image.repository is required"},
		{name: "template syntax", chart: "testdata/chart/broken", want: "broken/templates/pod.yaml:8"},
		{name: "missing values file", chart: webChart, values: []string{"testdata/nope.yaml"}, is: fs.ErrNotExist},
		{name: "bad values file", chart: webChart, values: []string{"testdata/kustomize"}, want: "reading values"},
		{name: "bad --set", chart: webChart, set: []string{"image.tag"}, want: "--set image.tag"},
		{name: "no chart", chart: "testdata/chart/none", want: "loading chart testdata/chart/none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := HelmChart(context.Background(), tc.chart, tc.values, tc.set, "", "")
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestHelmChartCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := HelmChart(ctx, webChart, nil, nil, "", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestSourceAt(t *testing.T) {
	out, err := HelmChart(context.Background(), webChart, nil, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	find := func(s string) int {
		for i, l := range lines {
			if strings.Contains(l, s) {
				return i + 1
			}
		}
		t.Fatalf("%q not in output", s)
		return 0
	}
	for _, tc := range []struct {
		line int
		want string
	}{
		{1, ""},
		{find("kind: Service"), "web/templates/service.yaml"},
		{find("replicas:"), "web/templates/deployment.yaml"},
	} {
		if got := SourceAt(out, tc.line); got != tc.want {
			t.Errorf("line %d: %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestKustomize(t *testing.T) {
	for _, dir := range []string{"base", "overlay"} {
		t.Run(dir, func(t *testing.T) {
			got, err := Kustomize(context.Background(), filepath.Join("testdata/kustomize", dir))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "kustomize-"+dir, got)
		})
	}
}

func TestKustomizeErrors(t *testing.T) {
	for _, dir := range []string{"testdata/kustomize/none", "testdata/chart/web"} {
		if _, err := Kustomize(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "building kustomization "+dir) {
			t.Errorf("%s: error %v", dir, err)
		}
	}
}
