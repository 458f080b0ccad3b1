package conformance

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/registry"
)

// Registry is an in-process registry holding every case.
type Registry struct {
	Host  string // host:port, plain HTTP
	Built map[string]Built
}

// Ref is a case's reference in the registry.
func (r *Registry) Ref(c string) string { return r.Host + "/conformance/" + c + ":v1" }

// Redact writes the registry's host:port as REGISTRY.
func (r *Registry) Redact(s string) string { return strings.ReplaceAll(s, r.Host, "REGISTRY") }

// ServeCases starts a registry (go-containerregistry's, in process, on
// loopback) and pushes every case to it.
func ServeCases(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	reg := &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), Built: map[string]Built{}}
	for _, c := range Cases {
		b, err := c.Build()
		if err != nil {
			t.Fatalf("case %s: %v", c.Name, err)
		}
		ref, err := name.ParseReference(reg.Ref(c.Name), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		switch top := b.Top.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(ref, top)
		case v1.Image:
			err = remote.Write(ref, top)
		}
		if err != nil {
			t.Fatalf("pushing case %s: %v", c.Name, err)
		}
		reg.Built[c.Name] = b
	}
	return reg
}

// entryPlatform is how a row names the entry with manifest digest d: the
// platform the index declares for it, or "config OS/ARCH" when it declares
// none.
func entryPlatform(c Case, b Built, d string) string {
	var walk func(es []CaseEntry, path string) string
	walk = func(es []CaseEntry, path string) string {
		for i, en := range es {
			pos := fmt.Sprintf("%s%d", path, i)
			if en.Nested != nil {
				if s := walk(en.Nested, pos+"."); s != "" {
					return s
				}
				continue
			}
			img, err := c.image(en, pos)
			if err != nil {
				continue
			}
			md, err := img.Digest()
			if err != nil || md.String() != d {
				continue
			}
			if en.Declared == nil {
				if path != "" {
					return "nested, config " + en.Config
				}
				return "config " + en.Config
			}
			s := en.Declared.OS + "/" + en.Declared.Architecture
			if en.Declared.Variant != "" {
				s += "/" + en.Declared.Variant
			}
			if len(en.Declared.OSFeatures) > 0 {
				s += "+" + strings.Join(en.Declared.OSFeatures, ",")
			}
			if path != "" {
				s = "nested " + s
			}
			return s
		}
		return ""
	}
	return walk(c.Entries, "")
}

// Predict is archfit's prediction for rows of one runtime string, path and
// node architecture: the code path `archfit inspect REF --node
// linux/ARCH=RUNTIME` takes.
func Predict(ctx context.Context, reg *Registry, runtime, path, arch string) ([]Row, error) {
	spec, err := platform.ParseNodeSpec("linux/" + arch + "=" + runtime)
	if err != nil {
		return nil, err
	}
	res, err := image.NewResolver(image.WithRegistryClient(registry.New(registry.WithPlainHTTP())), image.WithNodes(spec.Platform))
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, c := range Cases {
		rep := res.Inspect(ctx, image.Request{Ref: reg.Ref(c.Name)})
		row := Row{Runtime: runtime, Path: path, Arch: arch, Case: c.Name}
		if rep.Error != nil {
			return nil, fmt.Errorf("archfit could not inspect case %s: %s", c.Name, rep.Error.Detail)
		}
		var got *image.Pull
		for _, p := range rep.PullsFor([]platform.NodeSpec{spec}) {
			if p.Runtime.Base() == pathRuntime(runtime, path) {
				p := p
				got = &p
				break
			}
		}
		switch {
		case got == nil:
			row.Code, row.Error = "?", fmt.Sprintf("archfit predicts no %s pull for this runtime", path)
		case got.Error != "":
			row.Code, row.Error = "?", reg.Redact(got.Error)
		default:
			row.Entry = got.Digest
			row.Platform = entryPlatform(c, reg.Built[c.Name], got.Digest)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// pathRuntime is archfit's matcher for a runtime's pull path: CRI-O has
// one; containerd a local and (2.1+) a transfer path.
func pathRuntime(runtime, path string) platform.Runtime {
	if strings.HasPrefix(runtime, "cri-o://") {
		return platform.CRIO
	}
	if path == "transfer" {
		return platform.ContainerdTransfer
	}
	return platform.ContainerdLocal
}
