package conformance

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/archfit/archfit/internal/testimage"
)

// Case is one image shape every runtime pulls.
type Case struct {
	Name string
	// What is the shape, in words, for the truth table.
	What string
	// Entries of the index in order; a Single case is one manifest.
	Entries []CaseEntry
	Single  bool
	Docker  bool // Docker schema 2 media types instead of OCI
}

// CaseEntry is one entry: Config is the platform its config blob says,
// Declared what the index declares for it (nil: no platform). Nested makes
// the entry an index of these entries instead.
type CaseEntry struct {
	Config      string
	Declared    *v1.Platform
	Attestation bool
	Nested      []CaseEntry
}

func decl(s string, features ...string) *v1.Platform {
	p := testimage.ParsePlatform(s)
	p.OSFeatures = features
	return p
}

func e(p string) CaseEntry { return CaseEntry{Config: p, Declared: decl(p)} }

// noPlatform is an entry whose index descriptor names no platform.
func noPlatform(config string) CaseEntry { return CaseEntry{Config: config} }

// Cases are the shapes archfit models, and those issue 12 found runtimes
// disagree on.
var Cases = []Case{
	{Name: "index", What: "OCI index: linux/amd64, linux/arm64", Entries: []CaseEntry{e("linux/amd64"), e("linux/arm64")}},
	{Name: "docker-list", What: "Docker manifest list: linux/amd64, linux/arm64", Docker: true, Entries: []CaseEntry{e("linux/amd64"), e("linux/arm64")}},
	{Name: "attestations", What: "linux/amd64, linux/arm64 and their BuildKit attestation manifests (unknown/unknown)",
		Entries: []CaseEntry{e("linux/amd64"), e("linux/arm64"), {Config: "unknown/unknown", Declared: decl("unknown/unknown"), Attestation: true}, {Config: "unknown/unknown", Declared: decl("unknown/unknown"), Attestation: true}}},
	{Name: "amd64-only", What: "OCI index: linux/amd64 only", Entries: []CaseEntry{e("linux/amd64")}},
	{Name: "arm64-only", What: "OCI index: linux/arm64 only", Entries: []CaseEntry{e("linux/arm64")}},
	{Name: "docker-list-amd64-only", What: "Docker manifest list: linux/amd64 only", Docker: true, Entries: []CaseEntry{e("linux/amd64")}},
	{Name: "single-amd64", What: "a single manifest, config linux/amd64", Single: true, Entries: []CaseEntry{e("linux/amd64")}},
	{Name: "single-arm64", What: "a single manifest, config linux/arm64", Single: true, Entries: []CaseEntry{e("linux/arm64")}},
	{Name: "no-platform-amd64-arm64", What: "entries without a platform: config amd64, then config arm64",
		Entries: []CaseEntry{noPlatform("linux/amd64"), noPlatform("linux/arm64")}},
	{Name: "no-platform-arm64-amd64", What: "entries without a platform: config arm64, then config amd64",
		Entries: []CaseEntry{noPlatform("linux/arm64"), noPlatform("linux/amd64")}},
	{Name: "amd64-then-no-platform-arm64", What: "linux/amd64, then an entry without a platform whose config is arm64",
		Entries: []CaseEntry{e("linux/amd64"), noPlatform("linux/arm64")}},
	{Name: "os-features", What: "linux/amd64 and linux/arm64, both listing os.features [\"archfit.test\"]",
		Entries: []CaseEntry{{Config: "linux/amd64", Declared: decl("linux/amd64", "archfit.test")}, {Config: "linux/arm64", Declared: decl("linux/arm64", "archfit.test")}}},
	{Name: "amd64-armv7", What: "linux/amd64, linux/arm/v7 (arm64 nodes may fall back to arm/v7)", Entries: []CaseEntry{e("linux/amd64"), e("linux/arm/v7")}},
	{Name: "386-arm64", What: "linux/386, linux/arm64 (amd64 nodes may fall back to 386)", Entries: []CaseEntry{e("linux/386"), e("linux/arm64")}},
	{Name: "armv7-only", What: "linux/arm/v7 only", Entries: []CaseEntry{e("linux/arm/v7")}},
	{Name: "386-only", What: "linux/386 only", Entries: []CaseEntry{e("linux/386")}},
	{Name: "amd64v3-arm64v8.2", What: "linux/amd64/v3, linux/arm64/v8.2 (variants above the baseline only)", Entries: []CaseEntry{e("linux/amd64/v3"), e("linux/arm64/v8.2")}},
	{Name: "amd64v3-first", What: "linux/amd64/v3, then linux/amd64, linux/arm64", Entries: []CaseEntry{e("linux/amd64/v3"), e("linux/amd64"), e("linux/arm64")}},
	{Name: "arm64-novariant-v8", What: "linux/arm64 (no variant), then linux/arm64/v8", Entries: []CaseEntry{e("linux/arm64"), e("linux/arm64/v8")}},
	{Name: "windows-first", What: "windows/amd64, then linux/amd64, linux/arm64", Entries: []CaseEntry{e("windows/amd64"), e("linux/amd64"), e("linux/arm64")}},
	{Name: "nested", What: "an index whose only entry is an index of linux/amd64, linux/arm64",
		Entries: []CaseEntry{{Nested: []CaseEntry{e("linux/amd64"), e("linux/arm64")}}}},
	{Name: "nested-amd64-then-amd64", What: "an index of linux/amd64 (nested, no platform), then linux/amd64",
		Entries: []CaseEntry{{Nested: []CaseEntry{e("linux/amd64")}}, e("linux/amd64")}},
	{Name: "no-platform-with-attestation", What: "an entry without a platform (config amd64), then an attestation manifest (unknown/unknown)",
		Entries: []CaseEntry{noPlatform("linux/amd64"), {Config: "unknown/unknown", Declared: decl("unknown/unknown"), Attestation: true}}},
	{Name: "nested-then-amd64", What: "an index of linux/arm64 (nested, no platform), then linux/amd64",
		Entries: []CaseEntry{{Nested: []CaseEntry{e("linux/arm64")}}, e("linux/amd64")}},
}

