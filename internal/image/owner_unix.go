//go:build unix

package image

import (
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// euid is the user's id, asked once (a warm run checks hundreds of files).
var euid = sync.OnceValue(os.Geteuid)

func ownedByUser(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == euid()
}

// readPrivateFile returns the content of the regular file at path, if it
// is owned by the user, open to nobody else and at most limit bytes. It
// checks the file it opened, not the path again, and goes to the system
// directly: a warm run reads hundreds of cache files, and os.Open spends
// four fcntl and an epoll_ctl on each to find that a regular file cannot be
// polled. O_NONBLOCK keeps a FIFO planted under a cache name from blocking
// the open (it is then refused as not regular); it does not change how a
// regular file is read.
func readPrivateFile(path string, limit int64) ([]byte, bool) {
	var fd int
	for {
		var err error
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err == nil {
			break
		}
		if err != syscall.EINTR {
			return nil, false
		}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, false
	}
	if uint32(st.Mode)&syscall.S_IFMT != syscall.S_IFREG || int(st.Uid) != euid() || st.Mode&0o077 != 0 {
		return nil, false
	}
	if st.Size > limit {
		return nil, false
	}
	// Cache files are renamed into place whole, so the size fstat gives is
	// the content; a file cut short meanwhile reads short and fails its
	// checks.
	b := make([]byte, st.Size)
	n := 0
	for n < len(b) {
		m, err := syscall.Read(fd, b[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if m == 0 {
			break
		}
		n += m
	}
	return b[:n], true
}
