package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/registry/hostiletest"
	"github.com/archfit/archfit/internal/testimage"
)

// These tests run archfit against the hostile registry world of
// internal/registry/hostiletest: the real in-process registry holds the
// image, hand-written handlers play the hostile parts.

// pushTo writes an amd64 image to env's registry and returns its reference.
func pushTo(t *testing.T, env *hostiletest.Env, repo string) (string, string) {
	t.Helper()
	ref := env.Host(hostiletest.Registry) + "/" + repo
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img := testimage.App("linux/amd64", "amd64")
	env.Handle(hostiletest.Registry, env.Push)
	err = remote.Write(r, img)
	env.Handle(hostiletest.Registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, m.Config.Digest.String()
}

// TestInsecureRegistryFlag (issue 10, item 4): a plain-HTTP registry gets
// the user's credentials only when named with --insecure-registry.
func TestInsecureRegistryFlag(t *testing.T) {
	env := hostiletest.New(t, hostiletest.WithBasicAuth("ci", "p4ss-word"))
	ref, _ := pushTo(t, env, "app:1")
	cfg := filepath.Join(t.TempDir(), "config.json")
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{env.Host(hostiletest.Registry): map[string]string{"username": "ci", "password": "p4ss-word"}}})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"inspect", "--no-cache", "--registry-config", cfg, "--fail-on", "never", "-o", "json", ref}

	out, _, _ := runArchfit(t, "", base...)
	if !strings.Contains(out, "--insecure-registry") || strings.Contains(out, `"amd64"`) {
		t.Errorf("not named insecure: want the image uninspectable with a hint, got\n%s", out)
	}
	if leaks := env.Leaks(hostiletest.Registry); len(leaks) > 0 {
		t.Errorf("credentials sent over plain HTTP: %+v", leaks)
	}

	out, errOut, code := runArchfit(t, "", append(base, "--insecure-registry", env.Host(hostiletest.Registry))...)
	if code != ExitOK || !strings.Contains(out, `"amd64"`) {
		t.Errorf("named insecure: exit %d\n%s\n%s", code, out, errOut)
	}

	if _, _, code := runArchfit(t, "", append(base, "--insecure-registry", "host/repo")...); code != ExitFailure {
		t.Errorf("--insecure-registry host/repo: exit %d, want %d", code, ExitFailure)
	}
}

// TestSignedURLNotInJSON (issue 10, item 6): the pre-signed URL a blob
// redirect leads to appears nowhere in -o json, even when the storage
// host drops the connection (Go's url.Error quotes the URL).
func TestSignedURLNotInJSON(t *testing.T) {
	env := hostiletest.New(t)
	ref, cfg := pushTo(t, env, "app:1")
	env.Handle(hostiletest.Registry, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, env.URL(hostiletest.Other)+"/bucket/"+cfg+"?X-Amz-Signature=c0ffeesecret", http.StatusTemporaryRedirect)
			return
		}
		env.Real(w, r)
	})
	env.Handle(hostiletest.Other, func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	})
	out, errOut, _ := runArchfit(t, "", "inspect", "--no-cache", "--registry-retries", "0", "--fail-on", "never", "-o", "json", ref)
	if strings.Contains(out+errOut, "c0ffeesecret") {
		t.Errorf("signed URL in the output:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(out, "redacted") {
		t.Errorf("want the redacted URL in the report:\n%s", out)
	}
}
