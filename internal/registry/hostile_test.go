package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/registry/hostiletest"
	"github.com/archfit/archfit/internal/testimage"
)

// The tests below drive a hostile registry world (internal/registry/
// hostiletest): the real in-process registry serves images wherever a real
// registry's behaviour is wanted; hand-written handlers play the hostile
// parts (redirects to other hosts, 401s from them, Link headers, dropped
// connections), which no real registry produces on demand.

const (
	testUser     = "alice"
	testPassword = "s3cret-registry-password"
)

func aliceKeychain() authn.Keychain {
	return staticKeychain{authn.FromConfig(authn.AuthConfig{Username: testUser, Password: testPassword})}
}

// hostileClient is a client with alice's credentials that trusts env's
// certificate. Over plain HTTP the registry is named insecure, as a user
// would have to for credentials to be sent at all.
func hostileClient(env *hostiletest.Env, kc authn.Keychain, opts ...Option) *Client {
	base := []Option{WithKeychain(kc), WithTransport(env.Client().Transport), WithRetry(1, time.Second, time.Millisecond),
		withSleep(func(context.Context, time.Duration) error { return nil })}
	if !env.TLS {
		base = append(base, WithInsecureRegistries(env.Host(hostiletest.Registry)))
	}
	return New(append(base, opts...)...)
}

