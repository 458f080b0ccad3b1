package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

// lyingELF is a tar layer holding /app: an amd64 ELF header whose program
// headers claim to lie phoff bytes in, in a tar entry that claims to be
// size bytes long (only the first bytes follow: the walker must decide
// from them, never allocate what the header claims).
func lyingELF(t testing.TB, phoff, size uint64) []byte {
	t.Helper()
	elf := append(testimage.ELF("amd64"), make([]byte, 64<<10)...)
	binary.LittleEndian.PutUint64(elf[32:], phoff)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "app", Mode: 0o755, Size: int64(size), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(elf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes() // truncated on purpose: no padding, no end marker
}

// TestHugeProgramHeaderOffset: program headers 2^61 bytes in panicked
// (makeslice: len out of range), 100 GiB in ran the process out of memory.
// Both are now an unverifiable verdict, reached without allocating.
func TestHugeProgramHeaderOffset(t *testing.T) {
	for _, tt := range []struct {
		name        string
		phoff, size uint64
	}{
		{"2^61", 1 << 61, 1<<61 + 4096},
		{"100 GiB", 100 << 30, 100<<30 + 4096},
		{"past the file limit", 65 << 20, 66 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i := withLayers(t, ep("/app"), rawLayer{lyingELF(t, tt.phoff, tt.size), types.OCIUncompressedLayer})
			got, err := verify.Entrypoint(context.Background(), i)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != image.VerdictUnverifiable || !strings.Contains(got.Detail, "limit") {
				t.Fatalf("verdict %s (%s), want %s at a limit", got.Verdict, got.Detail, image.VerdictUnverifiable)
			}
			if got.Arch != "amd64" {
				t.Errorf("arch %q: the ELF header itself was readable", got.Arch)
			}
		})
	}
}

// deepNames is a layer of n entries whose names have comps path
// components each, all under different first components (so no parent is
// shared), and /app at the end.
func deepNames(t testing.TB, n, comps int) []byte {
	t.Helper()
	var files []file
	for i := range n {
		files = append(files, file{Path: fmt.Sprintf("/%d", i) + strings.Repeat("/a", comps-1), Data: []byte("x")})
	}
	files = append(files, exe("/app", amd64))
	b, err := testimage.Tar(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeepPathsAreLinear: 500 names of ~2,000 components took 45 s to
// walk. The walk is linear in the bytes of a name, and names deeper than
// the component limit are not indexed.
func TestDeepPathsAreLinear(t *testing.T) {
	layer := rawLayer{gz(t, deepNames(t, 500, 2000)), types.OCILayer}
	t.Logf("layer: %d compressed bytes", len(layer.b))
	i := withLayers(t, ep("/app"), layer)
	start := time.Now()
	got, err := verify.Entrypoint(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("%s (%s) in %s", got.Verdict, got.Detail, el)
	if got.Verdict != image.VerdictOK {
		t.Errorf("verdict %s (%s), want ok", got.Verdict, got.Detail)
	}
	if el > 5*time.Second {
		t.Errorf("took %s", el)
	}
}

// TestDeepLookupIsBounded: an entrypoint path deeper than the component
// limit is not looked up (unverifiable), however the image is built.
func TestDeepLookupIsBounded(t *testing.T) {
	deep := strings.Repeat("/a", 1500)
	i := withLayers(t, ep(deep+"/app"), rawLayer{tarOf(t, exe(deep+"/app", amd64)), types.OCIUncompressedLayer})
	start := time.Now()
	got, err := verify.Entrypoint(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != image.VerdictUnverifiable || !strings.Contains(got.Detail, "path components") {
		t.Errorf("verdict %s (%s), want unverifiable at the path component limit", got.Verdict, got.Detail)
	}
	t.Logf("%s in %s", got.Detail, time.Since(start))
}

// TestLookupWorkLimit: the work of path lookups is bounded on its own,
// whatever the shape of the layers and of the PATH.
func TestLookupWorkLimit(t *testing.T) {
	i := img(t, ep("app"), nil, []file{exe("/usr/bin/app", amd64)}, []file{exe("/etc/x", nil)})
	got, err := verify.Entrypoint(context.Background(), i, verify.WithLimits(verify.Limits{Lookups: 500}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != image.VerdictUnverifiable || !strings.Contains(got.Detail, "path bytes looked up") {
		t.Fatalf("verdict %s (%s), want unverifiable at the lookup limit", got.Verdict, got.Detail)
	}
	if got, _ := verify.Entrypoint(context.Background(), i); got.Verdict != image.VerdictOK {
		t.Fatalf("default limits: %s (%s)", got.Verdict, got.Detail)
	}
}
