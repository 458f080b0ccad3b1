// Package registry is a small OCI distribution client built for counting
// round trips: no /v2/ ping, credentials only after the registry asks for
// them (Basic or Bearer, tokens cached per scope), HEAD for tags, retries that
// honour Retry-After, size limits and digest verification on everything read.
// Credentials come from go-containerregistry's authn keychains.
//
// Where credentials go: only to the registry's own scheme://host:port and to
// the token realm a 401 from that origin names. Redirects (blob storage,
// CDNs) carry no Authorization header; a 401 from any other origin is an
// error, never a login. HTTPS is tried first everywhere; plain HTTP follows
// only for loopback registries and those named insecure, and credentials
// (Basic, or a token from an http:// realm) go over plain HTTP only to the
// latter.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"
)

// Accepted manifest media types, in preference order. Schema 1 is accepted
// so that it can be reported, never silently skipped.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v1+json",
}, ", ")

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	keychain    authn.Keychain
	http        *http.Client // follows redirects without Authorization
	tokenHTTP   *http.Client // token requests: no redirects at all
	userAgent   string
	maxManifest int64
	maxBlob     int64
	retries     int
	maxWait     time.Duration
	backoff     time.Duration
	sleep       func(context.Context, time.Duration) error
	plainAll    bool     // --plain-http: every registry is named insecure
	insecure    []string // registries named insecure: HOST (any port) or HOST:PORT
	timeout     time.Duration
	threshold   int
	cooldown    time.Duration

	// Shared with the clients ForKeychain derives.
	requests *atomic.Int64
	schemes  *sync.Map // registry -> "http" once HTTPS was refused and HTTP is allowed
	breaker  *breaker

	mu     sync.Mutex
	tokens map[string]token      // registry + scope -> bearer token
	basic  map[string]bool       // registries that asked for Basic auth
	bearer map[string]*challenge // registry -> its bearer challenge
	flight singleflight.Group
	// With an InOrder keychain: the credentials it has per repository,
	// and per registry which of them are in use (the next once a
	// registry refused the ones before).
	creds map[string][]*authn.AuthConfig
	alt   map[string]int
}

type token struct {
	value   string
	expires time.Time
}

type challenge struct {
	scheme  string // basic | bearer
	realm   string
	service string
}

// Option configures a Client.
type Option func(*Client)

// WithKeychain sets where credentials come from (default: anonymous).
func WithKeychain(k authn.Keychain) Option { return func(c *Client) { c.keychain = k } }

// WithTransport sets the base HTTP transport.
func WithTransport(t http.RoundTripper) Option { return func(c *Client) { c.http.Transport = t } }

// WithTimeout bounds how long a registry may take to answer a request
// (connection, TLS and response headers), and how long a response body may
// stall between two reads (default DefaultTimeout). A body as a whole is
// not timed: a large layer may take long to arrive, as long as it arrives.
// Connecting alone is bounded by at most 10s, the TLS handshake by 10s.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithBreaker sets after how many consecutive failures to reach a host
// (connection refused or reset, timeouts) the rest of the run's requests
// to it fail at once with an *UnreachableError, and for how long before one
// probes it again. threshold 0 disables it.
func WithBreaker(threshold int, cooldown time.Duration) Option {
	return func(c *Client) { c.threshold, c.cooldown = threshold, cooldown }
}

// WithLimits sets the largest manifest and config blob read into memory.
func WithLimits(manifest, blob int64) Option {
	return func(c *Client) { c.maxManifest, c.maxBlob = manifest, blob }
}

// WithRetry sets how many times a 429, 5xx or network error is retried, the
// longest Retry-After honoured, and the first backoff (doubled each time).
func WithRetry(retries int, maxWait, backoff time.Duration) Option {
	return func(c *Client) { c.retries, c.maxWait, c.backoff = retries, maxWait, backoff }
}

// WithInsecureRegistries names registries that may be reached over plain
// HTTP, and that get credentials over it: "HOST" (any port) or "HOST:PORT".
// HTTPS is still tried first.
func WithInsecureRegistries(regs ...string) Option {
	return func(c *Client) {
		for _, r := range regs {
			if r != "" {
				c.insecure = append(c.insecure, normalizeRegistry(r))
			}
		}
	}
}

