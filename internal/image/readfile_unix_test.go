//go:build unix

package image

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// readPrivateFile reads a private regular file whole, and refuses one open
// to others, a directory, one over the limit, and a FIFO planted under a
// cache name without waiting for a writer that never comes.
func TestReadPrivateFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	content := []byte(`{"digest":"sha256:00"}`)
	if b, ok := readPrivateFile(write("ok", content, 0o600), 1<<20); !ok || string(b) != string(content) {
		t.Errorf("private file: %q, %t", b, ok)
	}
	if b, ok := readPrivateFile(write("empty", nil, 0o600), 1<<20); !ok || len(b) != 0 {
		t.Errorf("empty file: %q, %t", b, ok)
	}
	if _, ok := readPrivateFile(write("big", content, 0o600), int64(len(content))-1); ok {
		t.Error("a file over the limit was read")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if _, ok := readPrivateFile(write("open", content, mode), 1<<20); ok {
			t.Errorf("a file of mode %v was read", mode)
		}
	}
	if _, ok := readPrivateFile(dir, 1<<20); ok {
		t.Error("a directory was read")
	}
	if _, ok := readPrivateFile(filepath.Join(dir, "missing"), 1<<20); ok {
		t.Error("a missing file was read")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	done := make(chan bool)
	go func() { _, ok := readPrivateFile(fifo, 1<<20); done <- ok }()
	select {
	case ok := <-done:
		if ok {
			t.Error("a FIFO was read")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
}
