package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"

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

// layoutSource reads an OCI image layout directory (index.json + blobs/).
// References are matched against the org.opencontainers.image.ref.name and
// io.containerd.image.name annotations of index.json.
type layoutSource struct {
	path layout.Path
	refs map[string]v1.Descriptor
}

const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

func newLayoutSource(dir string) (*layoutSource, error) {
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
	s := &layoutSource{path: p, refs: map[string]v1.Descriptor{}}
	for _, d := range im.Manifests {
		for _, k := range []string{annotationRefName, annotationContainerdName} {
			if v := d.Annotations[k]; v != "" {
				s.refs[v] = d
				if r, err := name.ParseReference(v); err == nil {
					s.refs[r.Name()] = d
				}
			}
		}
	}
	return s, nil
}

// References lists the names in the layout, sorted.
func (s *layoutSource) References() []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range s.refs {
		for _, k := range []string{annotationRefName, annotationContainerdName} {
			if v := d.Annotations[k]; v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s *layoutSource) lookup(ref name.Reference) (v1.Descriptor, error) {
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return v1.Descriptor{}, err
		}
		return v1.Descriptor{Digest: h}, nil
	}
	for _, k := range []string{ref.String(), ref.Name(), ref.Context().RepositoryStr() + ":" + ref.Identifier(), ref.Identifier()} {
		if d, ok := s.refs[k]; ok {
			return d, nil
		}
	}
	return v1.Descriptor{}, &registry.HTTPError{Method: "GET", URL: "oci-layout:" + ref.String(), StatusCode: http.StatusNotFound, Codes: []string{"MANIFEST_UNKNOWN"}, Message: "no such reference in the OCI layout"}
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