// WithPlainHTTP names every registry insecure (--plain-http).
func WithPlainHTTP() Option { return func(c *Client) { c.plainAll = true } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// withSleep replaces the wait between retries (tests).
func withSleep(f func(context.Context, time.Duration) error) Option {
	return func(c *Client) { c.sleep = f }
}

// New returns a Client with defaults: anonymous, 4 MiB manifests, 16 MiB
// configs, 5 retries, Retry-After honoured up to 60s, DefaultTimeout, a
// breaker after DefaultBreakerThreshold failures in a row.
func New(opts ...Option) *Client {
	c := &Client{
		keychain:    authn.NewMultiKeychain(),
		http:        &http.Client{Transport: defaultTransport()},
		timeout:     DefaultTimeout,
		threshold:   DefaultBreakerThreshold,
		cooldown:    DefaultBreakerCooldown,
		userAgent:   "archfit",
		maxManifest: DefaultMaxManifest,
		maxBlob:     DefaultMaxBlob,
		retries:     5,
		maxWait:     60 * time.Second,
		backoff:     250 * time.Millisecond,
		sleep:       sleepCtx,
		requests:    &atomic.Int64{},
		schemes:     &sync.Map{},
		tokens:      map[string]token{},
		creds:       map[string][]*authn.AuthConfig{},
		alt:         map[string]int{},
		basic:       map[string]bool{},
		bearer:      map[string]*challenge{},
	}
	for _, o := range opts {
		o(c)
	}
	c.breaker = newBreaker(c.threshold, c.cooldown)
	// Go keeps Authorization on a redirect to the same hostname (any port,
	// and https -> http): redirects here carry none. Token requests follow
	// no redirect, since a 307 would resend a refresh token in the body.
	c.http.CheckRedirect = stripAuthorization
	// A token response is small: the whole exchange is timed.
	c.tokenHTTP = &http.Client{Transport: c.http.Transport, Timeout: c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

// ForKeychain returns a client that takes credentials from k instead: same
// transport, limits, request count and scheme memory, but its own tokens
// and challenges, since a token is worth what the credentials it was
// obtained with are worth.
func (c *Client) ForKeychain(k authn.Keychain) *Client {
	return &Client{
		keychain: k, http: c.http, tokenHTTP: c.tokenHTTP, userAgent: c.userAgent,
		maxManifest: c.maxManifest, maxBlob: c.maxBlob, retries: c.retries, maxWait: c.maxWait,
		backoff: c.backoff, sleep: c.sleep, plainAll: c.plainAll, insecure: c.insecure,
		timeout: c.timeout, threshold: c.threshold, cooldown: c.cooldown,
		requests: c.requests, schemes: c.schemes, breaker: c.breaker,
		tokens: map[string]token{}, basic: map[string]bool{}, bearer: map[string]*challenge{},
		creds: map[string][]*authn.AuthConfig{}, alt: map[string]int{},
	}
}

func stripAuthorization(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	req.Header.Del("Authorization")
	return nil
}

// Requests is the number of HTTP requests sent so far: written to a
// connection (token requests, retries and redirects included; an HTTPS
// attempt a plain-HTTP registry refused and a request the breaker stopped
// are not).
func (c *Client) Requests() int64 { return c.requests.Load() }

// named reports whether the user named reg insecure.
func (c *Client) named(reg string) bool {
	if c.plainAll {
		return true
	}
	reg = normalizeRegistry(reg)
	host := hostOf(reg)
	for _, n := range c.insecure {
		if n == reg || n == host {
			return true
		}
	}
	return false
}

// plainAllowed reports whether reg may be reached over plain HTTP after
// HTTPS failed: loopback, or named insecure.
func (c *Client) plainAllowed(reg string) bool {
	if c.named(reg) {
		return true
	}
	h := hostOf(reg)
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// scheme is the scheme reg is talked to with: https unless it refused TLS
// and plain HTTP is allowed for it.
func (c *Client) scheme(reg string) string {
	if v, ok := c.schemes.Load(reg); ok {
		return v.(string)
	}
	return "https"
}

// credentialsAllowed reports whether credentials may travel to reg over
// scheme.
func (c *Client) credentialsAllowed(scheme, reg string) bool {
	return scheme == "https" || c.named(reg)
}

// hostOf is reg without its port.
func hostOf(reg string) string {
	if h, _, err := net.SplitHostPort(reg); err == nil {
		return h
	}
	return strings.Trim(reg, "[]")
}

func normalizeRegistry(r string) string {
	r = strings.ToLower(strings.TrimSpace(r))
	if r == "docker.io" {
		return name.DefaultRegistry
	}
	return r
}

// tlsRefused reports whether an HTTPS attempt failed because the server
// speaks plain HTTP (or nothing listens on 443 of a registry named without a
// port), the cases containerd also falls back on.
func tlsRefused(err error, reg string) bool {
	var rh tls.RecordHeaderError
	if errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh) {
		return true
	}
	if strings.Contains(err.Error(), "TLS handshake timeout") {
		return true
	}
	var oe *net.OpError
	if _, _, perr := net.SplitHostPort(reg); perr != nil && errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return false
}

// defaultTransport keeps enough idle connections per registry for a
// concurrent run (net/http keeps 2 by default, so most requests would open
// a new connection).
func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	return t
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Descriptor is what a manifest request tells about its object.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

// Manifest GETs a manifest by tag or digest. The content is verified against
// the requested digest, or the Docker-Content-Digest header for a tag.
func (c *Client) Manifest(ctx context.Context, ref name.Reference) ([]byte, Descriptor, error) {
	if d, ok := ref.(name.Digest); ok {
		if err := CheckDigest(d.DigestStr()); err != nil {
			return nil, Descriptor{}, err
		}
	}
	resp, err := c.do(ctx, http.MethodGet, ref.Context(), manifestPath(ref), manifestAccept)
	if err != nil {
		return nil, Descriptor{}, err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, c.maxManifest)
	if err != nil {
		return nil, Descriptor{}, fmt.Errorf("reading manifest %s: %w", ref, err)
	}
	sum := sha256.Sum256(body)
	dgst := "sha256:" + hex.EncodeToString(sum[:])
	want := resp.Header.Get("Docker-Content-Digest")
	if d, ok := ref.(name.Digest); ok {
		want = d.DigestStr()
	}
	// Every algorithm the spec allows is verified; the descriptor keeps the
	// digest the content was asked for (or announced) by.
	if want != "" {
		if err := VerifyDigest(want, body); err != nil {
			return nil, Descriptor{}, fmt.Errorf("manifest %s: %w", ref, err)
		}
		dgst = want
	}
	mt := mediaType(resp.Header.Get("Content-Type"))
	return body, Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(body))}, nil
}

// Head asks for a manifest's descriptor without its body: no pull counted
// against Docker Hub's quota.
func (c *Client) Head(ctx context.Context, ref name.Reference) (Descriptor, error) {
	resp, err := c.do(ctx, http.MethodHead, ref.Context(), manifestPath(ref), manifestAccept)
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	d := Descriptor{
		MediaType: mediaType(resp.Header.Get("Content-Type")),
		Digest:    resp.Header.Get("Docker-Content-Digest"),
		Size:      resp.ContentLength,
	}
	if d.Digest == "" {
		return Descriptor{}, fmt.Errorf("HEAD %s: registry sent no Docker-Content-Digest", ref)
	}
	return d, nil
}

// Blob GETs a small blob (a config) fully, verified and size-limited.
func (c *Client) Blob(ctx context.Context, repo name.Repository, digest string) ([]byte, error) {
	rc, err := c.BlobStream(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := readLimited(rc, c.maxBlob)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", digest, err)
	}
	if err := VerifyDigest(digest, body); err != nil {
		return nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	return body, nil
}

// BlobStream opens a blob for streaming (layers). The caller bounds and
// verifies what it reads.
func (c *Client) BlobStream(ctx context.Context, repo name.Repository, digest string) (io.ReadCloser, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodGet, repo, fmt.Sprintf("/v2/%s/blobs/%s", repo.RepositoryStr(), digest), "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// manifestPath is where a manifest lives on its registry. The scheme is the
// client's choice (see scheme), never name.Registry.Scheme(), which says
// http for every private address range.
func manifestPath(ref name.Reference) string {
	return fmt.Sprintf("/v2/%s/manifests/%s", ref.Context().RepositoryStr(), ref.Identifier())
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
	}
	return b, nil
}

// do sends one logical request for path (with its query) on repo's
// registry: authenticating when the registry itself challenges, retrying 429
// (per Retry-After), 5xx and network errors with bounded backoff. On success
// the response body is the caller's to close.
func (c *Client) do(ctx context.Context, method string, repo name.Repository, path, accept string) (*http.Response, error) {
	scope := "repository:" + repo.RepositoryStr() + ":pull"
	reg := repo.RegistryStr()
	authed := false
	backoff := c.backoff
	for attempt := 0; ; attempt++ {
		if err := c.breaker.allow(ctx, reg); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, redact(c.scheme(reg)+"://"+reg+path), err)
		}
		scheme := c.scheme(reg)
		url := scheme + "://" + reg + path
		from := c.inUse(reg)
		resp, err := c.send(ctx, method, url, accept, repo, reg, scope)
		var ae authorizeError
		if errors.As(err, &ae) {
			c.breaker.release(reg)
			return nil, ae.err // credentials or a token: not this registry's connection
		}
		if err != nil && scheme == "https" && ctx.Err() == nil && c.plainAllowed(reg) && tlsRefused(err, reg) {
			// A plain-HTTP registry this client may talk plain HTTP to.
			c.breaker.release(reg)
			c.schemes.Store(reg, "http")
			attempt--
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				c.breaker.release(reg)
				return nil, err
			}
			if failedOn(err, reg) {
				c.breaker.failed(reg, err)
			} else {
				c.breaker.release(reg)
			}
			// A registry that had the whole timeout to answer is not asked
			// again; a refused or reset connection is, with backoff, but
			// fewer times than a 429/5xx: a registry that is down should not
			// hold an audit for long.
			var te *TimeoutError
			if errors.As(err, &te) || attempt >= min(c.retries, 2) {
				return nil, fmt.Errorf("%s %s: %w", method, redact(url), redactError(err))
			}
			if err := c.sleep(ctx, backoff); err != nil {
				return nil, err
			}
			backoff *= 2
			continue
		}
		c.breaker.answered(reg)
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, nil
		case resp.StatusCode == http.StatusUnauthorized && !authed:
			ch := parseChallenge(resp.Header.Get("WWW-Authenticate"))
			drain(resp)
			if from := resp.Request.URL; from.Scheme != scheme || !strings.EqualFold(from.Host, reg) {
				// A redirect target (blob storage, a CDN) asked for
				// credentials: they are not its to have.
				return nil, &HTTPError{Method: method, URL: redact(from.String()), StatusCode: resp.StatusCode,
					Message: fmt.Sprintf("a redirect from %s asked for credentials; they are sent only to %s", reg, reg)}
			}
			if ch == nil {
				return nil, &HTTPError{Method: method, URL: redact(url), StatusCode: resp.StatusCode, Message: "no usable WWW-Authenticate challenge"}
			}
			if msg := c.refuseChallenge(scheme, reg, ch); msg != "" {
				return nil, &HTTPError{Method: method, URL: redact(url), StatusCode: resp.StatusCode, Message: msg}
			}
			if err := c.login(ctx, repo, reg, scope, ch); err != nil {
				return nil, err
			}
			authed = true
			continue
		case authed && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) &&
			c.refused(ctx, repo, from):
			// The credentials sent were refused and there are others to
			// try (InOrder): the next ones, from a new challenge.
			drain(resp)
			authed = false
			continue
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) && attempt < c.retries:
			wait := backoff
			if resp.StatusCode == http.StatusTooManyRequests {
				if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
					wait = ra
				}
			}
			drain(resp)
			if wait > c.maxWait {
				return nil, &HTTPError{Method: method, URL: redact(url), StatusCode: resp.StatusCode, Message: fmt.Sprintf("Retry-After %s exceeds the %s limit", wait, c.maxWait)}
			}
			if err := c.sleep(ctx, wait); err != nil {
				return nil, err
			}
			backoff *= 2
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, newHTTPError(resp, body)
	}
}

