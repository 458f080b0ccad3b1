package verify

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The merged filesystem of an image is never materialized: layers are
// indexed (tar headers only) top-down, one entry at a time, only as far as a
// lookup needs, and file contents are kept only for the files asked for.

type kind uint8

const (
	kindReg kind = iota
	kindDir
	kindImplicitDir // a directory known only from the paths under it
	kindSymlink
	kindHardlink
	kindOther // devices, fifos
)

type entry struct {
	kind kind
	mode int64
	size int64
	link string // symlink target as written; hardlink target as a rooted path
}

func (e entry) isDir() bool { return e.kind == kindDir || e.kind == kindImplicitDir }

type layerIndex struct {
	entries  map[string]entry
	whiteout map[string]bool // paths deleted in lower layers
	opaque   map[string]bool // directories whose lower children are hidden
	complete bool
}

func newLayerIndex() *layerIndex {
	return &layerIndex{entries: map[string]entry{}, whiteout: map[string]bool{}, opaque: map[string]bool{}}
}

const (
	maxSymlinkHops = 40   // Linux MAXSYMLINKS
	maxPath        = 4096 // Linux PATH_MAX: longer names cannot be looked up
	headSize       = 16 << 10
	// maxComponents bounds how deep a tar name or a lookup goes. Linux has
	// no such limit below PATH_MAX (2,048 one-letter components), but every
	// lookup checks each ancestor in each layer, so depth multiplies work;
	// real images stay far below (deep node_modules trees reach ~100).
	// Deeper tar entries are not indexed; a deeper lookup is unverifiable.
	maxComponents = 256
)

type status uint8

const (
	pending status = iota // depends on layers not read yet
	found
	missing
)

// hit is the answer of a lookup on what is known so far.
type hit struct {
	status status
	layer  int    // layer holding the entry (0 = bottom)
	path   string // resolved path, symlinks followed
	e      entry  // for a hardlink, the entry it links to
	// where the bytes are: a hardlink's data is its target's.
	dataLayer int
	dataPath  string
	why       string // for missing
}

type fileData struct {
	b     []byte
	whole bool
}

type dataKey struct {
	layer int
	path  string
}

// fsys is the lazily indexed view of one image's layers.
type fsys struct {
	layers []v1.Layer
	idx    []*layerIndex // by layer, 0 = bottom; nil until reached
	cur    int           // layer being indexed; -1 when all are
	s      *stream
	// streamPath is the regular file whose data the stream is positioned at.
	streamPath string
	b          *budget
	waiting    map[string]bool // paths a lookup waits for in layer cur
	data       map[dataKey]fileData
	limitFile  int64
	// err is a limit reached while looking up: it ends the verification.
	err error

	// With a Cache: each layer's key (nil when the image has no origin),
	// the layer this verification streams for the cache (-1: none), and
	// whether it is read to its end even after the answer (a second read
	// of a layer: it is shared, so the next reader gets it whole). An
	// index taken from the cache is read-only: it is shared.
	cache *Cache
	keys  []layerKey
	held  int
	drain bool
	// loaders counts the heads kept by keepLoader.
	loaders int
}

func newFS(layers []v1.Layer, b *budget) *fsys {
	return &fsys{
		layers:    layers,
		idx:       make([]*layerIndex, len(layers)),
		cur:       len(layers) - 1,
		b:         b,
		waiting:   map[string]bool{},
		data:      map[dataKey]fileData{},
		limitFile: b.limits.File,
		held:      -1,
	}
}

// useCache shares what is read of the layers through c, keyed by keys
// (one per layer, bottom first).
func (f *fsys) useCache(c *Cache, keys []layerKey) {
	f.cache, f.keys = c, keys
}

// finish reads the rest of a layer this verification streams for the
// cache when that layer has been read before, so it is published whole.
// Its errors (a limit, a broken layer) leave the partial index published
// and change no verdict.
func (f *fsys) finish(ctx context.Context) {
	if f.held < 0 || !f.drain || f.s == nil || f.err != nil {
		return
	}
	for l := f.held; f.cur == l; {
		if _, err := f.advance(ctx); err != nil {
			return
		}
	}
}

// close ends the stream and publishes what was indexed of the layer held
// for the cache.
func (f *fsys) close() {
	if f.held >= 0 {
		f.cache.publish(f.keys[f.held], f.idx[f.held])
		f.held = -1
	}
	f.closeStream()
}

