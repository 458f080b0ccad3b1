package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one tar entry of a layer. Exactly one of Data (regular file), Link
// (symlink target), Hardlink (tar hardlink to another path), Dir is meant;
// a whiteout is a File named ".wh.NAME" (or ".wh..wh..opq") with no data.
type File struct {
	Path     string
	Data     []byte
	Mode     int64 // default 0755 for files and dirs
	Link     string
	Hardlink string
	Dir      bool
}

// Spec describes a single-platform image.
type Spec struct {
	// Platform written to the config blob, os/arch[/variant] ("linux/amd64").
	Platform string
	// Layers, bottom first; entries in tar order.
	Layers     [][]File
	Entrypoint []string
	Cmd        []string
	Env        []string
	// Annotations on the manifest (e.g. org.opencontainers.image.base.name).
	Annotations map[string]string
	// Docker selects Docker schema 2 media types instead of OCI.
	Docker bool
}

var epoch = time.Unix(0, 0).UTC()

// Build assembles the image. Layers are gzip-compressed tarballs.
func (s Spec) Build() (v1.Image, error) {
	os, arch, variant, err := splitPlatform(s.Platform)
	if err != nil {
		return nil, err
	}
	mt, cmt := types.OCIManifestSchema1, types.OCIConfigJSON
	lmt := types.OCILayer
	if s.Docker {
		mt, cmt, lmt = types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	}
	img := mutate.MediaType(empty.Image, mt)
	img = mutate.ConfigMediaType(img, cmt)
	for i, files := range s.Layers {
		data, err := Tar(files)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(lmt))
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: fmt.Sprintf("layer %d", i)}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = os, arch, variant
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Cmd = s.Cmd
	cf.Config.Env = s.Env
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	if len(s.Annotations) > 0 {
		img = mutate.Annotations(img, s.Annotations).(v1.Image)
	}
	return img, nil
}

// Must panics on error; for tests and fixtures only.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Tar writes files as an uncompressed tar stream with fixed times and owners.
func Tar(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, "/")
		h := &tar.Header{Name: name, ModTime: epoch, Mode: f.Mode, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, strings.TrimSuffix(name, "/")+"/"
		case f.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		case f.Hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, strings.TrimPrefix(f.Hardlink, "/")
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if h.Mode == 0 {
			h.Mode = 0o755
			if h.Typeflag == tar.TypeSymlink {
				h.Mode = 0o777
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func splitPlatform(s string) (os, arch, variant string, err error) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		return parts[0], parts[1], "", nil
	case 3:
		return parts[0], parts[1], parts[2], nil
	}
	return "", "", "", fmt.Errorf("platform %q: want os/arch[/variant]", s)
}

// ParsePlatform turns "os/arch[/variant]" into a *v1.Platform; "" gives nil.
func ParsePlatform(s string) *v1.Platform {
	if s == "" {
		return nil
	}
	os, arch, variant, err := splitPlatform(s)
	if err != nil {
		panic(err)
	}
	return &v1.Platform{OS: os, Architecture: arch, Variant: variant}
}

// App is the common case: one layer with a static ELF for binArch at /app
// (entrypoint ["/app"]), and a config that says platform.
func App(platform, binArch string) v1.Image {
	return Must(Spec{
		Platform:   platform,
		Layers:     [][]File{{{Path: "/app", Data: ELF(binArch)}}},
		Entrypoint: []string{"/app"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}.Build())
}

// Entry is one manifest of an index, with the platform the index declares
// for it (nil: the entry declares none).
type Entry struct {
	Image       v1.Image
	Platform    *v1.Platform
	Annotations map[string]string
}

// For is an Entry that declares exactly the given platform string.
func For(img v1.Image, platform string) Entry {
	return Entry{Image: img, Platform: ParsePlatform(platform)}
}

// Index assembles an OCI image index of entries, in order.
func Index(entries ...Entry) v1.ImageIndex {
	return index(types.OCIImageIndex, entries)
}

// DockerList assembles a Docker manifest list of entries, in order.
func DockerList(entries ...Entry) v1.ImageIndex {
	return index(types.DockerManifestList, entries)
}

func index(mt types.MediaType, entries []Entry) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, mt)
	adds := make([]mutate.IndexAddendum, 0, len(entries))
	for _, e := range entries {
		mmt, err := e.Image.MediaType()
		if err != nil {
			panic(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: e.Image, Descriptor: v1.Descriptor{
			MediaType: mmt, Platform: e.Platform, Annotations: e.Annotations,
		}})
	}
	return mutate.AppendManifests(idx, adds...)
}

// Attestation builds the BuildKit attestation manifest entry for subject:
// platform unknown/unknown, annotations vnd.docker.reference.type and
// vnd.docker.reference.digest, an in-toto layer.
func Attestation(subject v1.Image) Entry {
	d, err := subject.Digest()
	if err != nil {
		panic(err)
	}
	att := Must(Spec{
		Platform: "unknown/unknown",
		Layers:   [][]File{{{Path: "/sbom.spdx.json", Data: []byte(`{"spdxVersion":"SPDX-2.3","name":"` + d.String() + `"}`), Mode: 0o644}}},
	}.Build())
	return Entry{
		Image:    att,
		Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{
			"vnd.docker.reference.type":   "attestation-manifest",
			"vnd.docker.reference.digest": d.String(),
		},
	}
}

// MultiArch builds an OCI index with one honest App entry per platform.
func MultiArch(platforms ...string) v1.ImageIndex {
	var es []Entry
	for _, p := range platforms {
		_, arch, _, err := splitPlatform(p)
		if err != nil {
			panic(err)
		}
		es = append(es, For(App(p, arch), p))
	}
	return Index(es...)
}