// refusedCredentials says whether err is a token service's refusal of
// the credentials it was sent (401 or 403).
func refusedCredentials(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden)
}

// failedOn reports whether a transport error is reg's own, not that of a
// redirect target (blob storage, a CDN) the registry sent the client to.
func failedOn(err error, reg string) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return strings.EqualFold(u.Host, reg)
		}
	}
	return true
}

// authorizeError is an error of getting credentials or a token for a
// request, which was then not sent.
type authorizeError struct{ err error }

func (e authorizeError) Error() string { return e.err.Error() }

// send sends one HTTP request, timed: the registry has c.timeout to send
// response headers, and the body returned may stall no longer between two
// reads. Timeouts come back as *TimeoutError. Sent requests are counted.
func (c *Client) send(ctx context.Context, method, url, accept string, repo name.Repository, reg, scope string) (*http.Response, error) {
	actx, cancel := context.WithCancelCause(countSent(ctx, c.requests))
	var inBody atomic.Bool
	timer := time.AfterFunc(c.timeout, func() {
		while := "waiting for response headers"
		if inBody.Load() {
			while = "reading the response body"
		}
		cancel(&TimeoutError{Host: reg, While: while, After: c.timeout})
	})
	req, err := http.NewRequestWithContext(actx, method, url, nil)
	if err != nil {
		timer.Stop()
		cancel(nil)
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if err := c.authorize(ctx, req, repo, reg, scope); err != nil {
		timer.Stop()
		cancel(nil)
		return nil, authorizeError{err}
	}
	resp, err := c.http.Do(req)
	timer.Stop()
	if err != nil {
		if te := timeoutCause(actx); te != nil {
			err = te
		}
		cancel(nil)
		return nil, err
	}
	inBody.Store(true)
	resp.Body = &timedBody{rc: resp.Body, timer: timer, idle: c.timeout, ctx: actx, cancel: cancel}
	return resp, nil
}

// refuseChallenge says why a challenge from reg (reached over scheme) is
// not answered, or "" when it is: no credentials in cleartext, and no
// plain-HTTP token realm, unless the user named reg insecure.
func (c *Client) refuseChallenge(scheme, reg string, ch *challenge) string {
	hint := fmt.Sprintf("name it with --insecure-registry %s (or --plain-http) to allow that", reg)
	if ch.scheme == "basic" && !c.credentialsAllowed(scheme, reg) {
		return fmt.Sprintf("registry %s asks for credentials over plain HTTP; they were not sent: %s", reg, hint)
	}
	if ch.scheme == "bearer" {
		u, err := url.Parse(ch.realm)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			return fmt.Sprintf("registry %s names an unusable token realm %q", reg, redact(ch.realm))
		case u.Scheme == "http" && !c.named(reg):
			return fmt.Sprintf("registry %s names a plain-HTTP token realm %s; no credentials were sent: %s", reg, redact(ch.realm), hint)
		case scheme == "http" && !c.named(reg):
			return fmt.Sprintf("registry %s asks for a token over plain HTTP; no credentials were sent: %s", reg, hint)
		}
	}
	return ""
}

