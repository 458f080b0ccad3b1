//go:build linux

package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/testimage"
)

// crioCase is one index pushed to the test registry. Every entry has a config
// of its own (the entry's label is in its Env), so the image ID CRI-O reports
// names exactly one entry.
type crioCase struct {
	name string
	idx  v1.ImageIndex
}

// crioEntry builds an entry whose config says cfg and whose index descriptor
// declares decl ("" for none); features become the descriptor's os.features.
func crioEntry(label, cfg, decl string, docker bool, features ...string) testimage.Entry {
	img := testimage.Must(testimage.Spec{
		Platform:   cfg,
		Layers:     [][]testimage.File{{{Path: "/entry", Data: []byte(label + "\n"), Mode: 0o644}}},
		Entrypoint: []string{"/entry"},
		Env:        []string{"ARCHFIT_ENTRY=" + label},
		Docker:     docker,
	}.Build())
	e := testimage.Entry{Image: img}
	if decl != "" {
		e.Platform = testimage.ParsePlatform(decl)
		e.Platform.OSFeatures = features
	}
	return e
}

func crioCases() []crioCase {
	oci := func(name string, es ...testimage.Entry) crioCase { return crioCase{name, testimage.Index(es...)} }
	e := func(p string) testimage.Entry { return crioEntry(p, p, p, false) }
	d := func(p string) testimage.Entry { return crioEntry(p, p, p, true) }
	return []crioCase{
		oci("amd64-arm64", e("linux/amd64"), e("linux/arm64")),
		{"docker-amd64-arm64", testimage.DockerList(d("linux/amd64"), d("linux/arm64"))},
		oci("amd64-only", e("linux/amd64")),
		{"docker-amd64-only", testimage.DockerList(d("linux/amd64"))},
		oci("amd64-arm64v8", e("linux/amd64"), e("linux/arm64/v8")),
		oci("arm64-and-arm64v8", e("linux/amd64"), e("linux/arm64"), e("linux/arm64/v8")),
		oci("arm64v8-and-arm64", e("linux/arm64/v8"), e("linux/arm64"), e("linux/amd64")),
		oci("amd64v3-arm64v8.2", e("linux/amd64/v3"), e("linux/arm64/v8.2")),
		oci("386-armv7", e("linux/386"), e("linux/arm/v7")),
		oci("windows-amd64-and-arm64", e("windows/amd64"), e("linux/arm64")),
		oci("osfeatures", crioEntry("amd64+feat", "linux/amd64", "linux/amd64", false, "sse4"),
			crioEntry("arm64+feat", "linux/arm64", "linux/arm64", false, "sse4")),
		oci("osfeatures-then-plain", crioEntry("amd64+feat", "linux/amd64", "linux/amd64", false, "sse4"), e("linux/amd64"),
			e("linux/arm64")),
		oci("no-platform", crioEntry("amd64 undeclared", "linux/amd64", "", false), crioEntry("arm64 undeclared", "linux/arm64", "", false)),
		oci("declared-then-no-platform", e("linux/amd64"), crioEntry("arm64 undeclared", "linux/arm64", "", false)),
		oci("attestations", e("linux/amd64"), e("linux/arm64"),
			crioEntry("attestation", "unknown/unknown", "unknown/unknown", false)),
	}
}

// crioPlatformIndex is what archfit's model sees of idx.
func crioPlatformIndex(t testing.TB, ref string, idx v1.ImageIndex) platform.Index {
	t.Helper()
	raw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	dg, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	var parsed specs.Index
	if err := json.Unmarshal(raw, &parsed); err != nil {
		t.Fatal(err)
	}
	return platform.Index{Ref: ref, Digest: digest.Digest(dg.String()), MediaType: string(mt), Raw: raw, Manifests: parsed.Manifests}
}

