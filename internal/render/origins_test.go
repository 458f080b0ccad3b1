package render

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With origins, each document names the file it came from, relative to
// the kustomization, and the objects are those of the plain build.
func TestKustomizeOrigins(t *testing.T) {
	dir := filepath.Join("testdata", "kustomize", "overlay")
	plain, err := Kustomize(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	with, err := Kustomize(context.Background(), dir, WithOrigins())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(with, []byte("config.kubernetes.io/origin")) {
		t.Errorf("the origin annotation is left in:\n%s", with)
	}
	var rest []string
	var sources []string
	for _, l := range strings.SplitAfter(string(with), "\n") {
		if s, ok := strings.CutPrefix(l, SourcePrefix); ok {
			sources = append(sources, strings.TrimSpace(s))
			continue
		}
		rest = append(rest, l)
	}
	if got := strings.Join(rest, ""); got != string(plain) {
		t.Errorf("objects differ from the plain build:\n%s\nwant:\n%s", got, plain)
	}
	if len(sources) == 0 {
		t.Fatalf("no source comment:\n%s", with)
	}
	for _, s := range sources {
		if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
			t.Errorf("source %s: %v", s, err)
		}
	}
	// The kustomization file on disk is unchanged.
	k, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if bytes.Contains(k, []byte("buildMetadata")) {
		t.Error("kustomization.yaml was written")
	}
}
