package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/archfit/archfit/internal/registry"
)

// source is where manifests and blobs come from: a registry or an OCI layout.
type source interface {
	// Head resolves a tag to a descriptor without its body.
	Head(ctx context.Context, ref name.Reference) (registry.Descriptor, error)
	Manifest(ctx context.Context, ref name.Reference) ([]byte, registry.Descriptor, error)
	Blob(ctx context.Context, repo name.Repository, digest string) ([]byte, error)
	BlobStream(ctx context.Context, repo name.Repository, digest string) (io.ReadCloser, error)
	// remote reports whether calls cost round trips (caching pays off).
	remote() bool
}

type registrySource struct{ c *registry.Client }

func (s registrySource) Head(ctx context.Context, ref name.Reference) (registry.Descriptor, error) {
	return s.c.Head(ctx, ref)
}
func (s registrySource) Manifest(ctx context.Context, ref name.Reference) ([]byte, registry.Descriptor, error) {
	return s.c.Manifest(ctx, ref)
}
func (s registrySource) Blob(ctx context.Context, repo name.Repository, digest string) ([]byte, error) {
	return s.c.Blob(ctx, repo, digest)
}
func (s registrySource) BlobStream(ctx context.Context, repo name.Repository, digest string) (io.ReadCloser, error) {
	return s.c.BlobStream(ctx, repo, digest)
}
func (registrySource) remote() bool { return true }

// Layout is one OCI image layout to read images from. Repository, when
// set (--oci-layout REPO=DIR), is the repository the layout's tag-only
// names belong to: `skopeo copy docker://redis:7.2 oci:DIR:7.2` writes
// org.opencontainers.image.ref.name "7.2" and nothing else, and buildx and
// containerd write the tag there with the full name in
// io.containerd.image.name. A tag-only name in a layout bound to no
// repository names no image: it never answers for a reference.
type Layout struct {
	Dir        string
	Repository string
}

// ParseLayout reads --oci-layout: DIR, or REPO=DIR. A value that is an
// existing directory is always a DIR, whatever it contains.
func ParseLayout(s string) (Layout, error) {
	if s == "" {
		return Layout{}, fmt.Errorf("empty OCI layout")
	}
	if st, err := os.Stat(s); err == nil && st.IsDir() {
		return Layout{Dir: s}, nil
	}
	repo, dir, ok := strings.Cut(s, "=")
	if !ok {
		return Layout{Dir: s}, nil
	}
	if dir == "" {
		return Layout{}, fmt.Errorf("OCI layout %q: no directory after %q", s, repo+"=")
	}
	if _, err := name.NewRepository(repo); err != nil {
		return Layout{}, fmt.Errorf("OCI layout %q: %q is not a repository (want REPO=DIR, e.g. redis=./redis-layout): %v", s, repo, err)
	}
	return Layout{Dir: dir, Repository: repo}, nil
}

func (l Layout) String() string {
	if l.Repository != "" {
		return l.Repository + "=" + l.Dir
	}
	return l.Dir
}

// LayoutEntry says which entry of which OCI layout answered for an image.
type LayoutEntry struct {
	// Dir is the layout directory as given.
	Dir string `json:"dir"`
	// Annotation is the index.json annotation that named the entry
	// (io.containerd.image.name or org.opencontainers.image.ref.name), Name
	// its value; both empty when a digest reference found an unnamed entry
	// or a blob of the layout.
	Annotation string `json:"annotation,omitempty"`
	Name       string `json:"name,omitempty"`
	// Repository is the repository the layout was bound to, when Name is a
	// tag it completed.
	Repository string `json:"repository,omitempty"`
	Digest     string `json:"digest"`
}

func (e *LayoutEntry) String() string {
	s := "OCI layout " + e.Dir
	switch {
	case e.Repository != "":
		s += fmt.Sprintf(", %s=%q bound to %s", e.Annotation, e.Name, e.Repository)
	case e.Annotation != "":
		s += fmt.Sprintf(", %s=%q", e.Annotation, e.Name)
	default:
		s += ", by digest"
	}
	return s + ", " + e.Digest
}

