package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry starts a real in-process registry for the test and returns
// its host:port and a push that writes an image or index as repo:tag and
// returns the full reference.
func testRegistry(t *testing.T) (host string, push func(repo string, obj any) string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	return host, func(repo string, obj any) string {
		t.Helper()
		ref := host + "/" + repo
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		switch o := obj.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(r, o)
		case v1.Image:
			err = remote.Write(r, o)
		default:
			t.Fatalf("push %s: %T is not an image or index", repo, obj)
		}
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
}

// testLayout writes indexes to a new OCI layout, each named by its full
// reference (org.opencontainers.image.ref.name), and returns its path.
func testLayout(t *testing.T, dir string, indexes map[string]v1.ImageIndex) string {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for ref, idx := range indexes {
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