// abandon ends the verification after a panic: the layer held for the
// cache is released unpublished (its waiters wake up; one of them reads
// it), then the stream is closed.
func (f *fsys) abandon() {
	if f.held >= 0 {
		f.cache.release(f.keys[f.held])
		f.held = -1
	}
	if f.s != nil {
		f.closeStream()
	}
}

func (f *fsys) closeStream() {
	f.s.close()
	f.s = nil
}

// rooted cleans a tar name or link target into an absolute path that cannot
// leave the root: "../" at the root stays at the root, as in the kernel.
func rooted(name string) string {
	return path.Clean("/" + name)
}

// lookupFrom finds the topmost visible entry at p (no symlink in p is
// followed; its parents are known directories) starting at layer top.
func (f *fsys) lookupFrom(p string, top int) hit {
	for l := top; l >= 0; l-- {
		ix := f.idx[l]
		if ix == nil {
			return hit{status: pending}
		}
		if !f.work(p) {
			return hit{status: missing, why: f.err.Error()}
		}
		if e, ok := ix.entries[p]; ok {
			return hit{status: found, layer: l, path: p, e: e}
		}
		if !ix.complete {
			// A later entry of this layer may still create p.
			f.waiting[p] = true
			return hit{status: pending}
		}
		if ix.whiteout[p] {
			return hit{status: missing, why: fmt.Sprintf("%s is deleted by a whiteout in layer %d", p, l+1)}
		}
		for a := range ancestors(p) {
			if !f.work(a) {
				return hit{status: missing, why: f.err.Error()}
			}
			if ix.opaque[a] {
				return hit{status: missing, why: fmt.Sprintf("%s is hidden: %s is an opaque directory in layer %d", p, a, l+1)}
			}
			if a == "/" {
				break
			}
			if ix.whiteout[a] {
				return hit{status: missing, why: fmt.Sprintf("%s is hidden: %s is deleted by a whiteout in layer %d", p, a, l+1)}
			}
			if e, ok := ix.entries[a]; ok && !e.isDir() {
				return hit{status: missing, why: fmt.Sprintf("%s is hidden: %s is not a directory in layer %d", p, a, l+1)}
			}
		}
	}
	return hit{status: missing, why: fmt.Sprintf("%s is in no layer", p)}
}

// work counts one probe of the layer indexes for key (hashing it costs its
// length) and reports whether the budget allows it; once it does not,
// f.err says why and every lookup stops.
func (f *fsys) work(key string) bool {
	if f.err != nil {
		return false
	}
	f.b.lookups += 64 + int64(len(key))
	if f.b.lookups > f.b.limits.Lookups {
		f.err = &LimitError{What: "path bytes looked up", Limit: f.b.limits.Lookups}
		return false
	}
	return true
}

// ancestors yields the parent directories of a clean absolute path p,
// nearest first, ending with "/": slices of p, linear in its length
// (path.Dir in a loop is quadratic).
func ancestors(p string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
			if !yield(p[:i]) {
				return
			}
		}
		if p != "/" {
			yield("/")
		}
	}
}

// walk resolves p as the kernel does: component by component, following
// symlinks in every component (and in the last one when follow is set),
// absolute targets from the image root, at most 40 hops.
func (f *fsys) walk(p string, follow bool) hit {
	rest := split(p)
	cur := "/"
	last := hit{status: found, path: "/", e: entry{kind: kindDir}, layer: len(f.layers) - 1}
	hops, depth := 0, 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			depth = max(depth-1, 0)
			cur = path.Dir(cur)
			last = f.dirHit(cur)
			if last.status != found {
				return last
			}
			continue
		}
		if depth++; depth > maxComponents || len(cur)+1+len(c) > maxPath {
			if f.err == nil {
				f.err = &LimitError{What: "path components (or PATH_MAX bytes) resolving " + short(p), Limit: maxComponents}
			}
			return hit{status: missing, why: f.err.Error()}
		}
		next := path.Join(cur, c)
		h := f.lookupFrom(next, len(f.layers)-1)
		if h.status != found {
			return h
		}
		if h.e.kind == kindSymlink && (len(rest) > 0 || follow) {
			hops++
			if hops > maxSymlinkHops {
				return hit{status: missing, why: fmt.Sprintf("too many levels of symbolic links resolving %s", p)}
			}
			t := h.e.link
			if t == "" {
				return hit{status: missing, why: fmt.Sprintf("%s is an empty symlink", next)}
			}
			if strings.HasPrefix(t, "/") {
				cur, depth = "/", 0
			}
			rest = append(split(t), rest...)
			continue
		}
		if h.e.kind == kindHardlink {
			h = f.hardlink(h)
			if h.status != found {
				return h
			}
		}
		if len(rest) > 0 && !h.e.isDir() {
			// A trailing "" or "." after a file is still "not a directory".
			return hit{status: missing, why: fmt.Sprintf("%s is not a directory", next)}
		}
		cur, last = next, h
	}
	if last.e.kind == kindReg && last.dataPath == "" {
		last.dataLayer, last.dataPath = last.layer, last.path
	}
	return last
}

