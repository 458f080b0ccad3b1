// Package hostiletest is a hostile registry world on loopback for tests:
// a real registry (go-containerregistry's in-process one, optionally behind
// Basic auth) and two hosts a hostile registry can send a client to, one on
// the same address with another port and one on another loopback address.
// Everything each server receives is logged without credential values, so a
// test can assert where credentials went.
package hostiletest

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// Server names in Hit.Server.
const (
	Registry = "registry" // 127.0.0.1:A
	SameHost = "samehost" // 127.0.0.1:B, same hostname as the registry
	Other    = "other"    // 127.0.0.2:C, another host
)

// Hit is one request a server received.
type Hit struct {
	Server, Method, Path, Query string
	// Auth is the scheme of the Authorization header ("Basic", "Bearer"),
	// never its value; Secret says whether it (or a form body) carried the
	// registry's password or a refresh token.
	Auth   string
	Secret bool
}

// Env holds the servers. Set a server's behaviour with Handle; the
// registry's default is the real registry (behind Basic auth when User is
// set), the others answer 404.
type Env struct {
	TLS      bool
	User     string
	Password string

	servers map[string]*httptest.Server
	real    http.Handler

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	hits     []Hit
}

// Option configures an Env.
type Option func(*Env)

// WithBasicAuth makes the registry ask for these Basic credentials.
func WithBasicAuth(user, password string) Option {
	return func(e *Env) { e.User, e.Password = user, password }
}

// WithTLS serves every host over HTTPS with httptest's certificate; use
// Env.Client().Transport to trust it.
func WithTLS() Option { return func(e *Env) { e.TLS = true } }

// New starts the servers; they stop when the test ends.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	e := &Env{servers: map[string]*httptest.Server{}, handlers: map[string]http.HandlerFunc{},
		real: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	for _, o := range opts {
		o(e)
	}
	for name, addr := range map[string]string{Registry: "127.0.0.1:0", SameHost: "127.0.0.1:0", Other: "127.0.0.2:0"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening on %s: %v", addr, err)
		}
		s := httptest.NewUnstartedServer(e.serve(name))
		s.Listener.Close()
		s.Listener = l
		if e.TLS {
			s.StartTLS()
		} else {
			s.Start()
		}
		t.Cleanup(s.Close)
		e.servers[name] = s
	}
	return e
}

// URL is a server's base URL (scheme://host:port).
func (e *Env) URL(server string) string { return e.servers[server].URL }

// Host is a server's host:port.
func (e *Env) Host(server string) string {
	u := e.servers[server].URL
	return u[strings.Index(u, "://")+3:]
}

// Client is an HTTP client that trusts the servers' certificate.
func (e *Env) Client() *http.Client { return e.servers[Registry].Client() }

// Handle replaces a server's behaviour; for the registry, h may call
// e.Real(w, r) to fall through to the real registry.
func (e *Env) Handle(server string, h http.HandlerFunc) {
	e.mu.Lock()
	e.handlers[server] = h
	e.mu.Unlock()
}

// Real serves r from the real registry, behind Basic auth when configured.
func (e *Env) Real(w http.ResponseWriter, r *http.Request) {
	if e.User != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != e.User || p != e.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="hostiletest"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	e.real.ServeHTTP(w, r)
}

// Push serves r from the real registry without auth (test setup).
func (e *Env) Push(w http.ResponseWriter, r *http.Request) { e.real.ServeHTTP(w, r) }

// Hits returns what every server received so far.
func (e *Env) Hits() []Hit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Hit(nil), e.hits...)
}

// Leaks lists the hits on server that carried an Authorization header or a
// refresh token.
func (e *Env) Leaks(server string) []Hit {
	var out []Hit
	for _, h := range e.Hits() {
		if h.Server == server && (h.Auth != "" || h.Secret) {
			out = append(out, h)
		}
	}
	return out
}

func (e *Env) serve(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := Hit{Server: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
		if a := r.Header.Get("Authorization"); a != "" {
			h.Auth, _, _ = strings.Cut(a, " ")
			_, p, _ := r.BasicAuth()
			h.Secret = e.Password != "" && p == e.Password
		}
		if r.Method == http.MethodPost {
			_ = r.ParseForm()
			h.Secret = h.Secret || r.PostForm.Get("refresh_token") != ""
		}
		e.mu.Lock()
		e.hits = append(e.hits, h)
		hd := e.handlers[name]
		e.mu.Unlock()
		switch {
		case hd != nil:
			hd(w, r)
		case name == Registry:
			e.Real(w, r)
		default:
			http.NotFound(w, r)
		}
	}
}
