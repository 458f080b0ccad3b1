package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/archfit/archfit/internal/testimage"
)

// blackHole is a TCP listener that accepts connections and never answers:
// a registry whose load balancer is up and whose backends are not. A real
// registry cannot be made to do this, hence the bare listener.
func blackHole(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int64{}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String(), accepted
}

// TestBlackHoleRegistryFailsFast: 20 images on a registry that accepts
// connections and never answers cost one timeout per request in flight,
// then the breaker answers the rest at once, with the same (timeout)
// reason; none is retried after a timeout.
func TestBlackHoleRegistryFailsFast(t *testing.T) {
	addr, accepted := blackHole(t)
	const timeout = 300 * time.Millisecond
	var waits []time.Duration
	c := New(WithTimeout(timeout), recordSleep(&waits))
	start := time.Now()
	errs := make([]error, 20)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // the resolver's --concurrency, smaller
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, _, errs[i] = c.Manifest(context.Background(), mustRef(t, fmt.Sprintf("%s/app%d:1", addr, i)))
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if took > 2*timeout+time.Second {
		t.Errorf("20 images on a black hole took %s with a %s timeout", took, timeout)
	}
	unreachable := 0
	// Four requests were in flight when the host stopped answering: the
	// breaker's message names its threshold, not that racy count, so every
	// image stopped by it (and every run of the same input) reads the same.
	want := fmt.Sprintf("not sent: %d requests in a row to %s failed", DefaultBreakerThreshold, addr)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("image %d: no error from a black hole", i)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("image %d: %v is not a timeout", i, err)
		}
		var ue *UnreachableError
		if errors.As(err, &ue) {
			unreachable++
			var te *TimeoutError
			if !errors.As(err, &te) || ue.Host != addr {
				t.Errorf("image %d: the breaker's error %v does not carry the host's timeout", i, err)
			}
			if !strings.HasPrefix(ue.Error(), want) {
				t.Errorf("image %d: %q; want it to start %q", i, ue.Error(), want)
			}
		}
	}
	if unreachable < 10 {
		t.Errorf("%d of 20 requests stopped by the breaker; want most", unreachable)
	}
	// One wave: requests that started after the first timeout waited for
	// those in flight, which all failed.
	if n := accepted.Load(); n > 4 {
		t.Errorf("%d connections to a host that never answered; want one wave of 4", n)
	}
	if len(waits) != 0 {
		t.Errorf("timeouts were retried after waits %v", waits)
	}
}

// TestRefusedRegistryFailsFast: a host that refuses connections is retried
// twice for the first image, and then not asked again.
func TestRefusedRegistryFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connections are refused
	var dials atomic.Int64
	tr := defaultTransport().(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, n, a string) (net.Conn, error) { dials.Add(1); return dial(ctx, n, a) }
	var waits []time.Duration
	c := New(WithTransport(tr), recordSleep(&waits))
	var last error
	for i := range 10 {
		_, _, last = c.Manifest(context.Background(), mustRef(t, fmt.Sprintf("%s/app%d:1", addr, i)))
		if last == nil {
			t.Fatal("no error from a refused port")
		}
	}
	var ue *UnreachableError
	var oe *net.OpError
	if !errors.As(last, &ue) || !errors.As(last, &oe) || !strings.Contains(last.Error(), "refused") {
		t.Errorf("last error %v: want the breaker's, carrying the refusal", last)
	}
	// HTTPS, then plain HTTP (loopback), per attempt; three attempts.
	if n := dials.Load(); n > 6 {
		t.Errorf("%d dials to a port that refuses; want the first image's attempts only", n)
	}
	if c.Requests() != 0 {
		t.Errorf("%d requests counted as sent to a port that refused them all", c.Requests())
	}
}

// TestBreakerProbesAfterCooldown: an open breaker lets one request through
// after the cooldown, and an answer closes it.
func TestBreakerProbesAfterCooldown(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(3, 30*time.Second)
	b.now = func() time.Time { return now }
	down := errors.New("connection refused")
	ctx := context.Background()
	for range 3 {
		if err := b.allow(ctx, "r:1"); err != nil {
			t.Fatalf("closed breaker refused: %v", err)
		}
		b.failed("r:1", down)
	}
	if err := b.allow(ctx, "r:1"); !errors.Is(err, down) {
		t.Fatalf("open breaker: %v", err)
	}
	if err := b.allow(ctx, "other:1"); err != nil {
		t.Fatalf("another host is stopped too: %v", err)
	}
	now = now.Add(31 * time.Second)
	if err := b.allow(ctx, "r:1"); err != nil {
		t.Fatalf("no probe after the cooldown: %v", err)
	}
	if err := b.allow(ctx, "r:1"); err == nil {
		t.Fatal("a second request went through while the probe is out")
	}
	b.answered("r:1")
	if err := b.allow(ctx, "r:1"); err != nil {
		t.Fatalf("an answer did not close the breaker: %v", err)
	}
}

