package verify

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/archfit/archfit/internal/testimage"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
// the seeds. Fuzzing it is slow here (13 inputs in a minute under the
// fuzzing engine, while 300 randomly mutated layers walk in under a second
// outside it, so the walk itself is not what is slow): give it
// -fuzztime 10m or more.
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
	for _, s := range seeds {
		b, err := testimage.Tar(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			return
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
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
		ep, err := Entrypoint(context.Background(), img, WithArch("amd64"), WithLimits(Limits{Decompressed: 8 << 20, LayerDecompressed: 8 << 20, Compressed: 8 << 20, File: 1 << 20}))
		if err == nil && ep == nil {
			t.Fatal("no verdict and no error")
		}
	})
}
