//go:build linux || darwin

package cluster

import (
	"os"

	"golang.org/x/sys/unix"
)

// canMap says whether large inputs are mapped (mapInput) here.
const canMap = true

func mapFile(f *os.File, size int64) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
}

func unmapFile(b []byte) { _ = unix.Munmap(b) }

// dropPages gives the pages of b back: they leave the process's resident
// set, and are read from the file (its page cache) again if touched.
func dropPages(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