// redactError drops the query string of the URL a *url.Error quotes (the
// HTTP client's errors name the redirect target, a pre-signed URL).
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact(ue.URL)
	}
	return err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// retryAfter parses delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func (c *Client) authorize(ctx context.Context, req *http.Request, repo name.Repository, reg, scope string) error {
	c.mu.Lock()
	tok, haveTok := c.tokens[reg+" "+scope]
	basic := c.basic[reg]
	ch := c.bearer[reg]
	c.mu.Unlock()
	switch {
	case haveTok && time.Now().Before(tok.expires):
		req.Header.Set("Authorization", "Bearer "+tok.value)
	case ch != nil:
		// The registry wants bearer tokens and this scope has none yet: get
		// one now rather than spend a round trip on a 401.
		if err := c.login(ctx, repo, reg, scope, ch); err != nil {
			return err
		}
		c.mu.Lock()
		tok = c.tokens[reg+" "+scope]
		c.mu.Unlock()
		if tok.value != "" {
			req.Header.Set("Authorization", "Bearer "+tok.value)
		}
	case basic && c.credentialsAllowed(req.URL.Scheme, reg):
		cfg, err := c.credentials(ctx, repo)
		if err != nil {
			return err
		}
		if cfg.Username != "" || cfg.Password != "" {
			req.SetBasicAuth(cfg.Username, cfg.Password)
		}
	}
	return nil
}

