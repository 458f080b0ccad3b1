package remedy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/image"
)

func plat(arch string) *specs.Platform {
	p := &specs.Platform{OS: "linux", Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

var unknownPlatform = &specs.Platform{OS: "unknown", Architecture: "unknown"}

func TestBuild(t *testing.T) {
	const (
		dIndex = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		dAmd   = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		dArm   = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		dAtt   = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	)
	tests := []struct {
		name   string
		report image.Report
		opts   []BuildOption
	}{
		{
			name: "single-manifest-amd64",
			report: image.Report{
				Reference: "ghcr.io/acme/api:1.4", Digest: dAmd, Kind: image.KindManifest,
				Entries:       []image.Entry{{Digest: dAmd, ConfigPlatform: plat("amd64")}},
				Platforms:     []string{"linux/amd64"},
				Architectures: []string{"amd64"},
			},
		},
		{
			name: "index-of-one-plus-attestation",
			report: image.Report{
				Reference: "acme/worker:2", Digest: dIndex, Kind: image.KindIndex,
				Entries: []image.Entry{
					{Digest: dAmd, Platform: plat("amd64"), ConfigPlatform: plat("amd64")},
					{Digest: dAtt, Platform: unknownPlatform, Attestation: true, AttestsDigest: dAmd},
				},
				Platforms: []string{"linux/amd64"}, Architectures: []string{"amd64"},
				EffectivelySingleArch: true,
			},
		},
		{
			name: "mislabeled-arm64-entry",
			report: image.Report{
				Reference: "quay.io/acme/exporter:v0.9", Digest: dIndex, Kind: image.KindIndex,
				Entries: []image.Entry{
					{Digest: dAmd, Platform: plat("amd64"), ConfigPlatform: plat("amd64"),
						Entrypoint: &image.Entrypoint{Path: "/bin/exporter", Format: "elf", Arch: "amd64", Static: true, Verdict: image.VerdictOK}},
					{Digest: dArm, Platform: plat("arm64"), ConfigPlatform: plat("arm64"),
						Mismatch:   "index says linux/arm64/v8, the entrypoint is an x86-64 ELF",
						Entrypoint: &image.Entrypoint{Path: "/bin/exporter", Format: "elf", Arch: "amd64", Static: true, Verdict: image.VerdictWrongArch}},
				},
				Platforms: []string{"linux/amd64", "linux/arm64/v8"}, Architectures: []string{"amd64"},
			},
		},
		{
			name: "go-binary-goamd64-v3",
			report: image.Report{
				Reference: "registry.example.com/team/svc:3.1.0", Digest: dAmd, Kind: image.KindManifest,
				Entries: []image.Entry{{
					Digest: dAmd, ConfigPlatform: plat("amd64"), GoVersion: "go1.23.4",
					Entrypoint: &image.Entrypoint{Path: "/svc", Format: "elf", Arch: "amd64", Static: true, Verdict: image.VerdictOK,
						GoSettings: map[string]string{"GOAMD64": "v3", "CGO_ENABLED": "0"}},
				}},
				Platforms: []string{"linux/amd64"}, Architectures: []string{"amd64"},
			},
		},
		{
			name: "arm64-only-cgo-go-binary",
			report: image.Report{
				Reference: "nginx-exporter", Digest: dArm, Kind: image.KindManifest,
				Entries: []image.Entry{{
					Digest: dArm, ConfigPlatform: plat("arm64"), GoVersion: "go1.22.1",
					Entrypoint: &image.Entrypoint{Path: "/exporter", Format: "elf", Arch: "arm64", Interpreter: "/lib/ld-linux-aarch64.so.1", Verdict: image.VerdictOK},
				}},
				Platforms: []string{"linux/arm64"}, Architectures: []string{"arm64"},
			},
		},
		{
			name: "per-arch-images-exist",
			report: image.Report{
				Reference: "acme/web:5", Digest: dAmd, Kind: image.KindManifest,
				Entries:   []image.Entry{{Digest: dAmd, ConfigPlatform: plat("amd64")}},
				Platforms: []string{"linux/amd64"}, Architectures: []string{"amd64"},
			},
			opts: []BuildOption{WithPerArchImages(map[string]string{"amd64": "acme/web:5-amd64", "arm64": "acme/web:5-arm64"})},
		},
		{
			name: "already-multi-arch",
			report: image.Report{
				Reference: "acme/ok:1", Digest: dIndex, Kind: image.KindIndex,
				Entries: []image.Entry{
					{Digest: dAmd, Platform: plat("amd64")}, {Digest: dArm, Platform: plat("arm64")},
					{Digest: dAtt, Platform: unknownPlatform, Attestation: true},
				},
				Platforms: []string{"linux/amd64", "linux/arm64/v8"}, Architectures: []string{"amd64", "arm64"},
			},
		},
		{
			name: "cluster-wants-s390x-too",
			report: image.Report{
				Reference: "acme/ok:1", Digest: dIndex, Kind: image.KindIndex,
				Entries:   []image.Entry{{Digest: dAmd, Platform: plat("amd64")}, {Digest: dArm, Platform: plat("arm64")}},
				Platforms: []string{"linux/amd64", "linux/arm64/v8"}, Architectures: []string{"amd64", "arm64"},
			},
			opts: []BuildOption{ForArchitectures("amd64", "arm64", "s390x")},
		},
		{
			name: "uninspectable",
			report: image.Report{
				Reference: "private.example.com/x:1",
				Error:     &image.Failure{Reason: "auth", Status: 401, Detail: "unauthorized"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Build(tt.report, tt.opts...)
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			// Recipes are easier to review as text than as JSON strings.
			for _, r := range got.Recipes {
				b.WriteString("\n### " + r.Title + " (" + r.Lang + ")\n" + r.Text)
			}
			file := filepath.Join("testdata", "build", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", file, diff)
			}
		})
	}
}

func TestSplitRef(t *testing.T) {
	tests := []struct{ ref, repo, tag string }{
		{"nginx", "nginx", "latest"},
		{"nginx:1.27", "nginx", "1.27"},
		{"acme/web:5", "acme/web", "5"},
		{"ghcr.io/acme/api:1.4", "ghcr.io/acme/api", "1.4"},
		{"localhost:5000/x", "localhost:5000/x", "latest"},
		{"ghcr.io/acme/api@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ghcr.io/acme/api", ""},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.ref, "/", "_"), func(t *testing.T) {
			repo, tag := splitRef(tt.ref)
			if repo != tt.repo || tag != tt.tag {
				t.Errorf("splitRef(%q) = %q, %q; want %q, %q", tt.ref, repo, tag, tt.repo, tt.tag)
			}
		})
	}
}
