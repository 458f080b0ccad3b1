package render

import (
	"context"
	"fmt"
	"runtime/metrics"
	"time"
)

// Defaults of the limits of one render.
const (
	// DefaultTimeout bounds the time one chart or kustomization takes to
	// render: real charts take well under a second.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxOutput bounds the manifests one render may produce.
	DefaultMaxOutput = 64 << 20
	// memoryPerOutput: a render that grows the heap by more than this
	// many times the output limit is stopped before it ends. Helm's
	// engine builds each template's output in memory and copies it, and
	// the heap holds garbage until the next collection, so this is
	// generous.
	memoryPerOutput = 8
)

// Option changes how HelmChart or Kustomize renders.
type Option func(*options)

type options struct {
	timeout     time.Duration
	maxOutput   int
	allowRemote bool
	caps        Capabilities
	values      map[string]any // WithValues
	origins     bool           // WithOrigins
}

func newOptions(opts []Option) options {
	o := options{timeout: DefaultTimeout, maxOutput: DefaultMaxOutput}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTimeout bounds the time of a render; 0 or less means DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithMaxOutput bounds the bytes of manifests a render may produce; 0 or
// less means DefaultMaxOutput.
func WithMaxOutput(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxOutput = n
		}
	}
}

// AllowRemote(true) lets a kustomization load remote resources and bases:
// files over HTTP(S), git repositories with the git program. By default
// they are refused before anything is fetched.
func AllowRemote(allow bool) Option {
	return func(o *options) { o.allowRemote = allow }
}

// bounded runs render in a goroutine and returns its result, or an error
// as soon as ctx is done or o.timeout has passed. Neither Helm's template
// engine nor kustomize takes a context, so a render cannot be stopped: the
// abandoned goroutine runs on until it ends by itself or the process
// exits (archfit returns the error and exits, so that is soon). Its result
// goes to a buffered channel, so it never blocks once it is done.
//
// With watchHeap, the heap is also sampled while the render runs: the
// output limit can only be checked on the finished output, and a template
// that prints in a loop would take gigabytes before the time limit. The
// heap is the process's: the render is meant to run alone, as it does in
// archfit (before any image is inspected).
func bounded(ctx context.Context, o options, what string, watchHeap bool, render func() ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type result struct {
		out []byte
		err error
	}
	base := heapBytes()
	done := make(chan result, 1)
	go func() {
		out, err := render()
		done <- result{out, err}
	}()
	timer := time.NewTimer(o.timeout)
	defer timer.Stop()
	var tick <-chan time.Time
	if watchHeap {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case r := <-done:
			if r.err == nil && len(r.out) > o.maxOutput {
				return nil, fmt.Errorf("rendering %s: %w (%d bytes, the limit is %d)", what, ErrOutputTooLarge, len(r.out), o.maxOutput)
			}
			return r.out, r.err
		case <-ctx.Done():
			return nil, fmt.Errorf("rendering %s: %w", what, ctx.Err())
		case <-timer.C:
			return nil, fmt.Errorf("rendering %s: %w (%s)", what, ErrTimeout, o.timeout)
		case <-tick:
			if grown := heapBytes() - base; grown > memoryPerOutput*int64(o.maxOutput) {
				return nil, fmt.Errorf("rendering %s: %w (it took %d MiB of memory before it ended, the output limit is %d MiB)", what, ErrOutputTooLarge, grown>>20, o.maxOutput>>20)
			}
		}
	}
}

// heapBytes is the memory held by heap objects, live or not yet collected.
func heapBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}