// crioEntryConfig is the config digest of the entry d of idx: CRI-O's image ID
// when it pulls that entry.
func crioEntryConfig(t testing.TB, idx v1.ImageIndex, d specs.Descriptor) string {
	t.Helper()
	h, err := v1.NewHash(string(d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	c, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// TestCRIOPullsWhatArchfitPredicts pulls every case through a real CRI-O (the
// binaries hack/runtimes-crio.sh builds) on an amd64 node and on an arm64
// node (crio for arm64 under qemu-aarch64-static), and checks that the image
// CRI-O stored is the entry platform.Choose(platform.CRIO, ...) predicts, or
// that both refuse the pull for the same reason.
//
// It takes about 10 s per amd64 build and 2 min per arm64 build (every layer
// is applied by a re-executed crio under qemu); -short skips it.
func TestCRIOPullsWhatArchfitPredicts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real CRI-O processes (minutes under qemu); not in -short")
	}
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	cases := crioCases()
	for _, c := range cases {
		ref, err := name.ParseReference(host + "/crio/" + c.name + ":1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(ref, c.idx); err != nil {
			t.Fatal(err)
		}
	}

	builds := CRIOBuilds()
	if len(builds) == 0 {
		t.Skip("no crio built: run hack/runtimes-crio.sh build")
	}
	for _, b := range builds {
		type crioNode struct {
			name        string
			hostCPUInfo bool
			node        specs.Platform
			cases       []crioCase
		}
		nodes := []crioNode{{b.Arch, false, platform.Node("linux", b.Arch), cases}}
		if b.Arch == "arm64" {
			// The emulated crio with the host's x86 /proc/cpuinfo detects no
			// variant: the model gets the same node, linux/arm64 without v8.
			// Only the cases where the variant matters (each emulated pull
			// takes seconds).
			var some []crioCase
			for _, c := range cases {
				switch c.name {
				case "amd64-only", "amd64-arm64v8", "arm64-and-arm64v8", "arm64v8-and-arm64":
					some = append(some, c)
				}
			}
			nodes = append(nodes, crioNode{"arm64-no-cpu-variant", true, specs.Platform{OS: "linux", Architecture: "arm64"}, some})
		}
		for _, n := range nodes {
			t.Run(b.Version+"-"+b.Source+"/"+n.name, func(t *testing.T) {
				crioPullCases(t, b, n.hostCPUInfo, n.node, host, n.cases)
			})
		}
	}
}

// crioPullCases starts crio build b for node and pulls every case.
func crioPullCases(t *testing.T, b CRIOBuild, hostCPUInfo bool, node specs.Platform, host string, cases []crioCase) {
	dir, err := os.MkdirTemp("", "crio-")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := StartCRIO(t, CRIOConfig{Bin: b.Bin, Arch: b.Arch, Dir: dir, Registry: host, HostCPUInfo: hostCPUInfo})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if v, err := CRIOVersion(ctx, endpoint); err != nil || v != "cri-o://"+b.Version {
		t.Fatalf("CRIOVersion = %q, %v; want cri-o://%s", v, err, b.Version)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := host + "/crio/" + c.name + ":1"
			want, werr := platform.Choose(platform.CRIO, node, crioPlatformIndex(t, ref, c.idx))
			start := time.Now()
			got, gerr := CRIOPull(ctx, endpoint, ref)
			took := time.Since(start).Round(time.Millisecond)
			var noMatch *platform.NoMatchError
			var refused *CRIOPullError
			switch {
			case werr == nil && gerr == nil:
				if w := crioEntryConfig(t, c.idx, want); got != w {
					t.Errorf("CRI-O stored image %s; archfit predicts entry %s (%s), config %s",
						got, want.Digest, crioEntryName(want), w)
				} else {
					t.Logf("pulled %s (%s) in %s", crioEntryName(want), want.Digest, took)
				}
			case werr == nil:
				t.Errorf("CRI-O refused the pull: %v; archfit predicts entry %s (%s)", gerr, want.Digest, crioEntryName(want))
			case !errors.As(werr, &noMatch):
				t.Fatalf("archfit: %v", werr)
			case gerr == nil:
				t.Errorf("CRI-O pulled image %s; archfit predicts no match: %s", got, noMatch.Message)
			case !errors.As(gerr, &refused):
				t.Errorf("CRI-O: %v (not a CRI status); archfit predicts no match: %s", gerr, noMatch.Message)
			default:
				// archfit words it as CRI-O's image pull does:
				// "choosing an image from manifest list docker://REF: "
				// + the text of containers/image's ChooseInstance. CRI-O puts
				// that text in one of these wrappings: the image pull's
				// alone before the OCI artifact fallback (the proxy's
				// 1.34.0, main of 2025-05-14), then the image pull's and
				// the artifact pull's, which fails for the same reason
				// (the 1.34.0 release: "choose instance: ", or, for a
				// Docker manifest list, "provided artifact is a container
				// image" without the reason; 1.36.3: "image reference:
				// choose manifest instance: ").
				image := noMatch.Message
				reason := strings.TrimPrefix(image, "choosing an image from manifest list docker://"+ref+": ")
				known := map[string]string{image: "image pull only"}
				for _, art := range []string{"choose instance: " + reason, "image reference: choose manifest instance: " + reason,
					"provided artifact is a container image"} {
					known["unable to pull image or OCI artifact: pull image err: "+image+"; artifact err: "+art] = "image, then OCI artifact"
				}
				if form, ok := known[refused.Message]; ok {
					t.Logf("refused as predicted (%s): code %s, %q", form, refused.Code, refused.Message)
				} else {
					t.Errorf("CRI-O refused with %s %q; archfit predicts the reason %q", refused.Code, refused.Message, reason)
				}
			}
		})
	}
}

// TestCRIOConfigIsSelfContained checks that the configuration StartCRIO
// writes names no path outside its directory (CRI-O would otherwise write to
// /var/lib/containers, /run/crio or /etc).
func TestCRIOConfigIsSelfContained(t *testing.T) {
	dir := "/tmp/crio-test-dir"
	for _, line := range strings.Split(crioConf(dir), "\n") {
		_, v, ok := strings.Cut(line, "=")
		if !ok || !strings.Contains(v, "/") {
			continue
		}
		for _, p := range strings.Split(strings.Trim(strings.TrimSpace(v), "[]"), ",") {
			p = strings.Trim(strings.TrimSpace(p), `"`)
			if !strings.HasPrefix(p, dir+"/") {
				t.Errorf("%s: %s is outside %s", strings.TrimSpace(line), p, dir)
			}
		}
	}
	if !strings.Contains(crioConf(dir), fmt.Sprintf("listen = %q", dir+"/crio.sock")) {
		t.Error("no listen socket in the directory")
	}
}

func crioEntryName(d specs.Descriptor) string {
	if d.Platform == nil {
		return "no platform"
	}
	return platform.String(d.Platform)
}
