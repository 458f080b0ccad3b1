package cluster

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
)

// A large JSON file (a kubectl dump of a whole cluster: 100,000 pods are
// 350-900 MB) is mapped into memory instead of read into the heap, and the
// pages already read are given back as the reading moves on (three passes,
// each in order: validation, finding the items, decoding them in batches).
// The input then costs the process a window of it instead of all of it,
// next to the objects decoded from it. Nothing decoded refers to the input
// (what is kept is copied out of it), so the mapping is removed when the
// file is read.
//
// A file that shrinks while it is mapped makes reading a page fault; a file
// that changes can break what validation found. Either is recovered (any
// panic while reading a mapped file is) and is that file's error: the run
// stops as for a file that cannot be read, instead of crashing.

// mmapMinBytes is the smallest input that is mapped: below it reading it
// costs less than mapping it.
const mmapMinBytes = 32 << 20

// releaseEvery is how far reading moves on before the pages behind it are
// given back.
const releaseEvery = 16 << 20

// mapped is the mapping of the input being read, nil when it was read into
// memory.
type mapped struct {
	data     []byte // the whole mapping, from offset 0 of the file
	base     int64  // offset in data of what the readers see (after a BOM)
	released int64  // data[:released] was given back
	page     int64
	every    int // releaseEvery (tests lower it)
}

// release gives back the whole pages of the input below off (an offset in
// what the readers see). Offsets that do not grow are ignored.
func (m *mapped) release(off int64) {
	if m == nil {
		return
	}
	end := (m.base + off) &^ (m.page - 1)
	if end <= m.released {
		return
	}
	dropPages(m.data[m.released:end])
	m.released = end
}

// restart begins a pass over the input: its releases start from offset 0
// again (pages given back by the pass before and touched again by this one
// are given back again).
func (m *mapped) restart() {
	if m != nil {
		m.released = 0
	}
}

// mapInput maps f when it is a regular file of at least mmapMinBytes,
// within the input cap, holding JSON. ok is false when f is to be read
// instead (nothing was read from it).
func (c *collector) mapInput(f *os.File) (m *mapped, ok bool) {
	if !canMap || c.noMap {
		return nil, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < c.mapMin || fi.Size() > c.limits.input || fi.Size() == 0 {
		return nil, false
	}
	data, err := mapFile(f, fi.Size())
	if err != nil {
		return nil, false
	}
	m = &mapped{data: data, page: int64(os.Getpagesize()), every: c.releaseEvery}
	if len(data) >= 3 && string(data[:3]) == "\ufeff" {
		m.base = 3 // a BOM from an editor on Windows
	}
	if looksJSONText(data[m.base:min(len(data), int(m.base)+64<<10)]) {
		return m, true
	}
	unmapFile(data) // YAML, or white space only: read as a stream
	return nil, false
}

// decodeMapped reads the JSON input mapped in m (see mapInput).
func (c *collector) decodeMapped(ctx context.Context, name string, m *mapped) (err error) {
	defer unmapFile(m.data)
	defer func() {
		c.cur, c.mapped = srcText{}, nil
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading %s: the file changed while it was read (%v)", name, r)
		}
	}()
	c.mapped = m
	c.mappedInputs++
	data := m.data[m.base:]
	fast, err := c.fastJSONStream(ctx, data)
	if !fast {
		err = c.decodeJSONStream(ctx, data)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return err
}

// looksJSONText says whether the first byte of b that is not white space
// opens a JSON object or array (looksJSON's test, on text in memory).
func looksJSONText(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		case '{', '[':
			return true
		default:
			return false
		}
	}
	return false
}
