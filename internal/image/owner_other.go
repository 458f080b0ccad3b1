//go:build !unix

package image

import (
	"io"
	"io/fs"
	"os"
)

// ownedByUser: no uid to compare with; the mode check still applies.
func ownedByUser(fs.FileInfo) bool { return true }

// readPrivateFile returns the content of the regular file at path, if it
// is private to the user (see privateInfo) and at most limit bytes. It
// checks the file it opened, not the path again.
func readPrivateFile(path string, limit int64) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !privateInfo(fi) || fi.Size() > limit {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	return b, err == nil
}
