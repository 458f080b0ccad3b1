package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/testimage"
)

func realRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func ref(t *testing.T, s *httptest.Server, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(s.URL, "http://") + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recordSleep replaces waiting: the faults below (429 with Retry-After,
// 503) are ones a real registry cannot be made to produce on demand, so a
// hand-written handler injects them in front of the real registry.
func recordSleep(waits *[]time.Duration) Option {
	var mu sync.Mutex
	return withSleep(func(_ context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return nil
	})
}

func TestRetryAfterAndBackoff(t *testing.T) {
	var n atomic.Int32
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
				switch n.Add(1) {
				case 1:
					w.Header().Set("Retry-After", "7")
					w.WriteHeader(http.StatusTooManyRequests)
					fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
					return
				case 2:
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	r := ref(t, s, "app:1")
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64")); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	c := New(recordSleep(&waits), WithRetry(5, time.Minute, 100*time.Millisecond))
	if _, _, err := c.Manifest(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	// 7s from Retry-After, then the backoff (already doubled once).
	if diff := cmp.Diff([]time.Duration{7 * time.Second, 200 * time.Millisecond}, waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if got := c.Requests(); got != 3 {
		t.Errorf("requests %d, want 3", got)
	}
}

func TestRetryAfterTooLongAndExhausted(t *testing.T) {
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/always429/") {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		})
	})
	var waits []time.Duration
	c := New(recordSleep(&waits), WithRetry(3, time.Minute, time.Millisecond))
	_, _, err := c.Manifest(context.Background(), ref(t, s, "slow:1"))
	var he *HTTPError
	if !errors.As(err, &he) || he.Reason() != "rate-limited" || len(waits) != 0 {
		t.Fatalf("Retry-After beyond the limit: got %v after waits %v", err, waits)
	}
	_, _, err = c.Manifest(context.Background(), ref(t, s, "always429/x:1"))
	if !errors.As(err, &he) || he.StatusCode != http.StatusTooManyRequests || len(waits) != 3 {
		t.Fatalf("exhausted retries: got %v after waits %v", err, waits)
	}
}

// TestBearerAuth runs the token flow: 401 with a Bearer challenge, a token
// fetched with the keychain's credentials, then reused for the same scope.
func TestBearerAuth(t *testing.T) {
	var tokenCalls atomic.Int32
	var realm string
	var locked atomic.Bool // the push happens before auth is switched on
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !locked.Load() {
				h.ServeHTTP(w, r)
				return
			}
			if r.URL.Path == "/token" {
				u, p, _ := r.BasicAuth()
				if u != "alice" || p != "s3cret" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				tokenCalls.Add(1)
				fmt.Fprintf(w, `{"token":"tok-%s","expires_in":300}`, r.URL.Query().Get("scope"))
				return
			}
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				want := "Bearer tok-repository:" + strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")[0] + ":pull"
				if r.Header.Get("Authorization") != want {
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test",scope="repository:x:pull"`, realm))
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	realm = s.URL + "/token"
	r := ref(t, s, "private:1")
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64")); err != nil {
		t.Fatal(err)
	}
	locked.Store(true)
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "s3cret"})}
	// Credentials over plain HTTP need the registry named insecure.
	insecure := WithInsecureRegistries(r.Context().RegistryStr())
	c := New(WithKeychain(kc), insecure)
	ctx := context.Background()
	if _, _, err := c.Manifest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Head(ctx, r); err != nil {
		t.Fatal(err)
	}
	// 401 + token + retried GET, then HEAD with the cached token.
	if got, calls := c.Requests(), tokenCalls.Load(); got != 4 || calls != 1 {
		t.Errorf("requests %d (want 4), token calls %d (want 1)", got, calls)
	}
	// Wrong credentials: a clear auth error, no credentials in it.
	bad := New(WithKeychain(staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "wrong"})}), insecure)
	_, _, err := bad.Manifest(ctx, r)
	var he *HTTPError
	if !errors.As(err, &he) || he.Reason() != "auth" || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("bad credentials: got %v", err)
	}
	// A stale pod secret first, then working credentials (InOrder): the
	// token service refuses the first, the second get the token, and
	// later requests keep them (one refused token call, then as above).
	wrong := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "wrong"})}
	tokenCalls.Store(0)
	fallback := New(WithKeychain(InOrder(wrong, kc)), insecure)
	if _, _, err := fallback.Manifest(ctx, r); err != nil {
		t.Fatalf("stale secret, then working credentials: %v", err)
	}
	if _, err := fallback.Head(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, calls := fallback.Requests(), tokenCalls.Load(); got != 5 || calls != 1 {
		t.Errorf("requests %d (want 5: 401, refused token, token, GET, HEAD), token calls granted %d (want 1)", got, calls)
	}
	onlyWrong := New(WithKeychain(InOrder(wrong, wrong)), insecure)
	if _, _, err := onlyWrong.Manifest(ctx, r); !errors.As(err, &he) || he.Reason() != "auth" {
		t.Fatalf("only refused credentials: got %v", err)
	}
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

func TestLimitsAndDigests(t *testing.T) {
	big := strings.Repeat(" ", 5<<20)
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.Contains(r.URL.Path, "/huge/manifests/"):
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				fmt.Fprint(w, "{"+big+"}")
				return
			case strings.Contains(r.URL.Path, "/liar/manifests/"):
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.Header().Set("Docker-Content-Digest", "sha256:0000000000000000000000000000000000000000000000000000000000000000")
				fmt.Fprint(w, `{"schemaVersion":2}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := New()
	ctx := context.Background()
	if _, _, err := c.Manifest(ctx, ref(t, s, "huge:1")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge manifest: got %v, want ErrTooLarge", err)
	}
	if _, _, err := c.Manifest(ctx, ref(t, s, "liar:1")); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("lying digest: got %v, want ErrDigestMismatch", err)
	}
	_, _, err := c.Manifest(ctx, ref(t, s, "nothere:1"))
	var he *HTTPError
	if !errors.As(err, &he) || he.Reason() != "not-found" {
		t.Errorf("missing tag: got %v", err)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
		{"", 0, false},
	} {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	got := parseChallenge(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`)
	want := &challenge{scheme: "bearer", realm: "https://auth.docker.io/token", service: "registry.docker.io"}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(challenge{})); diff != "" {
		t.Error(diff)
	}
	if c := parseChallenge(`Basic realm="Registry Realm"`); c == nil || c.scheme != "basic" {
		t.Errorf("basic: %+v", c)
	}
	if c := parseChallenge(`Negotiate`); c != nil {
		t.Errorf("unknown scheme: %+v", c)
	}
}

