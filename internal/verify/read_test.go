package verify_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

// rawLayer is a layer given by its compressed bytes, with a DiffID that is
// not computed (a bomb's would take decompressing it all).
type rawLayer struct {
	b  []byte
	mt types.MediaType
}

func (l rawLayer) Digest() (v1.Hash, error) {
	s := sha256.Sum256(l.b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}, nil
}
func (l rawLayer) DiffID() (v1.Hash, error) {
	s := sha256.Sum256(append([]byte("diffid:"), l.b...))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}, nil
}
func (l rawLayer) Compressed() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l.b)), nil }
func (l rawLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("rawLayer: Uncompressed not supported")
}
func (l rawLayer) Size() (int64, error)                { return int64(len(l.b)), nil }
func (l rawLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

// withLayers builds an amd64 image from ready layers, bottom first.
func withLayers(t *testing.T, entrypoint []string, layers ...v1.Layer) v1.Image {
	t.Helper()
	i, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := i.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = []string{stdPath}
	i, err = mutate.ConfigFile(i, cf)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarOf(t *testing.T, files ...file) []byte {
	t.Helper()
	b, err := testimage.Tar(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bomb is a gzip layer holding one file of size zero bytes: a tar header,
// then one small gzip member of 1 MiB of zeros repeated (gzip readers join
// members), so about 1 KiB per MiB.
func bomb(t *testing.T, size int64) []byte {
	t.Helper()
	const chunk = 1 << 20
	hdr := tarOf(t, file{Path: "/zeros", Data: make([]byte, chunk)})[:512] // header of a 1 MiB file
	// Rewrite the size field (octal, 12 bytes at 124) and the checksum.
	copy(hdr[124:136], fmt.Sprintf("%011o\x00", size))
	copy(hdr[148:156], "        ")
	var sum int64
	for _, c := range hdr {
		sum += int64(c)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := gz(t, hdr)
	zeros := gz(t, make([]byte, chunk))
	for range size / chunk {
		out = append(out, zeros...)
	}
	return out
}

func TestGzipBomb(t *testing.T) {
	b := bomb(t, 1<<30)
	t.Logf("bomb: 1 GiB of zeros in %d compressed bytes", len(b))
	app := rawLayer{gz(t, tarOf(t, exe("/app", amd64))), types.OCILayer}
	i := withLayers(t, ep("/app"), app, rawLayer{b, types.OCILayer})
	tests := []struct {
		name   string
		opts   []verify.Option
		detail string
		short  bool
	}{
		{"layer limit", []verify.Option{verify.WithLimits(verify.Limits{LayerDecompressed: 32 << 20})}, "stopped at the limit of 32 MiB of decompressed bytes in layer 2", true},
		{"total limit", []verify.Option{verify.WithLimits(verify.Limits{Decompressed: 16 << 20})}, "stopped at the limit of 16 MiB of decompressed bytes", true},
		{"compressed limit", []verify.Option{verify.WithLimits(verify.Limits{Compressed: 64 << 10})}, "stopped at the limit of 64 KiB of compressed bytes", true},
		{"default limits", nil, "stopped at the limit of 512 MiB of decompressed bytes in layer 2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && !tt.short {
				t.Skip("decompresses 512 MiB")
			}
			got, err := verify.Entrypoint(context.Background(), i, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != image.VerdictUnverifiable || !strings.Contains(got.Detail, tt.detail) {
				t.Fatalf("verdict %s (%s), want %s with %q", got.Verdict, got.Detail, image.VerdictUnverifiable, tt.detail)
			}
			if got.BytesRead > int64(len(b)) {
				t.Errorf("read %d compressed bytes of a %d byte layer", got.BytesRead, len(b))
			}
			t.Logf("%s: %d compressed bytes read, %d layers", got.Detail, got.BytesRead, got.LayersRead)
		})
	}
}

func TestTarEntryLimit(t *testing.T) {
	var files []file
	for i := range 100 {
		files = append(files, exe(fmt.Sprintf("/junk/%d", i), nil))
	}
	i := img(t, ep("/app"), nil, []file{exe("/app", amd64)}, files)
	got, err := verify.Entrypoint(context.Background(), i, verify.WithLimits(verify.Limits{Entries: 50}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != image.VerdictUnverifiable || !strings.Contains(got.Detail, "50 tar entries") {
		t.Fatalf("got %s (%s)", got.Verdict, got.Detail)
	}
}

func TestZstdLayer(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := enc.EncodeAll(tarOf(t, exe("/app", arm64)), nil)
	i := withLayers(t, ep("/app"), rawLayer{b, types.OCILayerZStd})
	got, err := verify.Entrypoint(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(outcome{Verdict: image.VerdictWrongArch, Path: "/app", Format: "elf", Arch: "arm64", Static: true}, outcomeOf(got)); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func TestUncompressedLayer(t *testing.T) {
	i := withLayers(t, ep("/app"), rawLayer{tarOf(t, exe("/app", amd64)), types.OCIUncompressedLayer})
	got, err := verify.Entrypoint(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != image.VerdictOK || got.Arch != "amd64" {
		t.Fatalf("got %s %s (%s)", got.Verdict, got.Arch, got.Detail)
	}
}

// noise is incompressible deterministic data.
func noise(n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// threeLayers: a big bottom layer, a small middle one, the binary on top.
func threeLayers(t *testing.T) v1.Image {
	return img(t, ep("/app"), nil,
		[]file{{Path: "/usr/share/big.bin", Data: noise(2 << 20), Mode: 0o644}, exe("/app", arm64)},
		[]file{{Path: "/etc/app.conf", Data: []byte("x=1\n"), Mode: 0o644}},
		[]file{{Path: "/usr/share/doc/README", Data: []byte("hi\n"), Mode: 0o644}, exe("/app", amd64)},
	)
}

func layerSizes(t *testing.T, i v1.Image) []int64 {
	t.Helper()
	ls, err := i.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, l := range ls {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func TestReadsOnlyWhatItNeeds(t *testing.T) {
	tests := []struct {
		name       string
		img        func(t *testing.T) v1.Image
		wantLayers int
		verdict    string
	}{
		{"binary in the top layer of three", threeLayers, 1, image.VerdictOK},
		{"symlink revealed by a lower layer: the top layer is read again", func(t *testing.T) v1.Image {
			return img(t, ep("/bin/app"), nil,
				[]file{{Path: "/bin", Link: "usr/bin"}},
				[]file{exe("/usr/bin/app", amd64)},
			)
		}, 3, image.VerdictOK},
		{"hardlink to an earlier entry: the layer is read again", func(t *testing.T) v1.Image {
			return img(t, ep("/bin/sh"), nil, []file{exe("/bin/busybox", amd64), {Path: "/bin/sh", Hardlink: "/bin/busybox"}})
		}, 2, image.VerdictOK},
		{"bare name: every layer must be read to rule out earlier PATH dirs", func(t *testing.T) v1.Image {
			return img(t, ep("tool"), nil,
				[]file{{Path: "/etc/x", Data: []byte("x"), Mode: 0o644}},
				[]file{exe("/bin/tool", amd64)},
			)
		}, 2, image.VerdictOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := tt.img(t)
			got, err := verify.Entrypoint(context.Background(), i)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != tt.verdict || got.LayersRead != tt.wantLayers {
				t.Fatalf("verdict %s, %d layers read; want %s, %d (%s)", got.Verdict, got.LayersRead, tt.verdict, tt.wantLayers, got.Detail)
			}
			sizes := layerSizes(t, i)
			t.Logf("layer sizes (bottom first) %v: read %d bytes in %d layer opens", sizes, got.BytesRead, got.LayersRead)
			if tt.wantLayers == 1 && got.BytesRead > sizes[len(sizes)-1] {
				t.Errorf("read %d bytes, more than the top layer's %d", got.BytesRead, sizes[len(sizes)-1])
			}
		})
	}
}

// blobCounter counts the bytes the registry serves per blob digest.
type blobCounter struct {
	mu    sync.Mutex
	bytes map[string]int64
	gets  map[string]int
}

type countingWriter struct {
	http.ResponseWriter
	add func(int)
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.add(n)
	return n, err
}

func (c *blobCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/blobs/sha256:"); i >= 0 && r.Method == http.MethodGet {
			d := r.URL.Path[i+len("/blobs/"):]
			c.mu.Lock()
			c.gets[d]++
			c.mu.Unlock()
			w = countingWriter{w, func(n int) { c.mu.Lock(); c.bytes[d] += int64(n); c.mu.Unlock() }}
		}
		h.ServeHTTP(w, r)
	})
}

func TestEarlyStopOverHTTP(t *testing.T) {
	c := &blobCounter{bytes: map[string]int64{}, gets: map[string]int{}}
	srv := httptest.NewServer(c.wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	ref, err := name.ParseReference(u.Host + "/app:1")
	if err != nil {
		t.Fatal(err)
	}
	local := threeLayers(t)
	if err := remote.Write(ref, local); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	clear(c.bytes)
	clear(c.gets)
	c.mu.Unlock()

	i, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verify.Entrypoint(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != image.VerdictOK || got.LayersRead != 1 {
		t.Fatalf("verdict %s, %d layers (%s)", got.Verdict, got.LayersRead, got.Detail)
	}
	ls, err := local.Layers()
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var served []int64
	for _, l := range ls {
		d, _ := l.Digest()
		served = append(served, c.bytes[d.String()])
	}
	sizes := layerSizes(t, local)
	t.Logf("layer sizes (bottom first) %v, served %v, BytesRead %d", sizes, served, got.BytesRead)
	if served[0] != 0 || served[1] != 0 {
		t.Errorf("served the lower layers: %v bytes", served[:2])
	}
	if served[2] == 0 || got.BytesRead > served[2] {
		t.Errorf("top layer: served %d, BytesRead %d", served[2], got.BytesRead)
	}
}

func TestGoBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.22\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644))
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v3", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "hello"))
	must(err)
	i := img(t, ep("/hello"), nil, []file{exe("/hello", bin)})

	got, err := verify.Entrypoint(context.Background(), i)
	must(err)
	if got.Verdict != image.VerdictOK || got.Arch != "amd64" || !got.Static {
		t.Fatalf("got %s %s static=%v (%s)", got.Verdict, got.Arch, got.Static, got.Detail)
	}
	want := map[string]string{"GOOS": "linux", "GOARCH": "amd64", "GOAMD64": "v3", "CGO_ENABLED": "0", "-buildmode": "exe"}
	gv := got.GoSettings["GOVERSION"]
	delete(got.GoSettings, "GOVERSION")
	if d := cmp.Diff(want, got.GoSettings); d != "" || !strings.HasPrefix(gv, "go1.") {
		t.Errorf("GOVERSION %q, settings (-want +got):\n%s", gv, d)
	}
	if !strings.Contains(got.Detail, "GOAMD64=v3") {
		t.Errorf("detail %q does not warn about GOAMD64=v3", got.Detail)
	}

	head, err := verify.Entrypoint(context.Background(), i, verify.HeaderOnly())
	must(err)
	if head.GoSettings != nil || head.BytesRead >= got.BytesRead {
		t.Errorf("HeaderOnly: settings %v, %d bytes read vs %d for the whole file", head.GoSettings, head.BytesRead, got.BytesRead)
	}
	t.Logf("Go binary of %d bytes: %d compressed bytes read whole, %d header only", len(bin), got.BytesRead, head.BytesRead)
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := verify.Entrypoint(ctx, threeLayers(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestConcurrent runs many verifications of one image at once (run with
// -race).
func TestConcurrent(t *testing.T) {
	i := img(t, ep("/bin/app"), nil,
		[]file{exe("/usr/bin/app", arm64), {Path: "/usr/bin/sh", Hardlink: "/usr/bin/app"}},
		[]file{{Path: "/bin", Link: "usr/bin"}},
	)
	var wg sync.WaitGroup
	res := make([]*image.Entrypoint, 16)
	errs := make([]error, len(res))
	for k := range res {
		wg.Go(func() { res[k], errs[k] = verify.Entrypoint(context.Background(), i) })
	}
	wg.Wait()
	for k := range res {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		if d := cmp.Diff(res[0], res[k]); d != "" {
			t.Fatalf("run %d differs:\n%s", k, d)
		}
	}
	if res[0].Verdict != image.VerdictWrongArch {
		t.Fatalf("got %s (%s)", res[0].Verdict, res[0].Detail)
	}
}