// layoutSource reads an OCI image layout directory (index.json + blobs/).
type layoutSource struct {
	Layout
	path  layout.Path
	names []layoutName
	// unnamed are the tag-only names of a layout bound to no repository.
	unnamed []layoutName
}

// layoutName is one name index.json gives a descriptor.
type layoutName struct {
	desc       v1.Descriptor
	annotation string
	value      string
	// full is the normalized reference (name.Reference.Name()) the entry
	// answers for; "" when it names no repository.
	full string
	// display is how the name is listed (inspect --oci-layout DIR).
	display string
}

const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// fullReference reports whether an annotation value names a repository, not
// just a tag: a tag holds no "/", ":" or "@".
func fullReference(v string) bool { return strings.ContainsAny(v, "/:@") }

func newLayoutSource(l Layout) (*layoutSource, error) {
	dir := l.Dir
	// index.json is read whole by go-containerregistry: bound it first.
	st, err := os.Stat(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %s: %w", dir, err)
	}
	if st.Size() > registry.DefaultMaxManifest {
		return nil, fmt.Errorf("opening OCI layout %s: index.json is %d bytes: %w (%d bytes)", dir, st.Size(), registry.ErrTooLarge, registry.DefaultMaxManifest)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading %s/index.json: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s/index.json: %w", dir, err)
	}
	var repo *name.Repository
	if l.Repository != "" {
		r, err := name.NewRepository(l.Repository)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: repository %q: %w", dir, l.Repository, err)
		}
		repo = &r
	}
	s := &layoutSource{Layout: l, path: p}
	for _, d := range im.Manifests {
		full := false
		for _, k := range []string{annotationContainerdName, annotationRefName} {
			v := d.Annotations[k]
			if v == "" {
				continue
			}
			n := layoutName{desc: d, annotation: k, value: v, display: v}
			switch {
			case fullReference(v):
				r, err := name.ParseReference(v)
				if err != nil {
					continue // not a reference: it names nothing
				}
				n.full = r.Name()
				full = true
			case k == annotationRefName && full:
				// io.containerd.image.name already names this entry in
				// full; its ref.name is the same tag, not rebound.
				continue
			case repo != nil:
				if _, err := name.NewTag(repo.Name() + ":" + v); err != nil {
					continue
				}
				n.full = repo.Tag(v).Name()
				n.display = l.Repository + ":" + v
			default:
				s.unnamed = append(s.unnamed, n)
				continue
			}
			s.names = append(s.names, n)
		}
	}
	return s, nil
}

func (s *layoutSource) entry(n layoutName) *LayoutEntry {
	e := &LayoutEntry{Dir: s.Dir, Annotation: n.annotation, Name: n.value, Digest: n.desc.Digest.String()}
	if !fullReference(n.value) {
		e.Repository = s.Repository
	}
	return e
}

// find is the entry of this layout that answers for ref, or nil: a tag
// reference by its full name, a digest reference by a named entry of that
// digest (one of ref's repository first) or else any blob of it.
func (s *layoutSource) find(ref name.Reference) (*LayoutEntry, v1.Descriptor) {
	if d, ok := ref.(name.Digest); ok {
		var found *layoutName
		for i, n := range s.names {
			if n.desc.Digest.String() != d.DigestStr() {
				continue
			}
			if found == nil || n.full != "" && strings.HasPrefix(n.full, ref.Context().Name()+":") {
				found = &s.names[i]
			}
		}
		if found != nil {
			return s.entry(*found), found.desc
		}
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, v1.Descriptor{}
		}
		if _, err := os.Stat(filepath.Join(string(s.path), "blobs", h.Algorithm, h.Hex)); err != nil {
			return nil, v1.Descriptor{}
		}
		return &LayoutEntry{Dir: s.Dir, Digest: h.String()}, v1.Descriptor{Digest: h}
	}
	for _, n := range s.names {
		if n.full == ref.Name() {
			return s.entry(n), n.desc
		}
	}
	return nil, v1.Descriptor{}
}

// layoutSet is every --oci-layout of a run, in the order given.
type layoutSet struct{ layouts []*layoutSource }

// AmbiguousError: two layout entries answer for one reference with
// different digests.
type AmbiguousError struct {
	Ref     string
	Entries []*LayoutEntry
}

