package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A chart's templates are not manifests: -f CHART_DIR is one error, and a
// chart met under -R is skipped with one warning while the manifests
// beside it are read.
func TestLoadFilesChartDirectory(t *testing.T) {
	root := t.TempDir()
	chart := filepath.Join(root, "charts", "web")
	write := func(p, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(chart, "Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\n")
	write(filepath.Join(chart, "values.yaml"), "image: nginx\n")
	for i := range 20 {
		write(filepath.Join(chart, "templates", "t"+string(rune('a'+i))+".yaml"), "{{- if .Values.x }}\nkind: Pod\n{{- end }}\n")
	}
	write(filepath.Join(root, "pod.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\nspec: {containers: [{name: c, image: nginx}]}\n")

	_, _, err := LoadFiles(context.Background(), []string{chart}, nil)
	if !errors.Is(err, ErrChartDir) || !strings.Contains(err.Error(), "--helm-chart "+chart) {
		t.Errorf("-f CHART: error %v", err)
	}

	snap, docErrs, err := LoadFiles(context.Background(), []string{root}, nil, Recursive(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(docErrs) != 1 || !errors.Is(docErrs[0], ErrChartDir) || !strings.Contains(docErrs[0].Error(), chart) {
		t.Errorf("-R: document errors %v, want one naming the chart", docErrs)
	}
	if len(snap.Workloads) != 1 {
		t.Errorf("-R: %d workloads, want the pod beside the chart", len(snap.Workloads))
	}
}
