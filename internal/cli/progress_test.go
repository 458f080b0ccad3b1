package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/archfit/archfit/internal/image"
)

// TestProgressNotOnAFile: stderr redirected to a file (a CI log) or a
// buffer gets no progress line.
func TestProgressNotOnAFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := newImageProgress(f); p != nil {
		t.Error("a progress line for a file")
	}
	if p := newImageProgress(&bytes.Buffer{}); p != nil {
		t.Error("a progress line for a buffer")
	}
}

// TestProgressLine: distinct images counted once all their requests are
// done, per registry, busiest first, failures shown, and the line erased
// at the end.
func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	p := &imageProgress{w: &out, now: func() time.Time { return clock }, delay: time.Second, every: time.Hour}
	reqs := []image.Request{
		{Ref: "quay.io/a/x:1"}, {Ref: "quay.io/a/x:1", Override: &image.Override{Args: []string{"-v"}}},
		{Ref: "quay.io/a/y:1"}, {Ref: "nginx:1"}, {Ref: "ghcr.io/o/z:2"}, {Ref: "quay.io/a/w:3"},
	}
	p.Start(reqs)
	p.draw()
	if out.Len() != 0 {
		t.Fatalf("drawn before the delay: %q", out.String())
	}
	p.Done(reqs[0], &image.Report{})
	p.Done(reqs[3], &image.Report{Error: &image.Failure{Reason: "timeout"}})
	clock = clock.Add(2 * time.Second)
	p.draw()
	want := "\r\033[Kimages 1/5  quay.io 0/3  docker.io 1/1 (1 failed)  ghcr.io 0/1  2s"
	if out.String() != want {
		t.Errorf("line %q, want %q", out.String(), want)
	}
	p.Done(reqs[1], &image.Report{})
	out.Reset()
	p.draw()
	if !strings.HasPrefix(out.String(), "\r\033[Kimages 2/5  quay.io 1/3") {
		t.Errorf("after the second request of quay.io/a/x:1: %q", out.String())
	}
	out.Reset()
	p.Finish()
	if out.String() != "\r\033[K" {
		t.Errorf("not erased at the end: %q", out.String())
	}
}
