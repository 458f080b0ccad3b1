package twin

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// rootfs is a lazy, read-only view of an image's merged filesystem: layers
// are indexed (headers only) the first time a lookup reaches them, top
// layer first, and file contents are read only for the file asked for.
type rootfs struct {
	layers  []v1.Layer // bottom first, as in the manifest
	indexes []*layerIndex
}

type layerIndex struct {
	entries   map[string]*tar.Header // clean absolute path -> header
	whiteouts map[string]bool        // paths deleted by this layer
	opaque    map[string]bool        // directories whose lower contents this layer hides
}

var errNotExist = errors.New("no such file or directory")

func newRootfs(img v1.Image) (*rootfs, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	return &rootfs{layers: layers, indexes: make([]*layerIndex, len(layers))}, nil
}

func cleanPath(p string) string {
	return path.Clean("/" + strings.TrimPrefix(p, "./"))
}

func (fs *rootfs) index(i int) (*layerIndex, error) {
	if fs.indexes[i] != nil {
		return fs.indexes[i], nil
	}
	rc, err := fs.layers[i].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	li := &layerIndex{entries: map[string]*tar.Header{}, whiteouts: map[string]bool{}, opaque: map[string]bool{}}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer %d: %w", i, err)
		}
		p := cleanPath(h.Name)
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			li.opaque[path.Clean(dir)] = true
		case strings.HasPrefix(base, ".wh."):
			li.whiteouts[path.Join(dir, strings.TrimPrefix(base, ".wh."))] = true
		default:
			li.entries[p] = h
		}
	}
	fs.indexes[i] = li
	return li, nil
}

// lookup finds the entry for an already resolved path (no symlinks in its
// directories), honouring whiteouts and opaque directories.
func (fs *rootfs) lookup(p string) (*tar.Header, int, error) {
	for i := len(fs.layers) - 1; i >= 0; i-- {
		li, err := fs.index(i)
		if err != nil {
			return nil, 0, err
		}
		if h, ok := li.entries[p]; ok {
			return h, i, nil
		}
		hidden := false
		for q := p; ; q = path.Dir(q) {
			if li.whiteouts[q] || (q != p && li.opaque[q]) {
				hidden = true
			}
			if q == "/" {
				break
			}
		}
		if hidden {
			return nil, 0, errNotExist
		}
	}
	return nil, 0, errNotExist
}

// resolve follows symlinks in every component of p (absolute targets are
// rooted at the image root) and returns the final entry.
func (fs *rootfs) resolve(p string) (*tar.Header, int, string, error) {
	p = cleanPath(p)
	for hops := 0; hops < 40; hops++ {
		comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := "/"
		restarted := false
		for k, c := range comps {
			if c == "" {
				continue
			}
			next := path.Join(cur, c)
			h, li, err := fs.lookup(next)
			if err != nil {
				if k < len(comps)-1 && errors.Is(err, errNotExist) {
					// Parent directories need no tar entry of their own;
					// the final lookup still honours whiteouts above them.
					cur = next
					continue
				}
				return nil, 0, next, err
			}
			if h.Typeflag == tar.TypeSymlink {
				target := h.Linkname
				if !path.IsAbs(target) {
					target = path.Join(cur, target)
				}
				p = cleanPath(path.Join(append([]string{target}, comps[k+1:]...)...))
				restarted = true
				break
			}
			if k == len(comps)-1 {
				return h, li, next, nil
			}
			cur = next
		}
		if !restarted {
			h, li, err := fs.lookup(p)
			return h, li, p, err
		}
	}
	return nil, 0, p, errors.New("too many levels of symbolic links")
}

// read returns up to limit bytes of the regular file at resolved path p,
// following a tar hardlink within its layer.
func (fs *rootfs) read(h *tar.Header, layer int, limit int64) ([]byte, error) {
	want := cleanPath(h.Name)
	if h.Typeflag == tar.TypeLink {
		want = cleanPath(h.Linkname)
	}
	rc, err := fs.layers[layer].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		th, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", want, err)
		}
		if cleanPath(th.Name) == want && th.Typeflag != tar.TypeLink {
			return io.ReadAll(io.LimitReader(tr, limit))
		}
	}
}
