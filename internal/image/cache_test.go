package image

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/archfit/archfit/internal/testimage"
)

// TestCacheFutureTagIsStale: a tag entry dated in the future was trusted
// forever (its age is negative, always below the TTL).
func TestCacheFutureTagIsStale(t *testing.T) {
	reg := newCountingRegistry(t)
	ref := reg.host() + "/future:1"
	push(t, ref, testimage.MultiArch("linux/amd64"))
	dir := t.TempDir()
	newResolver(t, dir).Inspect(context.Background(), Request{Ref: ref})
	c := newCache(dir)
	te, ok := c.tag(ref)
	if !ok {
		t.Fatal("no tag entry cached")
	}
	te.Seen = time.Now().Add(24 * 365 * time.Hour)
	c.putTag(ref, te)
	c.flush()
	reg.take()
	newResolver(t, dir, WithTagTTL(time.Hour)).Inspect(context.Background(), Request{Ref: ref})
	if got := reg.take(); len(got) == 0 || got[0] != "HEAD manifest-by-tag" {
		t.Errorf("a tag entry from the future was trusted: requests %v, want a HEAD", got)
	}
}

// TestCacheModes: the cache is private (directories 0700, files 0600), and
// an entry others could have written (group or world writable file or
// directory) is ignored.
func TestCacheModes(t *testing.T) {
	reg := newCountingRegistry(t)
	ref := reg.host() + "/modes:1"
	push(t, ref, testimage.App("linux/amd64", "amd64"))
	dir := filepath.Join(t.TempDir(), "archfit")
	r := newResolver(t, dir, WithVerifier(headerVerifier))
	if rep := r.Inspect(context.Background(), Request{Ref: ref, Verify: true}); rep.Error != nil {
		t.Fatal(rep.Error)
	}
	var files int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking the cache: %v, %d files", err, files)
	}

	// A report file opened to others is not read: the next run recomputes.
	reports := filepath.Join(dir, "v1", "reports")
	ents, err := os.ReadDir(reports)
	if err != nil || len(ents) != 1 {
		t.Fatalf("reports: %v %v", ents, err)
	}
	p := filepath.Join(reports, ents[0].Name())
	if err := os.WriteFile(p, []byte(`{"reference":"x","architectures":["s390x"]}`), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	rep := newResolver(t, dir, WithVerifier(headerVerifier)).Inspect(context.Background(), Request{Ref: ref, Verify: true})
	if len(rep.Architectures) != 1 || rep.Architectures[0] != "amd64" {
		t.Errorf("a world-writable report was used: architectures %v", rep.Architectures)
	}
	// A directory an earlier version left 0755 is made private.
	if err := os.Chmod(reports, 0o755); err != nil {
		t.Fatal(err)
	}
	newResolver(t, dir).Inspect(context.Background(), Request{Ref: ref})
	if fi, err := os.Stat(reports); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("reports directory: %v %v, want 0700", fi.Mode().Perm(), err)
	}
}