// pushApp writes an amd64 image to env's registry as repo:tag.
func pushApp(t *testing.T, env *hostiletest.Env, repo string) (name.Reference, v1.Image) {
	t.Helper()
	r, err := name.ParseReference(env.Host(hostiletest.Registry) + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	img := testimage.App("linux/amd64", "amd64")
	env.Handle(hostiletest.Registry, env.Push)
	err = remote.Write(r, img, remote.WithTransport(env.Client().Transport))
	env.Handle(hostiletest.Registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, img
}

func configDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Config.Digest.String()
}

// TestRedirect401FromOtherHostGetsNoCredentials (issue 10, item 1): a blob
// redirect to another host that answers 401 with a Bearer challenge must
// not make the client send the registry's credentials to that host's token
// endpoint, nor use a token from it for the registry.
func TestRedirect401FromOtherHostGetsNoCredentials(t *testing.T) {
	for _, target := range []string{hostiletest.Other, hostiletest.SameHost} {
		t.Run(target, func(t *testing.T) {
			env := hostiletest.New(t, hostiletest.WithBasicAuth(testUser, testPassword))
			r, img := pushApp(t, env, "app:1")
			cfg := configDigest(t, img)
			env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
				if strings.Contains(req.URL.Path, "/blobs/") {
					http.Redirect(w, req, env.URL(target)+"/cdn/"+cfg, http.StatusTemporaryRedirect)
					return
				}
				env.Real(w, req)
			})
			env.Handle(target, func(w http.ResponseWriter, req *http.Request) {
				if req.URL.Path == "/token" {
					fmt.Fprint(w, `{"token":"other-host-token","expires_in":300}`)
					return
				}
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="other"`, env.URL(target)+"/token"))
				w.WriteHeader(http.StatusUnauthorized)
			})
			c := hostileClient(env, aliceKeychain())
			ctx := context.Background()
			if _, _, err := c.Manifest(ctx, r); err != nil {
				t.Fatal(err)
			}
			_, err := c.Blob(ctx, r.Context(), cfg)
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
				t.Errorf("blob behind a 401 of another host: got %v, want the 401 as an error", err)
			}
			if leaks := env.Leaks(target); len(leaks) > 0 {
				t.Errorf("%s received credentials: %+v", target, leaks)
			}
			// The registry keeps getting its own Basic credentials, never
			// a token some other host handed out.
			if _, _, err := c.Manifest(ctx, r); err != nil {
				t.Errorf("manifest after the foreign 401: %v", err)
			}
			for _, h := range env.Hits() {
				if h.Server == hostiletest.Registry && h.Auth == "Bearer" {
					t.Errorf("registry received a bearer token: %+v", h)
				}
			}
		})
	}
}

// TestRedirectsCarryNoAuthorization (issue 10, item 3): Go keeps the
// Authorization header on a redirect to the same hostname on another port;
// redirects must carry none at all.
func TestRedirectsCarryNoAuthorization(t *testing.T) {
	env := hostiletest.New(t, hostiletest.WithBasicAuth(testUser, testPassword))
	r, img := pushApp(t, env, "app:1")
	cfg := configDigest(t, img)
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
		if _, p, _ := req.BasicAuth(); p == testPassword && strings.Contains(req.URL.Path, "/blobs/") {
			http.Redirect(w, req, env.URL(hostiletest.SameHost)+"/cdn/"+cfg+"?X-Amz-Signature=sig", http.StatusTemporaryRedirect)
			return
		}
		env.Real(w, req)
	})
	env.Handle(hostiletest.SameHost, func(w http.ResponseWriter, req *http.Request) { _, _ = w.Write(raw) })
	c := hostileClient(env, aliceKeychain())
	if _, err := c.Blob(context.Background(), r.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if leaks := env.Leaks(hostiletest.SameHost); len(leaks) > 0 {
		t.Errorf("same host, other port received credentials: %+v", leaks)
	}
}

// TestTagsLinkToOtherHost (issue 10, item 2): a tag list whose Link points
// to another host (or port) is not followed with credentials.
func TestTagsLinkToOtherHost(t *testing.T) {
	for _, target := range []string{hostiletest.Other, hostiletest.SameHost} {
		t.Run(target, func(t *testing.T) {
			env := hostiletest.New(t, hostiletest.WithBasicAuth(testUser, testPassword))
			r, _ := pushApp(t, env, "app:1")
			env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
				if strings.HasSuffix(req.URL.Path, "/tags/list") {
					if _, p, _ := req.BasicAuth(); p != testPassword {
						env.Real(w, req) // the 401
						return
					}
					w.Header().Set("Link", fmt.Sprintf(`<%s/v2/app/tags/list?last=1>; rel="next"`, env.URL(target)))
					fmt.Fprint(w, `{"name":"app","tags":["1"]}`)
					return
				}
				env.Real(w, req)
			})
			env.Handle(target, func(w http.ResponseWriter, req *http.Request) {
				fmt.Fprint(w, `{"name":"app","tags":["evil"]}`)
			})
			_, err := hostileClient(env, aliceKeychain()).Tags(context.Background(), r.Context(), 100)
			if !errors.Is(err, ErrPagination) {
				t.Errorf("Link to %s: got %v, want ErrPagination", target, err)
			}
			if leaks := env.Leaks(target); len(leaks) > 0 {
				t.Errorf("%s received credentials: %+v", target, leaks)
			}
		})
	}
}

// TestTagsLinkLoop (issue 10, item 10): a Link to the page itself, or back
// to a page already read, stops with an error; so does a registry that
// pages forever.
func TestTagsLinkLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		link func(last string) string
	}{
		{"self", func(last string) string { return "/v2/app/tags/list?n=1000" }},
		{"back", func(last string) string {
			if last == "a" {
				return "/v2/app/tags/list?last=b"
			}
			return "/v2/app/tags/list?last=a"
		}},
		{"endless", func(last string) string { return "/v2/app/tags/list?last=" + last + "x" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := hostiletest.New(t)
			r, _ := pushApp(t, env, "app:1")
			env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
				last := req.URL.Query().Get("last")
				w.Header().Set("Link", "<"+tc.link(last)+`>; rel="next"`)
				fmt.Fprint(w, `{"name":"app","tags":[]}`)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := hostileClient(env, authn.NewMultiKeychain())
			_, err := c.Tags(ctx, r.Context(), 100)
			if !errors.Is(err, ErrPagination) {
				t.Errorf("got %v, want ErrPagination", err)
			}
			if n := c.Requests(); n > maxTagPages+1 {
				t.Errorf("%d requests for a looping tag list", n)
			}
		})
	}
}

// TestSignedURLRedacted (issue 10, item 6): a redirect target's query
// string (a pre-signed URL) appears in no error, including the url.Error
// of a dropped connection and an HTTP error from the storage host.
func TestSignedURLRedacted(t *testing.T) {
	const sig = "X-Amz-Signature=f00dfeedsecret"
	for _, mode := range []string{"drop", "403"} {
		t.Run(mode, func(t *testing.T) {
			env := hostiletest.New(t)
			r, img := pushApp(t, env, "app:1")
			cfg := configDigest(t, img)
			env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
				if strings.Contains(req.URL.Path, "/blobs/") {
					http.Redirect(w, req, env.URL(hostiletest.Other)+"/bucket/"+cfg+"?X-Amz-Credential=AKIA&"+sig, http.StatusTemporaryRedirect)
					return
				}
				env.Real(w, req)
			})
			env.Handle(hostiletest.Other, func(w http.ResponseWriter, req *http.Request) {
				if mode == "403" {
					w.WriteHeader(http.StatusForbidden)
					return
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			})
			_, err := hostileClient(env, authn.NewMultiKeychain()).Blob(context.Background(), r.Context(), cfg)
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), "f00dfeedsecret") || strings.Contains(err.Error(), "AKIA") {
				t.Errorf("error shows the signed URL: %v", err)
			}
		})
	}
}

// tlsRefusingTransport answers every https request the way a plain-HTTP
// server does (a TLS record header of "HTTP/") and every http request with
// a manifest descriptor; it records the URLs asked for. No server can stand
// for a 10.x or 192.168.x registry on a test machine, hence a transport.
type tlsRefusingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (t *tlsRefusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.urls = append(t.urls, r.URL.Scheme+"://"+r.URL.Host)
	t.mu.Unlock()
	if r.URL.Scheme == "https" {
		return nil, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake", RecordHeader: [5]byte{'H', 'T', 'T', 'P', '/'}}
	}
	h := http.Header{}
	h.Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
	h.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

// TestPlainHTTPOnlyWhereAllowed (issue 10, item 4): every registry is tried
// over HTTPS first; plain HTTP follows only for loopback and registries the
// user named insecure, never for private address ranges by themselves.
func TestPlainHTTPOnlyWhereAllowed(t *testing.T) {
	for _, tc := range []struct {
		registry string
		insecure []string
		plain    bool
	}{
		{"10.1.2.3:5000", nil, false},
		{"192.168.1.10", nil, false},
		{"172.16.0.1:5000", nil, false},
		{"registry.example.com", nil, false},
		{"127.0.0.1:5000", nil, true},
		{"localhost:5000", nil, true},
		{"[::1]:5000", nil, true},
		{"10.1.2.3:5000", []string{"10.1.2.3:5000"}, true},
		{"10.1.2.3:5000", []string{"10.1.2.3"}, true},
		{"10.1.2.3:5000", []string{"10.1.2.3:5001"}, false},
	} {
		t.Run(tc.registry+"/"+strings.Join(tc.insecure, ","), func(t *testing.T) {
			tr := &tlsRefusingTransport{}
			c := New(WithTransport(tr), WithInsecureRegistries(tc.insecure...), WithRetry(0, time.Second, time.Millisecond))
			r, err := name.ParseReference(tc.registry + "/app:1")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Head(context.Background(), r)
			if len(tr.urls) == 0 || !strings.HasPrefix(tr.urls[0], "https://") {
				t.Fatalf("first request %v, want HTTPS", tr.urls)
			}
			if tc.plain && err != nil {
				t.Errorf("plain HTTP allowed, got %v (asked %v)", err, tr.urls)
			}
			if !tc.plain {
				if err == nil {
					t.Errorf("plain HTTP used for %s (asked %v)", tc.registry, tr.urls)
				}
				for _, u := range tr.urls {
					if strings.HasPrefix(u, "http://") {
						t.Errorf("asked %s", u)
					}
				}
			}
		})
	}
}

// TestPlainHTTPWithholdsCredentials (issue 10, item 4): a loopback registry
// over plain HTTP that the user did not name insecure gets no credentials,
// and the error says how to allow them.
func TestPlainHTTPWithholdsCredentials(t *testing.T) {
	env := hostiletest.New(t, hostiletest.WithBasicAuth(testUser, testPassword))
	r, _ := pushApp(t, env, "app:1")
	c := New(WithKeychain(aliceKeychain()), WithRetry(0, time.Second, time.Millisecond))
	_, _, err := c.Manifest(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "--insecure-registry") {
		t.Errorf("got %v, want an error naming --insecure-registry", err)
	}
	if leaks := env.Leaks(hostiletest.Registry); len(leaks) > 0 {
		t.Errorf("credentials sent in cleartext: %+v", leaks)
	}
}

// TestPlainHTTPTokenRealmRefused (issue 10, item 4): an HTTPS registry that
// names an http:// token realm gets no credentials sent there.
func TestPlainHTTPTokenRealmRefused(t *testing.T) {
	env := hostiletest.New(t, hostiletest.WithTLS(), hostiletest.WithBasicAuth(testUser, testPassword))
	r, _ := pushApp(t, env, "app:1")
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "" {
			t.Errorf("plain-HTTP token realm received credentials")
		}
		fmt.Fprint(w, `{"token":"t","expires_in":300}`)
	}))
	defer plain.Close()
	env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="x"`, plain.URL+"/token"))
		w.WriteHeader(http.StatusUnauthorized)
	})
	_, _, err := hostileClient(env, aliceKeychain()).Manifest(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "plain-HTTP token realm") {
		t.Errorf("got %v, want the realm refused", err)
	}
}

// TestHTTPSDowngradeRedirectCarriesNothing (issue 10, item 3): an HTTPS
// registry redirecting to plain HTTP on the same hostname sends no
// Authorization there.
func TestHTTPSDowngradeRedirectCarriesNothing(t *testing.T) {
	env := hostiletest.New(t, hostiletest.WithTLS(), hostiletest.WithBasicAuth(testUser, testPassword))
	r, img := pushApp(t, env, "app:1")
	cfg := configDigest(t, img)
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var leaked atomic.Bool
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		leaked.Store(leaked.Load() || req.Header.Get("Authorization") != "")
		_, _ = w.Write(raw)
	}))
	defer plain.Close()
	env.Handle(hostiletest.Registry, func(w http.ResponseWriter, req *http.Request) {
		if _, p, _ := req.BasicAuth(); p == testPassword && strings.Contains(req.URL.Path, "/blobs/") {
			http.Redirect(w, req, plain.URL+"/"+cfg, http.StatusFound)
			return
		}
		env.Real(w, req)
	})
	if _, err := hostileClient(env, aliceKeychain()).Blob(context.Background(), r.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if leaked.Load() {
		t.Error("credentials followed an https -> http redirect")
	}
}
