package remedy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failAfter accepts n bytes, then fails as a full disk does.
type failAfter struct {
	w io.Writer
	n int
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, errors.New("no space left on device")
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestWriteFileShortWriteKeepsOriginal(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.yaml")
	orig := strings.Repeat("apiVersion: apps/v1\n", 45) // 900 bytes
	if err := os.WriteFile(p, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	err := writeFile(p, []byte(strings.Repeat("kind: Deployment\n", 60)), func(w io.Writer) io.Writer { return &failAfter{w: w, n: 300} })
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), p) {
		t.Fatalf("got %v, want the write error naming the file", err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != orig {
		t.Errorf("original changed: %d bytes", len(got))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left behind: %v", ents)
	}
}

func TestWriteFileKeepsModeAndSymlink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink("app.yaml", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	info, _ := os.Stat(p)
	if string(got) != "new\n" || info.Mode().Perm() != 0o640 {
		t.Errorf("content %q mode %v, want new and 0640", got, info.Mode().Perm())
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced by a file")
	}
}