// TestStalledBodyTimesOutSlowBodyDoesNot: a body that stops arriving fails
// after the idle timeout; a body that arrives slowly, for longer than the
// timeout in all, is read whole. Stalling mid-body is not something a real
// registry can be told to do: the handler wraps the real one.
func TestStalledBodyTimesOutSlowBodyDoesNot(t *testing.T) {
	const idle = 500 * time.Millisecond
	mode := atomic.Value{}
	done := make(chan struct{})
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/blobs/") || r.Method != http.MethodGet {
				h.ServeHTTP(w, r)
				return
			}
			rec := &bufferWriter{header: http.Header{}}
			h.ServeHTTP(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			body := rec.buf
			// Pauses between pieces, none after the last: the client has the
			// whole body (Content-Length) and reuses the connection at once.
			for i := 0; i < len(body); i += len(body)/8 + 1 {
				if i > 0 && mode.Load() == "stall" && i > len(body)/8+1 {
					select {
					case <-r.Context().Done():
					case <-done:
					}
					return
				}
				if i > 0 {
					time.Sleep(idle / 2)
				}
				w.Write(body[i:min(i+len(body)/8+1, len(body))])
				w.(http.Flusher).Flush()
			}
		})
	})
	// Cleanups run last first: the handler is released before the server
	// is closed.
	t.Cleanup(func() { close(done) })
	r := ref(t, s, "app:1")
	img := testimage.App("linux/amd64", "amd64")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigName()
	c := New(WithTimeout(idle), WithRetry(0, 0, 0))

	mode.Store("slow")
	start := time.Now()
	if _, err := c.Blob(context.Background(), r.Context(), cfg.String()); err != nil {
		t.Fatalf("slow body: %v", err)
	}
	if took := time.Since(start); took < idle {
		t.Fatalf("the slow body took %s, not longer than the timeout: the test proves nothing", took)
	}

	mode.Store("stall")
	_, err := c.Blob(context.Background(), r.Context(), cfg.String())
	var te *TimeoutError
	if !errors.As(err, &te) || te.While != "reading the response body" {
		t.Fatalf("stalled body: %v", err)
	}
}

type bufferWriter struct {
	header http.Header
	status int
	buf    []byte
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}
func (b *bufferWriter) WriteHeader(s int) { b.status = s }

var _ io.Writer = (*bufferWriter)(nil)

func mustRef(t *testing.T, s string) name.Reference {
	r, err := name.ParseReference(s)
	if err != nil {
		t.Error(err)
	}
	return r
}

// TestTokenFromTheSameHostAfterAFailure: once a request to a registry has
// failed, a request that needs a token from that same host (its own token
// realm) does not wait for requests in flight to it, itself among them.
// The stall of one repository is added in front of the real registry.
func TestTokenFromTheSameHostAfterAFailure(t *testing.T) {
	var realm string
	var locked atomic.Bool
	s := realRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !locked.Load() {
				h.ServeHTTP(w, r)
				return
			}
			if r.URL.Path == "/token" {
				fmt.Fprintf(w, `{"token":"tok-%s","expires_in":300}`, r.URL.Query().Get("scope"))
				return
			}
			repo := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")[0]
			if r.Header.Get("Authorization") != "Bearer tok-repository:"+repo+":pull" {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test"`, realm))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if repo == "stalls" {
				<-r.Context().Done()
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	realm = s.URL + "/token"
	for _, repo := range []string{"first", "stalls", "third"} {
		if err := remote.Write(ref(t, s, repo+":1"), testimage.App("linux/amd64", "amd64")); err != nil {
			t.Fatal(err)
		}
	}
	locked.Store(true)
	c := New(WithTimeout(300*time.Millisecond), WithInsecureRegistries(strings.TrimPrefix(s.URL, "http://")))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Manifest(ctx, ref(t, s, "first:1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Manifest(ctx, ref(t, s, "stalls:1")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled repository: %v", err)
	}
	start := time.Now()
	if _, _, err := c.Manifest(ctx, ref(t, s, "third:1")); err != nil {
		t.Fatalf("after one failure, a request needing a new token: %v (after %s)", err, time.Since(start))
	}
}

// TestUnreachableErrorQuotesOnlyTheCause: the failure a stopped request
// reports was another request's (often another image's): its message
// gives the cause, not that request's URL, and the error still unwraps to
// the whole failure for classification.
func TestUnreachableErrorQuotesOnlyTheCause(t *testing.T) {
	cause := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	last := &url.Error{Op: "Get", URL: "https://reg.example:5000/v2/other/image/manifests/1", Err: cause}
	err := &UnreachableError{Host: "reg.example:5000", Failures: 3, Err: last}
	msg := err.Error()
	if strings.Contains(msg, "other/image") || !strings.Contains(msg, "connection refused") {
		t.Errorf("message %q: want the cause without the other request's URL", msg)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%v does not unwrap to the failure", err)
	}
}
