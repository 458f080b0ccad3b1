package twin

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/testimage"
)

// TestTwinIsIndependent guards the point of the twin: it must not reuse
// archfit's own reasoning, or the tests would check archfit against itself.
func TestTwinIsIndependent(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/archfit/archfit/") && p != "github.com/archfit/archfit/internal/testenv/twin" {
			t.Errorf("the twin imports archfit package %s", p)
		}
	}
}

func pushTo(t *testing.T, host, repo string, img any) (string, v1.Hash) {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "u", Password: "p"})
	var d v1.Hash
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(ref, v, auth)
		d, _ = v.Digest()
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, auth)
		d, _ = v.Digest()
	}
	if err != nil {
		t.Fatal(err)
	}
	return ref.String(), d
}

func testRegistry(t *testing.T) string {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			if u, _, ok := r.BasicAuth(); !ok || u != "u" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

var (
	c21   = NodeSpec{Name: "c21", Arch: "arm64", Runtime: "containerd://2.1.4"}.withDefaults()
	c17   = NodeSpec{Name: "c17", Arch: "arm64", Runtime: "containerd://1.7.27"}.withDefaults()
	crioA = NodeSpec{Name: "crio", Arch: "arm64", Runtime: "cri-o://1.32.9"}.withDefaults()
	amd17 = NodeSpec{Name: "amd17", Arch: "amd64", Runtime: "containerd://1.7.27"}.withDefaults()
	amd21 = NodeSpec{Name: "amd21", Arch: "amd64", Runtime: "containerd://2.1.4"}.withDefaults()
	amdV2 = NodeSpec{Name: "old", Arch: "amd64", Runtime: "containerd://2.1.4", X86Level: 2}.withDefaults()
)

func spec(layers [][]testimage.File, entrypoint ...string) v1.Image {
	return testimage.Must(testimage.Spec{Platform: "linux/amd64", Layers: layers, Entrypoint: entrypoint,
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}.Build())
}

func TestPullAndExec(t *testing.T) {
	host := testRegistry(t)
	amdApp := testimage.App("linux/amd64", "amd64")
	onlyAmd := testimage.Index(testimage.For(amdApp, "linux/amd64"), testimage.Attestation(amdApp))
	armApp, i386App := testimage.App("linux/arm/v7", "arm"), testimage.App("linux/386", "386")
	armDigest, _ := armApp.Digest()
	i386Digest, _ := i386App.Digest()
	armV7 := testimage.Index(testimage.For(amdApp, "linux/amd64"), testimage.For(armApp, "linux/arm/v7"))
	only386 := testimage.Index(testimage.For(i386App, "linux/386"))
	multi := testimage.MultiArch("linux/amd64", "linux/arm64")
	nested := testimage.Index(testimage.For(amdApp, "linux/amd64"))
	nestedArm := testimage.MultiArch("linux/arm64")
	nested = mutateAppendIndex(t, nested, nestedArm)
	nestedArmConfig, amdDigest := configOfOnly(t, nestedArm), testimage.Must(amdApp.Digest()).String()
	noPlatformArm := testimage.Index(testimage.Entry{Image: testimage.App("linux/arm64", "arm64")})
	noPlatformAmd := testimage.Index(testimage.Entry{Image: amdApp})
	v3, err := mutate.Config(amdApp, v1.Config{Entrypoint: []string{"/app"}, Labels: map[string]string{GOAMD64Label: "v3"}})
	if err != nil {
		t.Fatal(err)
	}
	noShebang := spec([][]testimage.File{{{Path: "/run.sh", Data: []byte("echo hi\n")}}}, "/run.sh")
	crlf := spec([][]testimage.File{{{Path: "/bin/sh", Data: testimage.ELF("amd64")}, {Path: "/run.sh", Data: []byte("#!/bin/sh\r\necho hi\r\n")}}}, "/run.sh")
	script := spec([][]testimage.File{{{Path: "/usr/bin/sh", Data: testimage.ELF("arm64")}, {Path: "/bin", Link: "usr/bin"}, {Path: "/run.sh", Data: []byte("#!/bin/sh\necho hi\n")}}}, "/run.sh")
	viaPath := spec([][]testimage.File{{{Path: "/usr/bin/app", Data: testimage.ELF("amd64")}}, {{Path: "/usr/bin/.wh.app"}}}, "app")
	dynamic := spec([][]testimage.File{{{Path: "/app", Data: testimage.DynamicELF("arm64", "/lib/ld-linux-aarch64.so.1")}}}, "/app")

	refOf := map[string]string{}
	digestOf := map[string]v1.Hash{}
	for repo, img := range map[string]any{
		"single": amdApp, "onlyamd": onlyAmd, "armv7": armV7, "only386": only386, "multi": multi, "v3": v3,
		"noshebang": noShebang, "crlf": crlf, "script": script, "viapath": viaPath, "dynamic": dynamic,
		"private/app": multi, "nested": nested, "noplatarm": noPlatformArm, "noplatamd": noPlatformAmd,
	} {
		refOf[repo], digestOf[repo] = pushTo(t, host, repo+":v1", img)
	}
	missing := host + "/single:v9"

	type want struct {
		pullErr string
		out     execOutcome
	}
	crash := func(log string) want { return want{out: execOutcome{exited: true, exitCode: 255, log: log}} }
	for _, tc := range []struct {
		name string
		node NodeSpec
		ref  string
		want want
	}{
		{"single amd64 on arm64 runc", c17, refOf["single"], crash("exec /app: exec format error\n")},
		{"single amd64 on arm64 crun", crioA, refOf["single"], want{out: execOutcome{exited: true, exitCode: 1, log: "exec container process `/app`: Exec format error\n"}}},
		{"single amd64 on amd64", amd21, refOf["single"], want{}},
		{"index without arm64, containerd 1.7", c17, refOf["onlyamd"], want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = failed to pull and unpack image "%s": no match for platform in manifest: not found`, refOf["onlyamd"])}},
		{"index without arm64, containerd 2.1", c21, refOf["onlyamd"], want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = get image config descriptor: no match for platform in manifest %s: not found`, digestOf["onlyamd"])}},
		{"index without arm64, CRI-O", crioA, refOf["onlyamd"], want{pullErr: fmt.Sprintf(
			`rpc error: code = Unknown desc = choosing an image from manifest list docker://%s: no image found in image index for architecture "arm64", variant "v8", OS "linux"`, refOf["onlyamd"])}},
		{"arm/v7 fallback, containerd 1.7", c17, refOf["armv7"], crash("exec /app: exec format error\n")},
		// The transfer service does not fetch arm/v7 (Ordered), image.Config
		// then prefers it (Only): its manifest is missing from the store.
		{"arm/v7 not fetched, containerd 2.1", c21, refOf["armv7"], want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = get image config descriptor: content digest %s: not found`, armDigest)}},
		{"386 fallback on amd64, containerd 1.7", amd17, refOf["only386"], want{}},
		{"386 not fetched, containerd 2.1", amd21, refOf["only386"], want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = get image config descriptor: content digest %s: not found`, i386Digest)}},
		{"386 fetched with local pull, containerd 2.1", NodeSpec{Name: "lp", Arch: "amd64", Runtime: "containerd://2.1.4", LocalPull: true}.withDefaults(), refOf["only386"], want{}},
		{"multi-arch on arm64 CRI-O", crioA, refOf["multi"], want{}},
		// [linux/amd64, index{linux/arm64} without a platform] on arm64:
		// the nested arm64 entry is pulled, then the CRI's size walk
		// sorts linux/amd64 first, never fetched (real containerd 1.7 to
		// 2.4 do this: internal/conformance, case nested-then-amd64).
		{"nested index, containerd 1.7", c17, refOf["nested"], want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = failed to update image store %q: get image info from containerd: get image compressed resource size: content digest %s: not found`,
			nestedArmConfig, amdDigest)}},
		{"entry without platform, arm64 config", c21, refOf["noplatarm"], want{}},
		{"entry without platform, arm64 config, CRI-O", crioA, refOf["noplatarm"], want{}},
		{"entry without platform, amd64 config", c17, refOf["noplatamd"], want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = get image config descriptor: no match for platform in manifest %s: not found`, digestOf["noplatamd"])}},
		{"multi-arch on arm64 containerd 2.1", c21, refOf["multi"], want{}},
		{"GOAMD64=v3 on a v2 CPU", amdV2, refOf["v3"], want{out: execOutcome{exited: true, exitCode: 1,
			log: "This program can only be run on AMD64 processors with v3 microarchitecture support.\n"}}},
		{"GOAMD64=v3 on a v3 CPU", amd21, refOf["v3"], want{}},
		{"script without #!", amd21, refOf["noshebang"], crash("exec /run.sh: exec format error\n")},
		{"CRLF shebang", amd21, refOf["crlf"], crash("exec /run.sh: no such file or directory\n")},
		{"arm64 interpreter via /bin symlink", c17, refOf["script"], want{}},
		{"arm64 interpreter on amd64", amd17, refOf["script"], crash("exec /run.sh: exec format error\n")},
		{"PATH lookup after whiteout", amd21, refOf["viapath"], want{out: amd21.startFailure(`exec: "app": executable file not found in $PATH`)}},
		{"missing ELF loader", c21, refOf["dynamic"], crash("exec /app: no such file or directory\n")},
		{"tag missing, containerd 1.7", c17, missing, want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = failed to pull and unpack image "%s": failed to resolve reference "%s": %s: not found`, missing, missing, missing)}},
		{"tag missing, containerd 2.1", c21, missing, want{pullErr: fmt.Sprintf(
			`rpc error: code = NotFound desc = failed to pull and unpack image "%s": failed to resolve image: %s: not found`, missing, missing)}},
		{"tag missing, CRI-O", crioA, missing, want{pullErr: fmt.Sprintf(
			`rpc error: code = Unknown desc = reading manifest v9 in %s/single: manifest unknown: Unknown manifest`, host)}},
		{"private, containerd 1.7", c17, refOf["private/app"], want{pullErr: fmt.Sprintf(
			`rpc error: code = Unknown desc = failed to pull and unpack image "%s": failed to resolve reference "%s": pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials`, refOf["private/app"], refOf["private/app"])}},
		{"private, CRI-O", crioA, refOf["private/app"], want{pullErr: fmt.Sprintf(
			`rpc error: code = Unknown desc = reading manifest v1 in %s/private/app: authentication required`, host)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := &Twin{}
			p, err := tw.pull(context.Background(), tc.node, tc.ref, keychain{})
			if tc.want.pullErr != "" {
				if err == nil || err.Error() != tc.want.pullErr {
					t.Fatalf("pull error\n got: %v\nwant: %s", err, tc.want.pullErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			out, err := execute(p.image, &corev1.Container{Name: "c", Image: tc.ref}, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.want.out {
				t.Errorf("exec\n got: %+v\nwant: %+v", out, tc.want.out)
			}
		})
	}

	t.Run("private with pull secret", func(t *testing.T) {
		kc := keychain{}
		parseDockerConfig([]byte(fmt.Sprintf(`{"auths":{"%s":{"username":"u","password":"p"}}}`, host)), kc)
		if _, err := (&Twin{}).pull(context.Background(), c17, refOf["private/app"], kc); err != nil {
			t.Fatalf("pull with credentials: %v", err)
		}
	})
}

// mutateAppendIndex adds child as a nested index entry of idx.
// configOfOnly is the config digest of an index's only image.
func configOfOnly(t *testing.T, idx v1.ImageIndex) string {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("want an index of one image: %v", err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	c, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

func mutateAppendIndex(t *testing.T, idx, child v1.ImageIndex) v1.ImageIndex {
	t.Helper()
	mt, err := child.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return mutate.AppendManifests(idx, mutate.IndexAddendum{Add: child, Descriptor: v1.Descriptor{MediaType: mt}})
}

func TestNormalizedRef(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                    "docker.io/library/nginx:latest",
		"bitnami/redis:7":          "docker.io/bitnami/redis:7",
		"127.0.0.1:5000/app":       "127.0.0.1:5000/app:latest",
		"ghcr.io/o/app@sha256:abc": "ghcr.io/o/app@sha256:abc",
		"localhost/app:v1":         "localhost/app:v1",
	} {
		if got := normalizedRef(in); got != want {
			t.Errorf("normalizedRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLogContainerID(t *testing.T) {
	s := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}
	if _, err := logContainerID(s, "p", false); err == nil || err.Error() != `container "app" in pod "p" is waiting to start: trying and failing to pull image` {
		t.Errorf("got %v", err)
	}
	if _, err := logContainerID(s, "p", true); err == nil || err.Error() != `previous terminated container "app" in pod "p" not found` {
		t.Errorf("got %v", err)
	}
}

// TestGoBuildInfoLevel reads GOAMD64 from a real Go binary's build info.
func TestGoBuildInfoLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module hello\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-trimpath", "-o", "hello", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v3", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("go build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	img := spec([][]testimage.File{{{Path: "/hello", Data: bin}}}, "/hello")
	for _, tc := range []struct {
		node NodeSpec
		want execOutcome
	}{
		{amdV2, execOutcome{exited: true, exitCode: 1, log: "This program can only be run on AMD64 processors with v3 microarchitecture support.\n"}},
		{amd21, execOutcome{}},
	} {
		out, err := execute(img, &corev1.Container{Name: "c"}, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		if out != tc.want {
			t.Errorf("x86-64-v%d node: got %+v, want %+v", tc.node.X86Level, out, tc.want)
		}
	}
}