// dirHit re-looks up a directory reached by "..": it is a known directory.
func (f *fsys) dirHit(p string) hit {
	if p == "/" {
		return hit{status: found, path: "/", e: entry{kind: kindDir}, layer: len(f.layers) - 1}
	}
	return f.lookupFrom(p, len(f.layers)-1)
}

// hardlink follows a tar hardlink to the entry holding the data: in the
// same layer (where tar writers put it, earlier in the stream), else in the
// layers below, as extraction would have found it on disk.
func (f *fsys) hardlink(h hit) hit {
	p, l := h.path, h.layer
	e := h.e
	for i := 0; e.kind == kindHardlink; i++ {
		if i > maxSymlinkHops {
			return hit{status: missing, why: fmt.Sprintf("hardlink chain too long at %s", p)}
		}
		t := e.link
		if te, ok := f.idx[l].entries[t]; ok {
			p, e = t, te
			continue
		}
		if !f.idx[l].complete && l == f.cur {
			f.waiting[t] = true
			return hit{status: pending}
		}
		th := f.lookupFrom(t, l-1)
		if th.status != found {
			if th.status == missing {
				th.why = fmt.Sprintf("%s is a hardlink to %s, which is missing", h.path, t)
			}
			return th
		}
		p, l, e = th.path, th.layer, th.e
	}
	// The file keeps the name and layer it was reached by; its bytes live at
	// the link target.
	return hit{status: found, layer: h.layer, path: h.path, e: e, dataLayer: l, dataPath: p}
}

func split(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// advance indexes the next tar entry of the layer being read, opening the
// next lower layer when needed. It reports whether the new knowledge can
// change a pending lookup (an entry at or under a path waited for, or a
// layer completed).
func (f *fsys) advance(ctx context.Context) (bool, error) {
	if f.cur < 0 {
		return false, errors.New("internal: no layer left to read")
	}
	if f.s == nil {
		if f.keys != nil && f.held < 0 {
			// A published index of a layer not yet seen will do for a
			// start; one that left a lookup pending will not.
			more := f.idx[f.cur] != nil
			cl, held, err := f.cache.acquire(ctx, f.keys[f.cur], more)
			if err != nil {
				return false, err
			}
			if !held {
				f.idx[f.cur] = cl.ix
				if cl.ix.complete {
					f.cur--
				}
				clear(f.waiting)
				return true, nil
			}
			f.held, f.drain = f.cur, cl != nil
		}
		s, err := f.b.open(ctx, f.layers[f.cur], f.cur)
		if err != nil {
			if f.held >= 0 {
				f.cache.release(f.keys[f.held])
				f.held = -1
			}
			return false, err
		}
		f.s = s
		f.idx[f.cur] = newLayerIndex()
		clear(f.waiting)
		// Relevant: lookups now wait for entries of this layer by name.
		return true, nil
	}
	f.streamPath = ""
	hdr, err := f.s.tr.Next()
	if err == io.EOF {
		f.idx[f.cur].complete = true
		if f.held == f.cur {
			f.cache.publish(f.keys[f.cur], f.idx[f.cur])
			f.held = -1
		}
		f.closeStream()
		f.cur--
		clear(f.waiting)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading layer %d: %w", f.cur+1, err)
	}
	f.b.entries++
	p, ok := f.index(f.idx[f.cur], hdr)
	if f.b.entries > f.b.limits.Entries {
		return false, &LimitError{What: "tar entries", Limit: int64(f.b.limits.Entries)}
	}
	if !ok {
		return false, nil
	}
	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
		f.streamPath = p
		if err := f.keepLoader(p); err != nil {
			return false, err
		}
	}
	for w := range f.waiting {
		if within(p, w) {
			return true, nil
		}
	}
	return false, nil
}

// maxLoaders bounds the ELF loaders whose heads one verification keeps on
// the way (see keepLoader): 16 heads of 16 KiB.
const maxLoaders = 16

