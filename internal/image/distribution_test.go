package image

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// distribution starts Debian's docker-registry (distribution 2.8) with
// htpasswd auth on a loopback port, as a user's private registry would be.
func distribution(t *testing.T, user, pass string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("docker-registry is not installed (apt-get install docker-registry)")
		}
		t.Skip("docker-registry not installed; .ci/run installs it")
	}
	htp, err := exec.Command("htpasswd", "-Bbn", user, pass).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), htp, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: %s/data}
http: {addr: %s}
auth:
  htpasswd: {realm: archfit-test, path: %s/htpasswd}
`, dir, addr, dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("docker-registry log:\n%s", b)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not start on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgainstDistributionWithAuth(t *testing.T) {
	addr := distribution(t, "ci", "p4ss")
	auth := remote.WithAuth(&authn.Basic{Username: "ci", Password: "p4ss"})
	multi := testimage.Index(
		testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64"),
		testimage.For(testimage.App("linux/arm64/v8", "arm64"), "linux/arm64/v8"),
		testimage.Attestation(testimage.App("linux/amd64", "amd64")),
	)
	mref := addr + "/team/app:1"
	r, _ := name.ParseReference(mref)
	if err := remote.WriteIndex(r, multi, auth); err != nil {
		t.Fatalf("push: %v", err)
	}
	sref := addr + "/team/legacy:1"
	r, _ = name.ParseReference(sref)
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64"), auth); err != nil {
		t.Fatalf("push: %v", err)
	}

	// Credentials the way users keep them: a docker config.json.
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{addr: map[string]string{"username": "ci", "password": "p4ss"}}})
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := regclient.DockerConfigFileKeychain(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Plain HTTP on loopback: credentials go only to a registry named insecure.
	insecure := regclient.WithInsecureRegistries(addr)
	res, err := NewResolver(WithRegistryClient(regclient.New(regclient.WithKeychain(kc), insecure)), WithVerifier(headerVerifier))
	if err != nil {
		t.Fatal(err)
	}
	reps := res.InspectAll(context.Background(), []Request{{Ref: mref, Verify: true}, {Ref: sref}})
	for _, rep := range reps {
		if rep.Error != nil {
			t.Fatalf("%s: %+v", rep.Reference, rep.Error)
		}
	}
	if diff := cmp.Diff([]string{"amd64", "arm64"}, reps[0].Architectures); diff != "" {
		t.Errorf("architectures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"amd64"}, reps[1].Architectures); diff != "" {
		t.Errorf("architectures (-want +got):\n%s", diff)
	}

	// Cross-check the digest and the entry list with skopeo, another client.
	if _, err := exec.LookPath("skopeo"); err == nil {
		out, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", "ci:p4ss", "docker://"+mref).Output()
		if err != nil {
			t.Fatalf("skopeo: %v", err)
		}
		var idx struct {
			Manifests []struct {
				Digest string `json:"digest"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(out, &idx); err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, m := range idx.Manifests {
			want = append(want, m.Digest)
		}
		for _, e := range reps[0].Entries {
			got = append(got, e.Digest)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("entries vs skopeo (-skopeo +archfit):\n%s", diff)
		}
		d, _ := multi.Digest()
		if reps[0].Digest != d.String() {
			t.Errorf("digest %s, want %s", reps[0].Digest, d)
		}
	}

	// Wrong credentials: the image is uninspectable for an auth reason, and
	// nothing of the password leaks into the report.
	bad, _ := regclient.DockerConfigKeychain([]byte(`{"auths":{"` + addr + `":{"username":"ci","password":"nope-secret"}}}`))
	res, _ = NewResolver(WithRegistryClient(regclient.New(regclient.WithKeychain(bad), insecure)))
	rep := res.Inspect(context.Background(), Request{Ref: mref})
	if rep.Error == nil || rep.Error.Reason != "auth" {
		t.Fatalf("bad credentials: %+v", rep.Error)
	}
	b, _ := json.Marshal(rep)
	if strings.Contains(string(b), "nope-secret") {
		t.Fatal("report leaks the password")
	}
}

// headerVerifier is a minimal Verifier for this package's tests (the real one,
// internal/verify, is tested on its own): it reads /app's ELF machine.
func headerVerifier(ctx context.Context, img v1Image, want string, _ *Override) (*Entrypoint, error) {
	return readAppArch(img, want)
}

// TestStalePullSecretFallsBackToUserCredentials: a pod's pull secret comes
// first (the kubelet tries it first), but when the registry refuses it
// (a rotated password), the next credentials that know the registry are
// tried, as the kubelet tries each: the user's own. Before, the first
// keychain with anything for the registry was the only one ever sent, and
// the image was unreadable. With only refused credentials the registry's
// refusal is the error. Debian's docker-registry with htpasswd (Basic).
func TestStalePullSecretFallsBackToUserCredentials(t *testing.T) {
	addr := distribution(t, "ci", "p4ss")
	ref := addr + "/team/app:1"
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64"), remote.WithAuth(&authn.Basic{Username: "ci", Password: "p4ss"})); err != nil {
		t.Fatalf("push: %v", err)
	}
	keychain := func(pass string) authn.Keychain {
		kc, err := regclient.DockerConfigKeychain([]byte(`{"auths":{"` + addr + `":{"username":"ci","password":"` + pass + `"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		return kc
	}
	stale, other, good := keychain("rotated-away"), keychain("also-wrong"), keychain("p4ss")
	for _, c := range []struct {
		name string
		kc   authn.Keychain
		ok   bool
	}{
		{"stale secret, then the user's", regclient.InOrder(stale, good), true},
		{"two stale secrets, then the user's", regclient.InOrder(stale, other, stale, good), true},
		{"the user's first", regclient.InOrder(good, stale), true},
		{"only stale ones", regclient.InOrder(stale, other), false},
		{"nothing for the registry", regclient.InOrder(authn.NewMultiKeychain()), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := regclient.New(regclient.WithInsecureRegistries(addr))
			res, err := NewResolver(WithRegistryClient(client), WithVerifier(headerVerifier))
			if err != nil {
				t.Fatal(err)
			}
			rep := res.InspectAll(context.Background(), []Request{{Ref: ref, Credentials: &Credentials{ID: c.name, Keychain: c.kc}}})[0]
			if c.ok {
				if rep.Error != nil {
					t.Fatalf("%+v", rep.Error)
				}
				if diff := cmp.Diff([]string{"amd64"}, rep.Architectures); diff != "" {
					t.Errorf("architectures (-want +got):\n%s", diff)
				}
				return
			}
			if rep.Error == nil || rep.Error.Reason != "auth" || rep.Error.Status != 401 {
				t.Fatalf("error %+v, want the registry's 401", rep.Error)
			}
			if n := client.Requests(); n > 8 {
				t.Errorf("%d requests for two refused credentials", n)
			}
		})
	}
}