func (e *AmbiguousError) Error() string {
	var s []string
	for _, x := range e.Entries {
		s = append(s, x.String())
	}
	return fmt.Sprintf("%s is named by more than one OCI layout entry with different digests: %s", e.Ref, strings.Join(s, "; "))
}

// find is the layout and entry that answer for ref.
func (ls *layoutSet) find(ref name.Reference) (*layoutSource, *LayoutEntry, error) {
	var src *layoutSource
	var got *LayoutEntry
	var all []*LayoutEntry
	ambiguous := false
	for _, l := range ls.layouts {
		e, _ := l.find(ref)
		if e == nil {
			continue
		}
		all = append(all, e)
		if got == nil {
			src, got = l, e
		} else if e.Digest != got.Digest {
			ambiguous = true
		}
	}
	if ambiguous {
		return nil, nil, &AmbiguousError{Ref: ref.String(), Entries: all}
	}
	if got != nil {
		return src, got, nil
	}
	msg := "no such reference in the OCI layout"
	if len(ls.layouts) > 1 {
		msg += "s"
	}
	if _, ok := ref.(name.Tag); ok {
		for _, l := range ls.layouts {
			for _, n := range l.unnamed {
				if n.value == ref.Identifier() {
					repo := shortRepository(ref.Context())
					msg += fmt.Sprintf("; %s has an entry tagged %q that names no repository: give --oci-layout %s=%s if it is %s", l.Dir, n.value, repo, l.Dir, repo)
					break
				}
			}
		}
	}
	return nil, nil, &registry.HTTPError{Method: "GET", URL: "oci-layout:" + ref.String(), StatusCode: http.StatusNotFound, Codes: []string{"MANIFEST_UNKNOWN"}, Message: msg}
}

// RegistryOf names the registry of an image reference or repository as
// people write it: host[:port], "docker.io" for Docker Hub (whatever
// spelling the reference used), "invalid" when it does not parse. For
// grouping and labels (progress, metrics, CI recipes), never for a request.
func RegistryOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "invalid"
	}
	if reg := r.Context().RegistryStr(); reg != name.DefaultRegistry {
		return reg
	}
	return "docker.io"
}

// shortRepository is repo as people write it: Docker Hub's without
// index.docker.io/ and library/.
func shortRepository(repo name.Repository) string {
	if repo.RegistryStr() != name.DefaultRegistry {
		return repo.Name()
	}
	return strings.TrimPrefix(repo.RepositoryStr(), "library/")
}

// tried names the layouts for a failure ("OCI layout" for one: the user
// named it).
func (ls *layoutSet) tried() string {
	if len(ls.layouts) == 1 {
		return "OCI layout"
	}
	var s []string
	for _, l := range ls.layouts {
		s = append(s, l.String())
	}
	return "OCI layouts " + strings.Join(s, ", ")
}