func (c *Client) credentials(ctx context.Context, repo name.Repository) (*authn.AuthConfig, error) {
	if o, ok := c.keychain.(orderedKeychain); ok {
		all, err := c.allCredentials(ctx, o, repo)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return &authn.AuthConfig{}, nil
		}
		c.mu.Lock()
		i := c.alt[repo.RegistryStr()]
		c.mu.Unlock()
		return all[min(i, len(all)-1)], nil
	}
	a, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", repo.RegistryStr(), err)
	}
	cfg, err := authn.Authorization(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", repo.RegistryStr(), err)
	}
	return cfg, nil
}

// allCredentials is o's credentials for repo, resolved once per client.
func (c *Client) allCredentials(ctx context.Context, o orderedKeychain, repo name.Repository) ([]*authn.AuthConfig, error) {
	key := repo.String()
	c.mu.Lock()
	all, ok := c.creds[key]
	c.mu.Unlock()
	if ok {
		return all, nil
	}
	all, err := o.all(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", repo.RegistryStr(), err)
	}
	c.mu.Lock()
	c.creds[key] = all
	c.mu.Unlock()
	return all, nil
}

// inUse is which of an InOrder keychain's credentials reg is sent.
func (c *Client) inUse(reg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alt[reg]
}

// refused is called when reg (or its token service) refused the
// credentials that were in use (from, inUse's answer before the request):
// with an InOrder keychain that has more for repo, reg is sent the next
// ones from now on (its tokens, got with the refused ones, are dropped)
// and refused reports true, as it does when another request moved on
// already; otherwise false, and the refusal stands.
func (c *Client) refused(ctx context.Context, repo name.Repository, from int) bool {
	o, ok := c.keychain.(orderedKeychain)
	if !ok {
		return false
	}
	all, err := c.allCredentials(ctx, o, repo)
	if err != nil {
		return false
	}
	reg := repo.RegistryStr()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alt[reg] > from {
		return true
	}
	if from+1 >= len(all) {
		return false
	}
	c.alt[reg] = from + 1
	for k := range c.tokens {
		if strings.HasPrefix(k, reg+" ") {
			delete(c.tokens, k)
		}
	}
	return true
}

