package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/archfit/archfit/internal/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzParse feeds arbitrary file heads to the ELF and shebang parsers: a
// layer from a registry is untrusted input, so no byte pattern may panic
// or read out of bounds. Run longer with
//
//	go test -fuzz FuzzParse -fuzztime 1m ./internal/verify/
func FuzzParse(f *testing.F) {
	for _, arch := range testimage.Arches() {
		f.Add(testimage.ELF(arch))
		f.Add(testimage.DynamicELF(arch, "/lib/ld-linux.so.1"))
	}
	f.Add([]byte("#!/bin/sh\r\nexit 0\n"))
	f.Add([]byte("#!/usr/bin/env -S python3 -u\n"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if isELF(b) {
			_, _ = parseELF(b, int64(len(b)))
			_, _ = parseELF(b, int64(len(b))+1<<20) // a head of a larger file
		}
		_ = parseShebang(b)
	})
}

// FuzzLayer walks a single layer made of arbitrary tar bytes (with
// whiteouts, links and traversal attempts among the seeds): the walker must
// return a verdict, never panic, whatever a registry serves. `go test` runs
// the seeds. Fuzzing it is slow here (13 to 24 inputs in a minute under
// the fuzzing engine, with or without gzip, while 300 randomly mutated
// layers walk in under a second outside it, so the walk itself is not what
// is slow): give it -fuzztime 10m or more.
func FuzzLayer(f *testing.F) {
	seeds := [][]testimage.File{
		{{Path: "/app", Data: testimage.ELF("amd64")}},
		{{Path: "/bin", Link: "usr/bin"}, {Path: "/usr/bin/app", Data: testimage.ELF("arm64")}},
		{{Path: "/bin/busybox", Data: testimage.ELF("amd64")}, {Path: "/app", Hardlink: "/bin/busybox"}},
		{{Path: "/app", Link: "../../../../etc/passwd"}},
		{{Path: "/a", Link: "/b"}, {Path: "/b", Link: "/a"}, {Path: "/app", Link: "/a"}},
		{{Path: "/.wh.app"}, {Path: "/.wh..wh..opq"}},
		{{Path: "/app", Data: []byte("#!/bin/sh\r\n")}, {Path: "/bin/sh", Data: testimage.DynamicELF("amd64", "/lib/ld.so")}},
	}
	// Names deep enough to make the walk quadratic (issue 10, item 9), and
	// ELF headers whose program headers lie far past what is read (item 8).
	var deep []testimage.File
	for i := range 20 {
		deep = append(deep, testimage.File{Path: fmt.Sprintf("/%d", i) + strings.Repeat("/a", 300), Data: []byte("x")})
	}
	seeds = append(seeds, deep, []testimage.File{{Path: strings.Repeat("/a", 300) + "/app", Data: testimage.ELF("amd64")}})
	for _, s := range seeds {
		b, err := testimage.Tar(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(lyingELF(f, 1<<61, 1<<61+4096))
	f.Add(lyingELF(f, 100<<30, 100<<30+4096))
	f.Fuzz(func(t *testing.T, b []byte) {
		walkLayer(t, b)
	})
}

// FuzzELFFile puts arbitrary bytes at /app in a tar entry that claims an
// arbitrary size: whatever the ELF header and the tar header say, nothing
// is allocated past the file limit and the walk ends quickly.
func FuzzELFFile(f *testing.F) {
	f.Add(testimage.ELF("amd64"), uint64(0))
	f.Add(testimage.DynamicELF("arm64", "/lib/ld-linux-aarch64.so.1"), uint64(0))
	for _, off := range []uint64{1 << 61, 100 << 30, 65 << 20} {
		b := testimage.ELF("amd64")
		binary.LittleEndian.PutUint64(b[32:], off)
		f.Add(b, off+4096)
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint64) {
		walkLayer(t, claimed(t, data, size))
	})
}

// claimed is a tar holding /app with data, whose header says size bytes
// (the length of data when size is 0); the stream ends after data.
func claimed(t testing.TB, data []byte, size uint64) []byte {
	if size == 0 || size > 1<<62 {
		size = uint64(len(data))
	}
	if uint64(len(data)) > size {
		data = data[:size]
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "app", Mode: 0o755, Size: int64(size), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if uint64(len(data)) == size {
		tw.Close()
	}
	return buf.Bytes()
}

// lyingELF is /app, an ELF whose program headers lie phoff bytes in, in a
// tar entry claiming size bytes, followed by 64 KiB of the file only.
func lyingELF(t testing.TB, phoff, size uint64) []byte {
	b := append(testimage.ELF("amd64"), make([]byte, 64<<10)...)
	binary.LittleEndian.PutUint64(b[32:], phoff)
	return claimed(t, b, size)
}

// walkLayer verifies an image of the single (uncompressed) layer b with
// small limits, and fails when that takes more than a few seconds.
func walkLayer(t *testing.T, b []byte) {
	img, err := mutate.AppendLayers(empty.Image, plainLayer(b))
	if err != nil {
		return
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config.Entrypoint = []string{"/app"}
	cf.Config.Env = []string{"PATH=/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return
	}
	start := time.Now()
	ep, err := Entrypoint(context.Background(), img, WithArch("amd64"), WithLimits(Limits{Decompressed: 8 << 20, LayerDecompressed: 8 << 20, Compressed: 8 << 20, File: 1 << 20, Entries: 50_000, Lookups: 64 << 20}))
	if err == nil && ep == nil {
		t.Fatal("no verdict and no error")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("walking a %d byte layer took %s", len(b), el)
	}
}

// plainLayer is an uncompressed tar layer, walked as it is (no gzip round
// trip through tarball.LayerFromOpener).
type plainLayer []byte

func (l plainLayer) Digest() (v1.Hash, error) {
	s := sha256.Sum256(l)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}, nil
}
func (l plainLayer) DiffID() (v1.Hash, error)             { return l.Digest() }
func (l plainLayer) Compressed() (io.ReadCloser, error)   { return io.NopCloser(bytes.NewReader(l)), nil }
func (l plainLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l plainLayer) Size() (int64, error)                 { return int64(len(l)), nil }
func (l plainLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