// keepLoader keeps the head of the file the stream is at when its name is
// an ELF loader's (ld-linux-x86-64.so.2, ld-linux-aarch64.so.1,
// ld-musl-x86_64.so.1, ld64.so.2...). A dynamic binary's loader is found
// through symlinks (/lib64 -> usr/lib64, then to /lib/<triplet>/...) that
// a layer's tar often lists after the file itself, so by the time the
// lookup knows it needs the file, its bytes have gone by and the layer
// would be read again from its start. Only a matter of cost: a file kept
// for nothing is dropped with the verification.
func (f *fsys) keepLoader(p string) error {
	base := path.Base(p)
	if f.loaders >= maxLoaders || !(strings.HasPrefix(base, "ld-") && strings.Contains(base, ".so")) && !strings.HasPrefix(base, "ld64.so") {
		return nil
	}
	k := dataKey{f.cur, p}
	if e, ok := f.idx[f.cur].entries[p]; !ok || e.kind != kindReg {
		return nil
	}
	if _, ok := f.data[k]; ok {
		return nil // a repeated name: the first entry is the file
	}
	f.loaders++
	b, whole, err := f.readData(f.s.tr, f.idx[f.cur].entries[p].size, want{min: headSize})
	if err != nil {
		return fmt.Errorf("reading %s in layer %d: %w", p, f.cur+1, err)
	}
	f.streamPath = ""
	f.keep(k, fileData{b: b, whole: whole})
	return nil
}

// within reports whether p is dir or under it (both clean and absolute).
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}

// index adds one tar header to ix and returns the path it touches.
func (f *fsys) index(ix *layerIndex, hdr *tar.Header) (string, bool) {
	// Names and link targets past PATH_MAX cannot be resolved by a kernel,
	// and the index (kept for the run, see Cache) must cost no more per
	// entry than a path does.
	if len(hdr.Name) > maxPath || len(hdr.Linkname) > maxPath {
		return "", false
	}
	p := rooted(hdr.Name)
	if p == "/" {
		return "", false
	}
	if strings.Count(p, "/") > maxComponents {
		// Too deep to index: keep the directories down to the limit, so a
		// lookup that goes there stops at the limit (unverifiable) instead
		// of finding nothing (not-found).
		n := 0
		p = p[:strings.IndexFunc(p, func(r rune) bool {
			if r == '/' {
				n++
			}
			return n > maxComponents
		})]
		if _, ok := ix.entries[p]; !ok {
			f.b.entries++
			ix.entries[p] = entry{kind: kindImplicitDir}
			f.addParents(ix, p)
		}
		return p, true
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if strings.HasPrefix(base, ".wh.") {
		switch {
		case base == ".wh..wh..opq":
			ix.opaque[dir] = true
		case strings.HasPrefix(base, ".wh..wh."):
			// aufs metadata (.wh..wh.plnk...): no meaning for the merged view.
		default:
			ix.whiteout[path.Join(dir, base[len(".wh."):])] = true
		}
		f.addParents(ix, p)
		return dir, true
	}
	e := entry{mode: hdr.Mode, size: hdr.Size}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		e.kind = kindReg
	case tar.TypeDir:
		e.kind = kindDir
	case tar.TypeSymlink:
		e.kind, e.link = kindSymlink, hdr.Linkname
	case tar.TypeLink:
		e.kind, e.link = kindHardlink, rooted(hdr.Linkname)
	default:
		e.kind = kindOther
	}
	if old, ok := ix.entries[p]; ok {
		// Writers never repeat a path; if one does, the first entry wins,
		// so an answer given on the way stays true. A directory seen only
		// through its children gets its own header's mode.
		if !(old.kind == kindImplicitDir && e.kind == kindDir) {
			f.addParents(ix, p)
			return p, true
		}
	}
	ix.entries[p] = e
	f.addParents(ix, p)
	return p, true
}

// addParents records the directories above p as known. Each new one counts
// as a tar entry: the index never holds more paths than the entry limit.
func (f *fsys) addParents(ix *layerIndex, p string) {
	for a := range ancestors(p) {
		if a == "/" {
			return
		}
		if _, ok := ix.entries[a]; ok {
			return
		}
		f.b.entries++
		ix.entries[a] = entry{kind: kindImplicitDir}
	}
}

// short shortens a path for a message.
func short(p string) string {
	if len(p) > 64 {
		return p[:30] + "..." + p[len(p)-30:]
	}
	return p
}
