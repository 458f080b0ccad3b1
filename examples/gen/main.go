// Command gen writes examples/images: an OCI image layout of small, real
// images (static ELF executables of a few hundred bytes) that show every
// shape archfit tells apart. Digests are reproducible: run it again and git
// shows no change.
//
//	go run ./examples/gen examples/images
package main

import (
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	ti "github.com/archfit/archfit/internal/testimage"
)

const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func server(platform, binArch string) v1.Image {
	// merged-usr: /bin -> usr/bin in the base layer, the binary in an upper
	// layer, found through PATH.
	return ti.Must(ti.Spec{
		Platform: platform,
		Layers: [][]ti.File{
			{{Path: "/usr", Dir: true}, {Path: "/usr/bin", Dir: true}, {Path: "/bin", Link: "usr/bin"}},
			{{Path: "/usr/bin/server", Data: ti.ELF(binArch)}},
		},
		Cmd:         []string{"server", "--listen=:8080"},
		Env:         []string{path},
		Annotations: map[string]string{"org.opencontainers.image.base.name": "example.com/base/distroless:1"},
	}.Build())
}

func run(dir string) error {
	os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	add := func(ref string, obj any) error {
		ann := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})
		switch o := obj.(type) {
		case v1.ImageIndex:
			return p.AppendIndex(o, ann)
		case v1.Image:
			return p.AppendImage(o, ann)
		}
		return fmt.Errorf("%s: unexpected %T", ref, obj)
	}
	apiAMD, apiARM := server("linux/amd64", "amd64"), server("linux/arm64/v8", "arm64")
	cacheAMD := ti.App("linux/amd64", "amd64")
	// Mislabeled: the index entry and its config say arm64, the binary
	// inside is x86-64 (a build that forgot to cross-compile).
	exporterARM := ti.Must(ti.Spec{
		Platform:   "linux/arm64",
		Layers:     [][]ti.File{{{Path: "/bin/exporter", Data: ti.ELF("amd64")}}},
		Entrypoint: []string{"/bin/exporter"},
		Env:        []string{path},
	}.Build())
	script := func(platform string) v1.Image {
		return ti.Must(ti.Spec{
			Platform: platform,
			Layers: [][]ti.File{
				{{Path: "/bin", Dir: true}, {Path: "/bin/sh", Data: ti.ELF(platformArch(platform))}},
				{{Path: "/migrate.sh", Data: []byte("set -e\necho migrating\n")}},
			},
			Entrypoint: []string{"/migrate.sh"},
			Env:        []string{path},
		}.Build())
	}
	steps := []struct {
		ref string
		obj any
	}{
		{"example.com/shop/api:1.0", ti.Index(ti.For(apiAMD, "linux/amd64"), ti.For(apiARM, "linux/arm64/v8"), ti.Attestation(apiAMD), ti.Attestation(apiARM))},
		{"example.com/shop/worker:2.3", ti.App("linux/amd64", "amd64")},
		{"example.com/shop/cache:7.2", ti.Index(ti.For(cacheAMD, "linux/amd64"), ti.Attestation(cacheAMD))},
		{"example.com/shop/exporter:0.9", ti.Index(ti.For(ti.App("linux/amd64", "amd64"), "linux/amd64"), ti.For(exporterARM, "linux/arm64"))},
		{"example.com/shop/legacy:3", ti.DockerList(ti.For(ti.App("linux/amd64", "amd64"), "linux/amd64"), ti.For(ti.App("linux/arm/v7", "arm"), "linux/arm/v7"))},
		{"example.com/tools/migrate:1", ti.Index(ti.For(script("linux/amd64"), "linux/amd64"), ti.For(script("linux/arm64/v8"), "linux/arm64/v8"))},
	}
	for _, s := range steps {
		if err := add(s.ref, s.obj); err != nil {
			return fmt.Errorf("%s: %w", s.ref, err)
		}
	}
	return nil
}

func platformArch(p string) string {
	switch p {
	case "linux/arm64/v8", "linux/arm64":
		return "arm64"
	}
	return "amd64"
}
