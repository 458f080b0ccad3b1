package image

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/archfit/archfit/internal/testimage"
)

func TestRecentTags(t *testing.T) {
	tags := []string{"latest", "1.9", "1.10", "1.10-alpine", "1.2.3", "v2.0.0", "main", "sha256-abc.att", "1.9-alpine", "1.8"}
	got := RecentTags(tags, "1.8", 5)
	if diff := cmp.Diff([]string{"v2.0.0", "1.10", "1.9", "1.2.3", "latest"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = RecentTags(tags, "1.8-alpine", 2)
	if diff := cmp.Diff([]string{"1.10-alpine", "1.9-alpine"}, got); diff != "" {
		t.Errorf("same variant first (-want +got):\n%s", diff)
	}
}

func TestAlternatives(t *testing.T) {
	reg := newCountingRegistry(t)
	repo := reg.host() + "/vendor/tool"
	push(t, repo+":1.0", testimage.App("linux/amd64", "amd64"))
	push(t, repo+":1.1", testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	push(t, repo+":1.2", testimage.MultiArch("linux/amd64", "linux/arm64/v8", "linux/s390x"))
	push(t, repo+":nightly", testimage.App("linux/amd64", "amd64"))
	r := newResolver(t, "")
	alts, err := r.Alternatives(context.Background(), repo+":1.0", []string{"amd64", "arm64"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, a := range alts {
		refs = append(refs, a.Reference)
	}
	if diff := cmp.Diff([]string{repo + ":1.2", repo + ":1.1"}, refs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