// References lists the names of every layout, as given in index.json (a
// bound tag as REPO:TAG), sorted and without repeats.
func (ls *layoutSet) References() []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range ls.layouts {
		for _, n := range l.names {
			if !seen[n.full] {
				seen[n.full] = true
				out = append(out, n.display)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Unnamed says which entries name only a tag and no repository.
func (ls *layoutSet) Unnamed() []string {
	var out []string
	for _, l := range ls.layouts {
		for _, n := range l.unnamed {
			out = append(out, fmt.Sprintf("%s: entry %s=%q (%s) names a tag and no repository; give --oci-layout REPO=%s to say whose it is", l.Dir, n.annotation, n.value, n.desc.Digest, l.Dir))
		}
	}
	return out
}

func (ls *layoutSet) Head(ctx context.Context, ref name.Reference) (registry.Descriptor, error) {
	l, _, err := ls.find(ref)
	if err != nil {
		return registry.Descriptor{}, err
	}
	return l.Head(ctx, ref)
}

func (ls *layoutSet) Manifest(ctx context.Context, ref name.Reference) ([]byte, registry.Descriptor, error) {
	l, _, err := ls.find(ref)
	if err != nil {
		return nil, registry.Descriptor{}, err
	}
	return l.Manifest(ctx, ref)
}

// Blob and BlobStream read from the first layout that has the blob (an
// inspection reads from the layout that answered for its reference).
func (ls *layoutSet) Blob(ctx context.Context, repo name.Repository, digest string) (b []byte, err error) {
	for _, l := range ls.layouts {
		if b, err = l.Blob(ctx, repo, digest); err == nil {
			return b, nil
		}
	}
	return nil, err
}

func (ls *layoutSet) BlobStream(ctx context.Context, repo name.Repository, digest string) (rc io.ReadCloser, err error) {
	for _, l := range ls.layouts {
		if rc, err = l.BlobStream(ctx, repo, digest); err == nil {
			return rc, nil
		}
	}
	return nil, err
}

func (*layoutSet) remote() bool { return false }

func (s *layoutSource) lookup(ref name.Reference) (v1.Descriptor, error) {
	if d, ok := ref.(name.Digest); ok {
		// Blobs a manifest of this layout names: read (and verified) by
		// digest, whether index.json names them or not.
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return v1.Descriptor{}, err
		}
		if _, desc := s.find(ref); desc.Digest == h && desc.MediaType != "" {
			return desc, nil
		}
		return v1.Descriptor{Digest: h}, nil
	}
	if _, d := s.find(ref); d.Digest.Hex != "" {
		return d, nil
	}
	return v1.Descriptor{}, &registry.HTTPError{Method: "GET", URL: "oci-layout:" + ref.String(), StatusCode: http.StatusNotFound, Codes: []string{"MANIFEST_UNKNOWN"}, Message: "no such reference in the OCI layout " + s.Dir}
}

func (s *layoutSource) Head(_ context.Context, ref name.Reference) (registry.Descriptor, error) {
	d, err := s.lookup(ref)
	if err != nil {
		return registry.Descriptor{}, err
	}
	return registry.Descriptor{MediaType: string(d.MediaType), Digest: d.Digest.String(), Size: d.Size}, nil
}

func (s *layoutSource) Manifest(_ context.Context, ref name.Reference) ([]byte, registry.Descriptor, error) {
	d, err := s.lookup(ref)
	if err != nil {
		return nil, registry.Descriptor{}, err
	}
	b, err := s.read(d.Digest.String(), registry.DefaultMaxManifest)
	if err != nil {
		return nil, registry.Descriptor{}, err
	}
	mt := string(d.MediaType)
	if mt == "" {
		mt = sniffMediaType(b)
	}
	return b, registry.Descriptor{MediaType: mt, Digest: d.Digest.String(), Size: int64(len(b))}, nil
}

func (s *layoutSource) Blob(_ context.Context, _ name.Repository, digest string) ([]byte, error) {
	return s.read(digest, registry.DefaultMaxBlob)
}

func (s *layoutSource) BlobStream(_ context.Context, _ name.Repository, digest string) (io.ReadCloser, error) {
	if err := registry.CheckDigest(digest); err != nil {
		return nil, err
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, err
	}
	return s.path.Blob(h)
}

func (*layoutSource) remote() bool { return false }

func (s *layoutSource) read(digest string, limit int64) ([]byte, error) {
	if err := registry.CheckDigest(digest); err != nil {
		return nil, err
	}
	rc, err := s.BlobStream(context.Background(), name.Repository{}, digest)
	if err != nil {
		return nil, &registry.HTTPError{Method: "GET", URL: "oci-layout:" + digest, StatusCode: http.StatusNotFound, Codes: []string{"BLOB_UNKNOWN"}, Message: err.Error()}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s: %w", digest, registry.ErrTooLarge)
	}
	if err := registry.VerifyDigest(digest, b); err != nil {
		return nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	return b, nil
}

// sniffMediaType reads mediaType (or infers it) from a manifest body.
func sniffMediaType(b []byte) string {
	var m struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
		Config        json.RawMessage   `json:"config"`
	}
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.SchemaVersion == 1:
		return mediaTypeSchema1
	case m.Manifests != nil:
		return mediaTypeOCIIndex
	case m.Config != nil:
		return mediaTypeOCIManifest
	}
	return ""
}