// login answers a challenge: remember Basic, or fetch a bearer token for
// the scope (once, however many goroutines ask).
func (c *Client) login(ctx context.Context, repo name.Repository, reg, scope string, ch *challenge) error {
	if ch.scheme == "basic" {
		c.mu.Lock()
		c.basic[reg] = true
		c.mu.Unlock()
		return nil
	}
	c.mu.Lock()
	c.bearer[reg] = ch
	c.mu.Unlock()
	key := reg + " " + scope
	_, err, _ := c.flight.Do("token "+key, func() (any, error) {
		c.mu.Lock()
		tok, ok := c.tokens[key]
		c.mu.Unlock()
		if ok && time.Now().Before(tok.expires) {
			return nil, nil
		}
		from := c.inUse(reg)
		tok, err := c.fetchToken(ctx, repo, ch, scope)
		for err != nil && refusedCredentials(err) && c.refused(ctx, repo, from) {
			from = c.inUse(reg)
			tok, err = c.fetchToken(ctx, repo, ch, scope)
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.tokens[key] = tok
		c.mu.Unlock()
		return nil, nil
	})
	return err
}

func (c *Client) fetchToken(ctx context.Context, repo name.Repository, ch *challenge, scope string) (token, error) {
	cfg, err := c.credentials(ctx, repo)
	if err != nil {
		return token{}, err
	}
	var req *http.Request
	if cfg.IdentityToken != "" {
		// An identity (refresh) token, as `docker login` stores for Azure
		// Container Registry and others, is exchanged with the OAuth2 form
		// POST of the distribution token spec.
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cfg.IdentityToken},
			"service": {ch.service}, "scope": {scope}, "client_id": {"archfit"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, ch.realm, strings.NewReader(form.Encode()))
		if err != nil {
			return token{}, fmt.Errorf("token realm %q: %w", redact(ch.realm), redactError(err))
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, ch.realm, nil)
		if err != nil {
			return token{}, fmt.Errorf("token realm %q: %w", redact(ch.realm), redactError(err))
		}
		q := req.URL.Query()
		if ch.service != "" {
			q.Set("service", ch.service)
		}
		q.Set("scope", scope)
		req.URL.RawQuery = q.Encode()
		switch {
		case cfg.RegistryToken != "":
			req.Header.Set("Authorization", "Bearer "+cfg.RegistryToken)
		case cfg.Username != "" || cfg.Password != "":
			req.SetBasicAuth(cfg.Username, cfg.Password)
		}
	}
	req.Header.Set("User-Agent", c.userAgent)
	realm := req.URL.Host
	if err := c.breaker.check(realm); err != nil {
		return token{}, fmt.Errorf("fetching token: %w", err)
	}
	resp, err := c.tokenHTTP.Do(req.WithContext(countSent(req.Context(), c.requests)))
	if err != nil {
		if ctx.Err() == nil && failedOn(err, realm) {
			c.breaker.tokenFailed(realm, err)
		}
		return token{}, fmt.Errorf("fetching token: %w", redactError(err))
	}
	c.breaker.tokenAnswered(realm)
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return token{}, fmt.Errorf("fetching token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return token{}, newHTTPError(resp, body)
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return token{}, fmt.Errorf("fetching token: %w", err)
	}
	t := token{value: tr.Token}
	if t.value == "" {
		t.value = tr.AccessToken
	}
	if t.value == "" {
		return token{}, errors.New("fetching token: empty token")
	}
	exp := tr.ExpiresIn
	if exp <= 0 {
		exp = 60
	}
	// Refresh a little early so a token never expires in flight.
	t.expires = time.Now().Add(time.Duration(exp)*time.Second - 5*time.Second)
	return t, nil
}

