//go:build unix

package image

import (
	"io/fs"
	"os"
	"syscall"
)

func ownedByUser(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
