package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/archfit/archfit/internal/testimage"
)

// writeLayout writes one OCI layout whose index.json names each object
// with the annotations given.
func writeLayout(t *testing.T, dir string, entries ...layoutFixture) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		opt := layout.WithAnnotations(e.annotations)
		switch o := e.obj.(type) {
		case v1.ImageIndex:
			err = p.AppendIndex(o, opt)
		case v1.Image:
			err = p.AppendImage(o, opt)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

type layoutFixture struct {
	obj         any
	annotations map[string]string
}

func multiArch() v1.ImageIndex {
	return testimage.Index(
		testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64"),
		testimage.For(testimage.App("linux/arm64", "arm64"), "linux/arm64"))
}

func amd64Only() v1.Image { return testimage.App("linux/amd64", "amd64") }

func inspectLayout(t *testing.T, opt Option, refs ...string) []*Report {
	t.Helper()
	r, err := NewResolver(opt, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for _, ref := range refs {
		reqs = append(reqs, Request{Ref: ref})
	}
	return r.InspectAll(context.Background(), reqs)
}

// TestLayoutTagNeverAnswersForAnotherRepository is the cross-match of
// issue 11: a buildx/containerd layout names valkey by
// io.containerd.image.name with only "7.2" in ref.name, and a skopeo layout
// holds one unrelated image tagged v0.10.3. Neither may answer for redis:7.2
// or for the microservices-demo images of that tag.
func TestLayoutTagNeverAnswersForAnotherRepository(t *testing.T) {
	dir := t.TempDir()
	writeLayout(t, dir,
		layoutFixture{amd64Only(), map[string]string{
			"io.containerd.image.name":          "docker.io/bitnami/valkey:7.2",
			"org.opencontainers.image.ref.name": "7.2"}},
		layoutFixture{amd64Only(), map[string]string{"org.opencontainers.image.ref.name": "v0.10.3"}},
		layoutFixture{multiArch(), map[string]string{
			"io.containerd.image.name":          "docker.io/library/redis:7.4",
			"org.opencontainers.image.ref.name": "7.4"}},
	)
	reps := inspectLayout(t, WithOCILayout(dir),
		"redis:7.2",
		"us-central1-docker.pkg.dev/google-samples/microservices-demo/frontend:v0.10.3",
		"us-central1-docker.pkg.dev/google-samples/microservices-demo/cartservice:v0.10.3",
		"bitnami/valkey:7.2",
		"docker.io/library/redis:7.4",
	)
	for _, rep := range reps[:3] {
		if rep.Error == nil {
			t.Errorf("%s: answered by another repository's entry: %s, architectures %v", rep.Reference, rep.Digest, rep.Architectures)
			continue
		}
		if rep.Error.Reason != "not-found" {
			t.Errorf("%s: reason %q, want not-found", rep.Reference, rep.Error.Reason)
		}
	}
	if reps[1].Error != nil && !strings.Contains(reps[1].Error.Detail, "--oci-layout us-central1-docker.pkg.dev/google-samples/microservices-demo/frontend="+dir) {
		t.Errorf("the not-found of a tag an unnamed entry has does not say how to bind it: %s", reps[1].Error.Detail)
	}
	if rep := reps[3]; rep.Error != nil || !slices.Equal(rep.Architectures, []string{"amd64"}) {
		t.Errorf("bitnami/valkey:7.2 (its full name): %+v %v", rep.Error, rep.Architectures)
	}
	if rep := reps[4]; rep.Error != nil || !slices.Equal(rep.Architectures, []string{"amd64", "arm64"}) {
		t.Errorf("redis:7.4 (its full name): %+v %v", rep.Error, rep.Architectures)
	}
}

// TestLayoutBoundToRepository: skopeo-style layouts (ref.name = the tag
// only) answer for their bound repository, each for its own, and every
// report says which entry answered.
func TestLayoutBoundToRepository(t *testing.T) {
	redis, valkey, full := t.TempDir(), t.TempDir(), t.TempDir()
	writeLayout(t, redis, layoutFixture{multiArch(), map[string]string{"org.opencontainers.image.ref.name": "7.2"}})
	writeLayout(t, valkey, layoutFixture{amd64Only(), map[string]string{"org.opencontainers.image.ref.name": "7.2"}})
	writeLayout(t, full, layoutFixture{amd64Only(), map[string]string{"org.opencontainers.image.ref.name": "example.com/shop/api:1.0"}})
	r, err := NewResolver(WithOCILayouts(Layout{Dir: valkey, Repository: "bitnami/valkey"}, Layout{Dir: redis, Repository: "redis"}, Layout{Dir: full}),
		WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	reps := r.InspectAll(context.Background(), []Request{{Ref: "redis:7.2"}, {Ref: "docker.io/bitnami/valkey:7.2"}, {Ref: "example.com/shop/api:1.0"}, {Ref: "redis:7.4"}})
	want := []struct {
		archs []string
		entry LayoutEntry
	}{
		{[]string{"amd64", "arm64"}, LayoutEntry{Dir: redis, Annotation: annotationRefName, Name: "7.2", Repository: "redis"}},
		{[]string{"amd64"}, LayoutEntry{Dir: valkey, Annotation: annotationRefName, Name: "7.2", Repository: "bitnami/valkey"}},
		{[]string{"amd64"}, LayoutEntry{Dir: full, Annotation: annotationRefName, Name: "example.com/shop/api:1.0"}},
	}
	for i, w := range want {
		rep := reps[i]
		if rep.Error != nil {
			t.Errorf("%s: %s", rep.Reference, rep.Error.Detail)
			continue
		}
		if !slices.Equal(rep.Architectures, w.archs) {
			t.Errorf("%s: architectures %v, want %v", rep.Reference, rep.Architectures, w.archs)
		}
		w.entry.Digest = rep.Digest
		if rep.Layout == nil || *rep.Layout != w.entry {
			t.Errorf("%s: answered by %+v, want %+v", rep.Reference, rep.Layout, w.entry)
		}
	}
	if reps[3].Error == nil || reps[3].Error.Reason != "not-found" {
		t.Errorf("redis:7.4, in no layout: %+v", reps[3].Error)
	}
	if got := strings.Join(r.LayoutReferences(), " "); got != "bitnami/valkey:7.2 example.com/shop/api:1.0 redis:7.2" {
		t.Errorf("references %q", got)
	}

	// By digest: the entry of that digest answers, whatever its tag.
	byDigest := inspectLayout(t, WithOCILayouts(Layout{Dir: redis, Repository: "redis"}), "redis@"+reps[0].Digest)[0]
	if byDigest.Error != nil || byDigest.Layout == nil || byDigest.Layout.Name != "7.2" || byDigest.Layout.Digest != reps[0].Digest {
		t.Errorf("by digest: %+v %+v", byDigest.Error, byDigest.Layout)
	}
}

// TestLayoutAmbiguous: two layouts naming one reference with different
// digests is an error that names both, never a silent first pick.
func TestLayoutAmbiguous(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeLayout(t, a, layoutFixture{multiArch(), map[string]string{"org.opencontainers.image.ref.name": "7.2"}})
	writeLayout(t, b, layoutFixture{amd64Only(), map[string]string{"io.containerd.image.name": "docker.io/library/redis:7.2"}})
	rep := inspectLayout(t, WithOCILayouts(Layout{Dir: a, Repository: "redis"}, Layout{Dir: b}), "redis:7.2")[0]
	if rep.Error == nil || rep.Error.Reason != "ambiguous" || !strings.Contains(rep.Error.Detail, a) || !strings.Contains(rep.Error.Detail, b) {
		t.Fatalf("two entries of different digests for redis:7.2: %+v", rep.Error)
	}
}

// TestLayoutNoTagCacheAcrossLayouts: a tag answered by one layout is not
// remembered for the next run against another layout.
func TestLayoutNoTagCacheAcrossLayouts(t *testing.T) {
	a, b, cache := t.TempDir(), t.TempDir(), t.TempDir()
	writeLayout(t, a, layoutFixture{amd64Only(), map[string]string{"org.opencontainers.image.ref.name": "example.com/app:1"}})
	writeLayout(t, b, layoutFixture{multiArch(), map[string]string{"org.opencontainers.image.ref.name": "example.com/app:1"}})
	for _, c := range []struct {
		dir   string
		archs []string
	}{{a, []string{"amd64"}}, {b, []string{"amd64", "arm64"}}} {
		r, err := NewResolver(WithOCILayout(c.dir), WithCacheDir(cache))
		if err != nil {
			t.Fatal(err)
		}
		rep := r.Inspect(context.Background(), Request{Ref: "example.com/app:1"})
		if rep.Error != nil || !slices.Equal(rep.Architectures, c.archs) {
			t.Errorf("layout %s: %+v %v, want %v", c.dir, rep.Error, rep.Architectures, c.archs)
		}
	}
}

// TestLayoutWrittenBySkopeo reads a layout skopeo itself wrote with
// `skopeo copy oci:SRC:TAG oci:DST:7.2` (ref.name "7.2" only).
func TestLayoutWrittenBySkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed")
	}
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "redis")
	writeLayout(t, src, layoutFixture{multiArch(), map[string]string{"org.opencontainers.image.ref.name": "src"}})
	out, err := exec.Command(skopeo, "copy", "--all", "oci:"+src+":src", "oci:"+dst+":7.2").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	idx, err := os.ReadFile(filepath.Join(dst, "index.json"))
	if err != nil || !strings.Contains(string(idx), `"org.opencontainers.image.ref.name":"7.2"`) {
		t.Fatalf("skopeo wrote %s (%v)", idx, err)
	}
	if rep := inspectLayout(t, WithOCILayout(dst), "redis:7.2")[0]; rep.Error == nil {
		t.Errorf("an unbound skopeo layout answered for redis:7.2: %v", rep.Architectures)
	}
	rep := inspectLayout(t, WithOCILayouts(Layout{Dir: dst, Repository: "redis"}), "redis:7.2")[0]
	if rep.Error != nil || !slices.Equal(rep.Architectures, []string{"amd64", "arm64"}) || rep.Layout == nil || rep.Layout.Name != "7.2" {
		t.Errorf("bound skopeo layout: %+v %v %+v", rep.Error, rep.Architectures, rep.Layout)
	}
}

func TestParseLayout(t *testing.T) {
	existing := t.TempDir()
	for _, c := range []struct {
		in      string
		want    Layout
		wantErr bool
	}{
		{"./images", Layout{Dir: "./images"}, false},
		{existing, Layout{Dir: existing}, false},
		{"redis=./redis", Layout{Dir: "./redis", Repository: "redis"}, false},
		{"localhost:5000/team/app=/tmp/x=y", Layout{Dir: "/tmp/x=y", Repository: "localhost:5000/team/app"}, false},
		{"redis:7.2=./redis", Layout{}, true},
		{"redis=", Layout{}, true},
		{"", Layout{}, true},
	} {
		got, err := ParseLayout(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("ParseLayout(%q) = %+v, %v; want %+v, error %t", c.in, got, err, c.want, c.wantErr)
		}
	}
}
