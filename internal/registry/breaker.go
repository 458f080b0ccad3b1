package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for a registry that does not answer. A registry answers a
// manifest request in well under a second; one that has not sent response
// headers after DefaultTimeout, or has sent nothing more of a body for as
// long, is not going to. Connecting is bounded separately (dialTimeout,
// tlsHandshakeTimeout), so a black hole costs one timeout per request, and
// the breaker stops the requests after DefaultBreakerThreshold of them.
const (
	DefaultTimeout          = 20 * time.Second
	DefaultBreakerThreshold = 3
	// DefaultBreakerCooldown is how long a host whose breaker opened is not
	// asked at all; then one request probes it again.
	DefaultBreakerCooldown = 30 * time.Second
	dialTimeout            = 10 * time.Second
	tlsHandshakeTimeout    = 10 * time.Second
)

// TimeoutError: a registry accepted the request and did not answer in
// time (no response headers, or a body that stopped arriving).
type TimeoutError struct {
	Host  string
	While string // "waiting for response headers" | "reading the response body"
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s did not answer: nothing received for %s while %s", e.Host, e.After, e.While)
}

// Is makes a TimeoutError a context.DeadlineExceeded to errors.Is.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout marks the error as a timeout (net.Error).
func (e *TimeoutError) Timeout() bool { return true }

// Temporary is part of net.Error.
func (e *TimeoutError) Temporary() bool { return true }

// UnreachableError: the request was not sent, because at least Failures
// requests to Host in a row failed to reach it (connection refused or reset,
// timeouts). It unwraps to the last of those errors, so it is classified
// (and reported) with the same reason. It is transient: never an answer
// about an image.
//
// Failures is the breaker's threshold, not the count of failures so far:
// how many requests were in flight when the host went away is a race (3 in
// one run, 16 in the next), and a report of the same input should read the
// same in every run.
type UnreachableError struct {
	Host     string
	Failures int
	Err      error
}

func (e *UnreachableError) Error() string {
	// The last failure was another request's, often another image's: its
	// URL would name that image in this one's message, so only the cause
	// is quoted (dial tcp ...: connection refused, a timeout).
	cause := e.Err
	var ue *url.Error
	if errors.As(cause, &ue) && ue.Err != nil {
		cause = ue.Err
	}
	return fmt.Sprintf("not sent: %d requests in a row to %s failed, the last with: %v", e.Failures, e.Host, cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// breaker stops requests to a host (host:port) after consecutive failures
// to reach it, for one run: every image of the run shares it. Once a
// request to a host has failed, new requests to it wait for the ones in
// flight to tell whether it is down (they are about to fail too: a black
// hole fails every request of a wave at once) or answers.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostState
}

type hostState struct {
	failures  int
	last      error
	openUntil time.Time
	probing   bool
	inflight  int
	changed   chan struct{} // closed (and replaced) when a request ends
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: time.Now, hosts: map[string]*hostState{}}
}

func (b *breaker) state(host string) *hostState {
	h := b.hosts[host]
	if h == nil {
		h = &hostState{changed: make(chan struct{})}
		b.hosts[host] = h
	}
	return h
}

// allow returns an *UnreachableError when host is not to be asked now;
// nil when the request may go, and then exactly one of answered, failed or
// release must follow. After the cooldown one request at a time goes
// through as a probe.
func (b *breaker) allow(ctx context.Context, host string) error {
	if b == nil || b.threshold <= 0 {
		return nil
	}
	for {
		b.mu.Lock()
		h := b.state(host)
		switch {
		case h.failures >= b.threshold && (b.now().Before(h.openUntil) || h.probing):
			err := &UnreachableError{Host: host, Failures: b.threshold, Err: h.last}
			b.mu.Unlock()
			return err
		case h.failures >= b.threshold:
			h.probing = true
		case h.failures > 0 && h.inflight > 0:
			ch := h.changed
			b.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		h.inflight++
		b.mu.Unlock()
		return nil
	}
}

// check is allow for a request that must not wait (a token request made
// while a request to the same host is in flight: waiting could be waiting
// for itself); it is not in flight for others, and ends with tokenFailed
// or tokenAnswered.
func (b *breaker) check(host string) error {
	if b == nil || b.threshold <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.state(host)
	if h.failures >= b.threshold && b.now().Before(h.openUntil) {
		return &UnreachableError{Host: host, Failures: b.threshold, Err: h.last}
	}
	return nil
}

func (b *breaker) tokenFailed(host string, err error) { b.endAs(host, false, b.fail(err)) }
func (b *breaker) tokenAnswered(host string)          { b.endAs(host, false, reset) }

// end finishes a request allow let through; f updates the host's state.
func (b *breaker) end(host string, f func(h *hostState)) { b.endAs(host, true, f) }

func (b *breaker) endAs(host string, tracked bool, f func(h *hostState)) {
	if b == nil || b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.state(host)
	if tracked {
		h.inflight--
	}
	f(h)
	close(h.changed)
	h.changed = make(chan struct{})
}

// failed records a request that did not reach host.
func (b *breaker) failed(host string, err error) { b.end(host, b.fail(err)) }

func (b *breaker) fail(err error) func(h *hostState) {
	return func(h *hostState) {
		h.failures++
		h.last = err
		h.probing = false
		if h.failures >= b.threshold {
			h.openUntil = b.now().Add(b.cooldown)
		}
	}
}

// answered records that host answered (any HTTP status).
func (b *breaker) answered(host string) { b.end(host, reset) }

func reset(h *hostState) { h.failures, h.last, h.probing = 0, nil, false }

// release ends a request that says nothing about host (cancelled, not
// sent, or failed elsewhere).
func (b *breaker) release(host string) {
	b.end(host, func(h *hostState) {
		if h.failures >= b.threshold {
			h.probing = false
		}
	})
}

// countSent counts, in n, the requests actually written under ctx
// (redirects included; a connection or TLS handshake that failed sent
// nothing). Traces already on ctx still see every event.
func countSent(ctx context.Context, n *atomic.Int64) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			n.Add(1)
		}
	}})
}

// CountSent counts, in n, the registry requests sent under the returned
// context: one image's share of a run, when its reads share a context.
func CountSent(ctx context.Context, n *atomic.Int64) context.Context { return countSent(ctx, n) }

// timedBody is a response body that fails with a *TimeoutError when
// nothing arrives for idle: a whole layer may take long, a stalled one not.
type timedBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (b *timedBody) Read(p []byte) (int, error) {
	// Only the wait for the network counts, not the caller's work between
	// reads (decompressing a layer on a busy machine).
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && !errors.Is(err, io.EOF) {
		if te := timeoutCause(b.ctx); te != nil {
			return n, te
		}
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// timeoutCause is the *TimeoutError ctx was cancelled with, if any.
func timeoutCause(ctx context.Context) *TimeoutError {
	var te *TimeoutError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return nil
}
