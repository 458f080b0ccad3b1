package release

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/testenv"
)

// The same inputs give the same digest, and the epoch is in it: the image
// is reproducible from the source and SOURCE_DATE_EPOCH.
func TestAssembleIsReproducible(t *testing.T) {
	o := ImageOptions{ModuleRoot: repoRoot(t), Version: "v1.2.3", Source: DefaultSource, Platforms: DefaultPlatforms,
		Epoch: time.Unix(1700000000, 0).UTC()}
	bins := [][]byte{[]byte("\x7fELF amd64 stand-in"), []byte("\x7fELF arm64 stand-in")}
	digest := func(o ImageOptions, ca []byte) v1.Hash {
		t.Helper()
		idx, err := assemble(o, bins, ca)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest(o, []byte("ca"))
	if again := digest(o, []byte("ca")); again != first {
		t.Errorf("same inputs, digests %s and %s", first, again)
	}
	later := o
	later.Epoch = o.Epoch.Add(time.Second)
	if d := digest(later, []byte("ca")); d == first {
		t.Errorf("another SOURCE_DATE_EPOCH gave the same digest %s", d)
	}
	if d := digest(o, []byte("other ca")); d == first {
		t.Errorf("another CA bundle gave the same digest %s", d)
	}
}

func TestEpochFromEnv(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1764547200")
	if e, err := EpochFromEnv(); err != nil || !e.Equal(time.Unix(1764547200, 0)) {
		t.Errorf("EpochFromEnv() = %v, %v", e, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := EpochFromEnv(); err == nil {
		t.Error("SOURCE_DATE_EPOCH=yesterday was accepted")
	}
}

// TestOwnImage builds archfit's image from this checkout for both
// architectures, pushes it to the test environment's registry (a
// repository that needs credentials), and has archfit's own inspect
// --verify read it back: both entries must be genuine for their
// architecture. The binaries are cached under the Go build cache by the
// hash of their source, so a second run only assembles and pushes.
func TestOwnImage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles archfit twice (cached afterwards)")
	}
	ctx := t.Context()
	cache, err := DefaultBinaryCache(ctx)
	if err != nil {
		t.Skip(err)
	}
	ca := DefaultCACertificates
	if _, err := os.Stat(ca); err != nil {
		ca = ""
	}
	epoch := time.Unix(1764547200, 0).UTC()
	begin := time.Now()
	idx, err := BuildImage(ctx, ImageOptions{ModuleRoot: repoRoot(t), Version: "v0.0.0-test", Revision: "test",
		Epoch: epoch, CACertificates: ca, CacheDir: cache, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %s", time.Since(begin).Round(time.Millisecond))
	checkIndex(t, idx, epoch, ca != "")

	srv := httptest.NewServer(testenv.RegistryHandler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host + "/private/archfit:v0.0.0-test")
	if err != nil {
		t.Fatal(err)
	}
	// The repository needs credentials: an anonymous push is refused.
	var terr *transport.Error
	if err := Push(ctx, ref, idx); !errors.As(err, &terr) || terr.StatusCode != 401 {
		t.Fatalf("anonymous push: %v, want 401", err)
	}
	if err := Push(ctx, ref, idx, remote.WithAuth(&authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword})); err != nil {
		t.Fatal(err)
	}

	cfg := filepath.Join(t.TempDir(), "config.json")
	auth, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
		"username": testenv.RegistryUser, "password": testenv.RegistryPassword}}})
	if err := os.WriteFile(cfg, auth, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := cli.NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs([]string{"inspect", "--verify", "--no-cache", "--registry-config", cfg, "--insecure-registry", host, "-o", "json", ref.String()})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("archfit inspect --verify %s: %v (exit %d)\n%s", ref, err, cli.ExitCode(err), errOut.String())
	}
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
		Images   []struct {
			Digest  string `json:"digest"`
			Kind    string `json:"kind"`
			Entries []struct {
				Platform, ConfigPlatform struct{ Architecture, OS, Variant string }
				Entrypoint               *struct {
					Path, Arch, Verdict string
					Static              bool
				}
			} `json:"entries"`
		} `json:"images"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("inspect output: %v\n%s", err, out.String())
	}
	if len(doc.Findings) != 0 || len(doc.Images) != 1 {
		t.Fatalf("inspect: %d findings, %d images, want none and one\n%s", len(doc.Findings), len(doc.Images), out.String())
	}
	im := doc.Images[0]
	if d, _ := idx.Digest(); im.Kind != "index" || im.Digest != d.String() {
		t.Errorf("inspect read a %s %s, want the index %s", im.Kind, im.Digest, d)
	}
	genuine := map[string]bool{}
	for _, e := range im.Entries {
		ep := e.Entrypoint
		if ep == nil {
			t.Errorf("entry %s: no entrypoint check", e.Platform.Architecture)
			continue
		}
		if e.Platform.OS != "linux" || e.ConfigPlatform != e.Platform || ep.Path != BinaryPath || ep.Arch != e.Platform.Architecture || ep.Verdict != "ok" || !ep.Static {
			t.Errorf("entry %+v: config %+v, entrypoint %+v: not genuine", e.Platform, e.ConfigPlatform, *ep)
			continue
		}
		genuine[e.Platform.Architecture] = true
	}
	if !genuine["amd64"] || !genuine["arm64"] || len(im.Entries) != 2 {
		t.Errorf("genuine entries %v of %d, want amd64 and arm64 of 2\n%s", genuine, len(im.Entries), out.String())
	}
}

// checkIndex reads what the builder promises from the index itself:
// an OCI index of two OCI images, each with its platform in the
// descriptor and the config, the nonroot user, the entrypoint, the labels
// and the fixed times.
func checkIndex(t *testing.T, idx v1.ImageIndex, epoch time.Time, withCA bool) {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != "application/vnd.oci.image.index.v1+json" || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Platform().String() != d.Platform.String() {
			t.Errorf("descriptor says %s, config %s", d.Platform, cf.Platform())
		}
		c := cf.Config
		if c.User != "65532:65532" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != BinaryPath || !cf.Created.Equal(epoch) {
			t.Errorf("%s: user %q, entrypoint %q, created %s", d.Platform, c.User, c.Entrypoint, cf.Created)
		}
		for k, want := range map[string]string{"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.source": DefaultSource, "org.opencontainers.image.version": "v0.0.0-test"} {
			if c.Labels[k] != want {
				t.Errorf("%s: label %s=%q, want %q", d.Platform, k, c.Labels[k], want)
			}
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers, %v", d.Platform, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]*tar.Header{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !h.ModTime.Equal(epoch) {
				t.Errorf("%s: %s modified %s, want %s", d.Platform, h.Name, h.ModTime, epoch)
			}
			files[h.Name] = h
		}
		rc.Close()
		if h := files["usr/local/bin/archfit"]; h == nil || h.Mode&0o111 == 0 {
			t.Errorf("%s: no executable usr/local/bin/archfit", d.Platform)
		}
		if h := files["home/nonroot/"]; h == nil || h.Uid != NonRootUID {
			t.Errorf("%s: no home/nonroot owned by %d", d.Platform, NonRootUID)
		}
		if _, ok := files["etc/ssl/certs/ca-certificates.crt"]; ok != withCA {
			t.Errorf("%s: CA bundle in the image: %v, want %v", d.Platform, ok, withCA)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// The binary cache keeps the newest entries and the current one, and
// drops build directories a killed build left behind.
func TestPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	mk := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "linux-amd64"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	key := func(c byte) string { return strings.Repeat(string(c), 32) }
	mk(key('a'), 4*time.Hour) // current, oldest: kept
	mk(key('b'), 3*time.Hour)
	mk(key('c'), 2*time.Hour)
	mk(key('d'), time.Hour)
	mk("build-old", 2*time.Hour)
	mk("build-running", time.Minute)
	prune(dir, key('a'), 3)
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{key('a'), "build-running", key('c'), key('d')} // by name, as ReadDir lists them
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("left %v, want %v", left, want)
	}
}

// The binary cache's key covers every platform's files: an edit to a file
// built only for arm64 (or an assembly file) builds anew, as one to a file
// built for every platform does; a file built for no platform of the image
// does not.
func TestSourceKeyCoversEveryPlatform(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.test/keyed\n\ngo 1.22\n")
	write("go.sum", "")
	write("cmd/archfit/main.go", "package main\n\nfunc main() { hello() }\n")
	write("cmd/archfit/hello_amd64.go", "package main\n\nfunc hello() {}\n")
	write("cmd/archfit/hello_arm64.go", "package main\n\nfunc hello() {}\n")
	write("cmd/archfit/hello_riscv64.go", "package main\n\nfunc hello() {}\n")
	o := ImageOptions{ModuleRoot: root, Version: "v1", Platforms: DefaultPlatforms}
	key := func() string {
		t.Helper()
		k, err := sourceKey(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key()
	if again := key(); again != base {
		t.Fatalf("same source, keys %s and %s", base, again)
	}
	for _, c := range []struct {
		file    string
		changes bool
	}{
		{"cmd/archfit/hello_arm64.go", true},
		{"cmd/archfit/hello_amd64.go", true},
		{"cmd/archfit/main.go", true},
		{"cmd/archfit/hello_riscv64.go", false},
	} {
		b, err := os.ReadFile(filepath.Join(root, c.file))
		if err != nil {
			t.Fatal(err)
		}
		write(c.file, string(b)+"\n// edited\n")
		if got := key(); (got != base) != c.changes {
			t.Errorf("after editing %s the key changed: %t, want %t", c.file, got != base, c.changes)
		}
		write(c.file, string(b))
	}
}
