package verify

import (
	"context"
	"fmt"
	"io"
)

// want says how much of a file to keep: at least min bytes, and the whole
// file (up to the file limit) when full says so from its first bytes.
type want struct {
	min  int64
	full func(head []byte) bool
}

// find resolves the candidate paths in order (several for a PATH lookup)
// and returns the first whose hit accept takes, reading layers top-down
// only until that is decided. It returns all hits, for the details.
func (f *fsys) find(ctx context.Context, cands []string, accept func(hit) bool, w want) (int, []hit, error) {
	for {
		clear(f.waiting)
		hits := make([]hit, len(cands))
		for i, c := range cands {
			hits[i] = f.walk(c, true)
			if f.err != nil {
				return -1, hits, f.err
			}
			h := hits[i]
			// The data of this candidate is streaming by right now: keep it,
			// it is likely the answer and would cost a reread later.
			if h.status == found && f.streamPath != "" && h.dataLayer == f.cur && h.dataPath == f.streamPath && h.e.kind == kindReg {
				if err := f.capture(h, w); err != nil {
					return -1, hits, err
				}
			}
		}
		decided := true
		for i, h := range hits {
			if h.status == pending {
				decided = false
				break
			}
			if h.status == found && accept(h) {
				return i, hits, nil
			}
		}
		if decided {
			return -1, hits, nil
		}
		for {
			relevant, err := f.advance(ctx)
			if err != nil {
				return -1, hits, err
			}
			if relevant {
				break
			}
		}
	}
}

// capture reads the data of the entry the stream is positioned at.
func (f *fsys) capture(h hit, w want) error {
	k := dataKey{h.dataLayer, h.dataPath}
	if _, ok := f.data[k]; ok {
		return nil
	}
	b, whole, err := f.readData(f.s.tr, h.e.size, w)
	if err != nil {
		return fmt.Errorf("reading %s in layer %d: %w", h.dataPath, h.dataLayer+1, err)
	}
	f.streamPath = ""
	f.keep(k, fileData{b: b, whole: whole})
	return nil
}

// keep remembers file bytes for this verification and, through the cache,
// for the run.
func (f *fsys) keep(k dataKey, d fileData) {
	f.data[k] = d
	if f.keys != nil {
		f.cache.putFile(fileKey{f.keys[k.layer], k.path}, d)
	}
}

func (f *fsys) readData(r io.Reader, size int64, w want) ([]byte, bool, error) {
	n := min(size, max(w.min, headSize))
	// Sizes come from the file (tar header, ELF offsets): never allocate
	// more than the file limit, whatever they claim.
	if n > f.limitFile {
		return nil, false, &LimitError{What: "bytes read of one file", Limit: f.limitFile}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, false, err
	}
	if n < size && size <= f.limitFile && w.full != nil && w.full(b) {
		rest := make([]byte, size-n)
		if _, err := io.ReadFull(r, rest); err != nil {
			return nil, false, err
		}
		b = append(b, rest...)
	}
	return b, int64(len(b)) == size, nil
}

// content returns the bytes of a found regular file, from what was kept on
// the way down or by reading its layer again (counted like any read).
func (f *fsys) content(ctx context.Context, h hit, w want) ([]byte, bool, error) {
	k := dataKey{h.dataLayer, h.dataPath}
	if d, ok := f.data[k]; ok && f.enough(d, h.e.size, w) {
		return d.b, d.whole, nil
	}
	if f.keys != nil {
		if d, ok := f.cache.file(fileKey{f.keys[k.layer], k.path}); ok && f.enough(d, h.e.size, w) {
			f.data[k] = d
			return d.b, d.whole, nil
		}
	}
	s, err := f.b.open(ctx, f.layers[h.dataLayer], h.dataLayer)
	if err != nil {
		return nil, false, err
	}
	defer s.close()
	for {
		hdr, err := s.tr.Next()
		if err == io.EOF {
			return nil, false, fmt.Errorf("%s vanished from layer %d on a second read", h.dataPath, h.dataLayer+1)
		}
		if err != nil {
			return nil, false, fmt.Errorf("rereading layer %d: %w", h.dataLayer+1, err)
		}
		if len(hdr.Name) > maxPath || rooted(hdr.Name) != h.dataPath {
			continue
		}
		b, whole, err := f.readData(s.tr, hdr.Size, w)
		if err != nil {
			return nil, false, fmt.Errorf("rereading %s in layer %d: %w", h.dataPath, h.dataLayer+1, err)
		}
		f.keep(k, fileData{b: b, whole: whole})
		return b, whole, nil
	}
}

func (f *fsys) enough(d fileData, size int64, w want) bool {
	if d.whole {
		return true
	}
	if int64(len(d.b)) < min(w.min, size) {
		return false
	}
	return w.full == nil || size > f.limitFile || !w.full(d.b)
}