// Built is a case's image as pushed: the index (or manifest) and, by config
// digest, the manifest digest of each entry (a runtime reports the config
// digest as the image ID).
type Built struct {
	Top           any // v1.ImageIndex or v1.Image
	ManifestOfCfg map[string]string
}

// Build assembles c. Every config (and so every manifest) carries the case
// name and entry position, so no two cases share a manifest or config: a
// runtime's content store can never answer one case with another's blobs.
func (c Case) Build() (Built, error) {
	b := Built{ManifestOfCfg: map[string]string{}}
	mt := types.OCIImageIndex
	if c.Docker {
		mt = types.DockerManifestList
	}
	if c.Single {
		img, err := c.image(c.Entries[0], "0")
		if err != nil {
			return b, err
		}
		if err := b.record(img); err != nil {
			return b, err
		}
		b.Top = img
		return b, nil
	}
	idx, err := c.index(mt, c.Entries, "", &b)
	b.Top = idx
	return b, err
}

func (c Case) index(mt types.MediaType, es []CaseEntry, path string, b *Built) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, mt)
	for i, en := range es {
		pos := fmt.Sprintf("%s%d", path, i)
		if en.Nested != nil {
			inner, err := c.index(mt, en.Nested, pos+".", b)
			if err != nil {
				return nil, err
			}
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: inner, Descriptor: v1.Descriptor{MediaType: mt, Platform: en.Declared}})
			continue
		}
		img, err := c.image(en, pos)
		if err != nil {
			return nil, err
		}
		if err := b.record(img); err != nil {
			return nil, err
		}
		imt, err := img.MediaType()
		if err != nil {
			return nil, err
		}
		d := v1.Descriptor{MediaType: imt, Platform: en.Declared}
		if en.Attestation {
			d.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: d})
	}
	return idx, nil
}

func (c Case) image(en CaseEntry, pos string) (v1.Image, error) {
	arch := testimage.ParsePlatform(en.Config).Architecture
	files := []testimage.File{{Path: "/etc/archfit-case", Data: []byte(c.Name + " " + pos + "\n"), Mode: 0o644}}
	if arch != "unknown" {
		files = append(files, testimage.File{Path: "/app", Data: testimage.ELF(arch)})
	}
	return testimage.Spec{
		Platform:   en.Config,
		Layers:     [][]testimage.File{files},
		Entrypoint: []string{"/app"},
		Env:        []string{"ARCHFIT_CASE=" + c.Name + "/" + pos},
		Docker:     c.Docker,
	}.Build()
}

func (b *Built) record(img v1.Image) error {
	cd, err := img.ConfigName()
	if err != nil {
		return err
	}
	md, err := img.Digest()
	if err != nil {
		return err
	}
	b.ManifestOfCfg[cd.String()] = md.String()
	return nil
}