// parseChallenge reads a WWW-Authenticate header: Basic or Bearer with
// realm and service (the scope we compute ourselves).
func parseChallenge(h string) *challenge {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	switch strings.ToLower(scheme) {
	case "basic":
		return &challenge{scheme: "basic"}
	case "bearer":
		ch := &challenge{scheme: "bearer"}
		for k, v := range parseParams(rest) {
			switch k {
			case "realm":
				ch.realm = v
			case "service":
				ch.service = v
			}
		}
		if ch.realm == "" {
			return nil
		}
		return ch
	}
	return nil
}

func parseParams(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ,")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v string
		if strings.HasPrefix(rest, `"`) {
			rest = rest[1:]
			var b strings.Builder
			i := 0
			for ; i < len(rest); i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
					b.WriteByte(rest[i])
					continue
				}
				if rest[i] == '"' {
					break
				}
				b.WriteByte(rest[i])
			}
			v = b.String()
			if i < len(rest) {
				rest = rest[i+1:]
			} else {
				rest = ""
			}
		} else {
			v, rest, _ = strings.Cut(rest, ",")
		}
		out[k] = strings.TrimSpace(v)
		s = rest
	}
	return out
}

// maxTagPages bounds the pages of one tag list: 10,000 tags at the 1,000
// a page asked for, with room for registries that page smaller.
const maxTagPages = 100

// Tags lists a repository's tags (following Link pagination), at most max.
// A Link to another origin, back to a page already read, or past
// maxTagPages pages is refused with ErrPagination.
func (c *Client) Tags(ctx context.Context, repo name.Repository, max int) ([]string, error) {
	path := fmt.Sprintf("/v2/%s/tags/list?n=%d", repo.RepositoryStr(), min(max, 1000))
	seen := map[string]bool{}
	var tags []string
	for pages := 0; path != "" && len(tags) < max; pages++ {
		if pages >= maxTagPages {
			return nil, fmt.Errorf("listing tags of %s: %w: more than %d pages", repo, ErrPagination, maxTagPages)
		}
		if seen[path] {
			return nil, fmt.Errorf("listing tags of %s: %w: Link leads back to %s, a page already read", repo, ErrPagination, redact(path))
		}
		seen[path] = true
		resp, err := c.do(ctx, http.MethodGet, repo, path, "application/json")
		if err != nil {
			return nil, err
		}
		body, err := readLimited(resp.Body, 8<<20)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		tags = append(tags, page.Tags...)
		if path, err = nextLink(resp); err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
	}
	if len(tags) > max {
		tags = tags[:max]
	}
	return tags, nil
}

// nextLink reads an RFC 8288 Link: <...>; rel="next" header and returns the
// path and query of the next page, resolved against the page's own URL. A
// next page on another origin (scheme, host or port) is refused: the tag
// list is the registry's, and only the registry gets its credentials.
func nextLink(resp *http.Response) (string, error) {
	l := resp.Header.Get("Link")
	if l == "" {
		return "", nil
	}
	start, end := strings.IndexByte(l, '<'), strings.IndexByte(l, '>')
	if start < 0 || end <= start || !strings.Contains(l[end:], `rel="next"`) {
		return "", nil
	}
	base := resp.Request.URL
	next, err := base.Parse(l[start+1 : end])
	if err != nil {
		return "", fmt.Errorf("%w: unreadable Link %q", ErrPagination, redact(l[start+1:end]))
	}
	if next.Scheme != base.Scheme || !strings.EqualFold(next.Host, base.Host) {
		return "", fmt.Errorf("%w: Link to another origin %s", ErrPagination, redact(next.String()))
	}
	return next.RequestURI(), nil
}
