package render

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// An apiVersion v1 chart lists its dependencies in requirements.yaml:
// the one in charts/ is rendered, the missing ones its values disable are
// skipped and said, by condition and by tags.
func TestRequirementsYAML(t *testing.T) {
	const chart = "testdata/chart/v1app"
	c, err := RenderChart(context.Background(), chart, nil, nil, "rel", "")
	if err != nil {
		t.Fatal(err)
	}
	objs := docs(t, c.Manifests)
	find(t, objs, "Pod", "rel-app")
	find(t, objs, "Pod", "rel-cache")
	want := []SkippedDependency{
		{Chart: "v1app", Name: "db", Version: "2.0.0", Repository: "https://charts.example.com/", Why: "its condition db.enabled is false"},
		{Chart: "v1app", Name: "metrics", Version: "0.1.0", Repository: "https://charts.example.com/", Why: "its tags monitoring are false"},
	}
	if d := cmp.Diff(want, c.Skipped); d != "" {
		t.Errorf("skipped (-want +got):\n%s", d)
	}
	// The cache is disabled too: it is left out, and not "skipped" (it is
	// there).
	c, err = RenderChart(context.Background(), chart, nil, []string{"cache.enabled=false"}, "rel", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range docs(t, c.Manifests) {
		if o["metadata"].(map[string]any)["name"] == "rel-cache" {
			t.Error("disabled cache rendered")
		}
	}
	if len(c.Skipped) != 2 {
		t.Errorf("skipped %v, want db and metrics", c.Skipped)
	}

	// Enabled and missing: an error naming each, where it is listed, and
	// the command that fetches them.
	for _, tc := range []struct {
		set  []string
		want []string
	}{
		{set: []string{"db.enabled=true"}, want: []string{
			"db (requirements.yaml of v1app, version 2.0.0 from https://charts.example.com/), enabled by db.enabled",
			"`helm dependency build " + chart + "`"}},
		{set: []string{"tags.monitoring=true"}, want: []string{"metrics (requirements.yaml of v1app, version 0.1.0"}},
	} {
		_, err := RenderChart(context.Background(), chart, nil, tc.set, "rel", "")
		if err == nil {
			t.Fatalf("%v: no error", tc.set)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", tc.set, err, w)
			}
		}
	}
}

// argo-cd's real Chart.yaml (testdata/chart/argo-cd, see NOTICE) lists
// redis-ha, which its repository does not vendor and its values disable.
func TestArgoCDRedisHADisabled(t *testing.T) {
	const chart = "testdata/chart/argo-cd"
	c, err := RenderChart(context.Background(), chart, nil, nil, "", "argocd")
	if err != nil {
		t.Fatal(err)
	}
	want := []SkippedDependency{{Chart: "argo-cd", Name: "redis-ha", Version: "4.38.0",
		Repository: "https://dandydeveloper.github.io/charts/", Why: "its condition redis-ha.enabled is false"}}
	if d := cmp.Diff(want, c.Skipped); d != "" {
		t.Errorf("skipped (-want +got):\n%s", d)
	}
	if got := c.Skipped[0].String(); got != "chart argo-cd: dependency redis-ha is not in charts/ and its condition redis-ha.enabled is false: rendered without it" {
		t.Errorf("message %q", got)
	}
	_, err = RenderChart(context.Background(), chart, nil, []string{"redis-ha.enabled=true"}, "", "argocd")
	if err == nil || !strings.Contains(err.Error(), "redis-ha (Chart.yaml of argo-cd, version 4.38.0 from https://dandydeveloper.github.io/charts/), enabled by redis-ha.enabled") {
		t.Errorf("error %v", err)
	}
}

// A chart in charts/ is there whatever its version, as for Helm (which
// renders it): it is neither missing nor skipped.
func TestDependencyOtherVersion(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/chart/v1app", dir)
	writeFile(t, dir+"/charts/cache/Chart.yaml", "apiVersion: v1\nname: cache\nversion: 3.0.0\n")
	c, err := RenderChart(context.Background(), dir, nil, nil, "rel", "")
	if err != nil {
		t.Fatal(err)
	}
	find(t, docs(t, c.Manifests), "Pod", "rel-cache")
	for _, s := range c.Skipped {
		if s.Name == "cache" {
			t.Errorf("cache skipped: %v", s)
		}
	}
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(to, rel), string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
