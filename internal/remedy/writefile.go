package remedy

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces the file at path with data without ever leaving it
// half written: data goes to a temporary file in the same directory, which
// is synced, given the original's mode and owner, and renamed over the
// original (a symlink's target is replaced, the link kept). On any error
// the original is untouched and the temporary file removed.
func WriteFile(path string, data []byte) error {
	return writeFile(path, data, func(w io.Writer) io.Writer { return w })
}

// writeFile is WriteFile with the temporary file's writer wrapped (tests
// make it fail part-way, as a full disk does).
func writeFile(path string, data []byte, wrap func(io.Writer) io.Writer) (err error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	info, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("writing %s: not a regular file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(real), "."+filepath.Base(real)+".archfit-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := wrap(tmp).Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w (the file is unchanged)", path, err)
	}
	// The owner first: changing it clears setuid/setgid bits.
	if err = keepOwner(tmp, info); err != nil {
		return fmt.Errorf("writing %s: keeping its owner: %w (the file is unchanged)", path, err)
	}
	if err = tmp.Chmod(info.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)); err != nil {
		return fmt.Errorf("writing %s: %w (the file is unchanged)", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w (the file is unchanged)", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w (the file is unchanged)", path, err)
	}
	if err = os.Rename(tmp.Name(), real); err != nil {
		return fmt.Errorf("writing %s: %w (the file is unchanged)", path, err)
	}
	syncDir(filepath.Dir(real))
	return nil
}