// TestIdentityTokenExchange: an identity (refresh) token from docker login
// is exchanged by the OAuth2 POST; the registry then accepts the access token.
// The token endpoint is hand-written: the in-process registry has no auth.
func TestIdentityTokenExchange(t *testing.T) {
	var locked atomic.Bool
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !locked.Load() {
				h.ServeHTTP(w, r)
				return
			}
			if r.URL.Path == "/oauth2/token" {
				if r.Method != http.MethodPost || r.PostFormValue("grant_type") != "refresh_token" || r.PostFormValue("refresh_token") != "refresh-123" ||
					r.PostFormValue("scope") != "repository:acr/app:pull" || r.PostFormValue("service") != "acr" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				fmt.Fprint(w, `{"access_token":"access-456","expires_in":300}`)
				return
			}
			if r.Header.Get("Authorization") != "Bearer access-456" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/oauth2/token",service="acr"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r := ref(t, s, "acr/app:1")
	if err := remote.Write(r, testimage.App("linux/arm64", "arm64")); err != nil {
		t.Fatal(err)
	}
	locked.Store(true)
	c := New(WithKeychain(staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "00000000-0000-0000-0000-000000000000", IdentityToken: "refresh-123"})}),
		WithInsecureRegistries(r.Context().RegistryStr()))
	if _, _, err := c.Manifest(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}
