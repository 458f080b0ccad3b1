package serve

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReportPath is where the HTTPS port serves the report of decisions: it
// names pods, workloads and images, so it is served only to a caller the
// cluster authenticates (a bearer token, TokenReview) and authorizes for
// GET on the non-resource URL /report (SubjectAccessReview), as
// Kubernetes components and controller-runtime's secure metrics do.
const ReportPath = "/report"

// authCache remembers verdicts on tokens briefly, so that a scraper does
// not cost two API requests per GET. Keys are token hashes. At most
// authInFlight tokens are being checked at once: a caller beyond that is
// answered 429 without asking the API server, so made-up tokens cannot
// queue reviews without end.
type authCache struct {
	mu       sync.Mutex
	entries  map[[32]byte]authVerdict
	now      func() time.Time
	inFlight chan struct{}
	once     sync.Once
}

type authVerdict struct {
	status int // 200, 401 or 403
	until  time.Time
}

const (
	authAllowTTL = time.Minute
	authDenyTTL  = 10 * time.Second
	authMax      = 1024
	authInFlight = 4
)

// authorized serves next to callers allowed to GET path, and answers 401
// (no or bad token) or 403 (not allowed) to the others. An API server that
// cannot be asked is a 503: never served unchecked.
func (s *Server) authorized(path string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="archfit"`)
			http.Error(w, "Unauthorized: a bearer token is required", http.StatusUnauthorized)
			return
		}
		status := s.auth.verdict(r.Context(), s, token, path)
		switch status {
		case http.StatusOK:
			next(w, r)
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="archfit"`)
			http.Error(w, "Unauthorized", status)
		case http.StatusForbidden:
			http.Error(w, "Forbidden: get on "+path+" is not allowed", status)
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many tokens being checked: retry", status)
		default:
			http.Error(w, "the API server could not check the token", http.StatusServiceUnavailable)
		}
	}
}

func (c *authCache) verdict(ctx context.Context, s *Server, token, path string) int {
	key := sha256.Sum256([]byte(path + "\x00" + token))
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[[32]byte]authVerdict{}
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if v, ok := c.entries[key]; ok && now().Before(v.until) {
		c.mu.Unlock()
		return v.status
	}
	c.mu.Unlock()
	c.once.Do(func() { c.inFlight = make(chan struct{}, authInFlight) })
	select {
	case c.inFlight <- struct{}{}:
	default:
		return http.StatusTooManyRequests
	}
	status := s.checkToken(ctx, token, path)
	<-c.inFlight
	if status == http.StatusServiceUnavailable {
		return status
	}
	ttl := authDenyTTL
	if status == http.StatusOK {
		ttl = authAllowTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= authMax {
		c.evict(now(), status == http.StatusOK)
	}
	if len(c.entries) < authMax {
		c.entries[key] = authVerdict{status: status, until: now().Add(ttl)}
	}
	return status
}

// evict makes room when the cache is full: expired verdicts go, then
// denials (a flood of made-up tokens must not push out the scrapers that
// are allowed), then, to make room for an allowed token only, any.
func (c *authCache) evict(now time.Time, forAllowed bool) {
	for k, v := range c.entries {
		if !now.Before(v.until) {
			delete(c.entries, k)
		}
	}
	for k, v := range c.entries {
		if len(c.entries) < authMax {
			return
		}
		if v.status != http.StatusOK {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if !forAllowed || len(c.entries) < authMax {
			return
		}
		delete(c.entries, k)
	}
}

// checkToken asks the API server who the token is and whether they may
// GET path.
func (s *Server) checkToken(ctx context.Context, token, path string) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cs := s.reviews
	if cs == nil {
		cs = s.cs
	}
	tr, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		s.cfg.Log.Warn("token review", "error", err)
		return http.StatusServiceUnavailable
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: "get"},
	}}, metav1.CreateOptions{})
	if err != nil {
		s.cfg.Log.Warn("subject access review", "error", err)
		return http.StatusServiceUnavailable
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden
	}
	return http.StatusOK
}
