package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// kindlessList is a kubectl-style List of n Deployments without kind (each
// one is a DocumentError), in YAML or JSON.
func kindlessList(format string, n int) []byte {
	var b bytes.Buffer
	pad := strings.Repeat("x", 300)
	if format == "json" {
		b.WriteString("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n")
		for i := range n {
			if i > 0 {
				b.WriteString(",\n")
			}
			fmt.Fprintf(&b, "        {\n            \"apiVersion\": \"apps/v1\",\n            \"metadata\": {\"name\": \"app-%d\", \"namespace\": \"ns\"},\n            \"spec\": {\"template\": {\"spec\": {\"containers\": [{\"name\": \"a\", \"image\": \"r/a:%s\"}]}}}\n        }", i, pad)
		}
		b.WriteString("\n    ],\n    \"kind\": \"List\"\n}\n")
		return b.Bytes()
	}
	b.WriteString("apiVersion: v1\nitems:\n")
	for i := range n {
		fmt.Fprintf(&b, "- apiVersion: apps/v1\n  metadata:\n    name: app-%d\n    namespace: ns\n  spec:\n    template:\n      spec:\n        containers:\n        - name: a\n          image: r/a:%s\n", i, pad)
	}
	b.WriteString("kind: List\nmetadata:\n  resourceVersion: \"\"\n")
	return b.Bytes()
}

// measure decodes data from stdin and returns the bytes allocated and the
// peak live heap above what was live before.
func measure(t *testing.T, data []byte, wantErrs int) (alloc, peak uint64) {
	t.Helper()
	// A low GC target keeps the sampled heap close to what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var max atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > max.Load() {
				max.Store(m.HeapAlloc)
			}
		}
	}()
	_, errs, err := LoadFiles(context.Background(), []string{"-"}, bytes.NewReader(data))
	close(done)
	if err != nil || len(errs) != wantErrs {
		t.Fatalf("err %v, %d document errors, want %d", err, len(errs), wantErrs)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if p := max.Load(); p > before.HeapAlloc {
		peak = p - before.HeapAlloc
	}
	return after.TotalAlloc - before.TotalAlloc, peak
}

// A List whose items lack kind was decoded quadratically (each item's
// line was found by re-reading the List from its start) and held several
// copies of the whole document. Work must grow linearly with the input and
// the live heap stay a small multiple of it.
func TestDecodeIsLinear(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			small, large := kindlessList(format, 1000), kindlessList(format, 4000)
			a1, _ := measure(t, small, 1000)
			a4, peak := measure(t, large, 4000)
			t.Logf("%s: %d bytes: %d allocated; %d bytes: %d allocated, peak live %d", format, len(small), a1, len(large), a4, peak)
			if r := float64(a4) / float64(a1); r > 6 {
				t.Errorf("4x the input allocated %.1fx as much: not linear", r)
			}
			if r := float64(peak) / float64(len(large)); r > 8 {
				t.Errorf("peak live heap %.1f bytes per input byte, want at most 8", r)
			}
		})
	}
}

func TestInputLimits(t *testing.T) {
	small := limits{input: 4 << 10, document: 2 << 10, object: 1 << 10}
	pod := func(name, pad string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: default\n  annotations:\n    pad: " + pad + "\nspec:\n  containers:\n  - name: a\n    image: nginx:1.27\n"
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("input over the cap names the file", func(t *testing.T) {
		p := write("huge.yaml", pod("a", strings.Repeat("x", 5<<10)))
		_, _, err := LoadFiles(context.Background(), []string{p}, nil, withLimits(small))
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "4096 bytes") {
			t.Errorf("got %v, want ErrTooLarge naming %s and the limit", err, p)
		}
		_, _, err = LoadFiles(context.Background(), []string{"-"}, strings.NewReader("{"+strings.Repeat(" ", 5<<10)+"}"), withLimits(small))
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), StdinName) {
			t.Errorf("stdin: got %v, want ErrTooLarge naming %s", err, StdinName)
		}
	})
	t.Run("documents and objects over the cap are skipped, the rest read", func(t *testing.T) {
		p := write("mixed.yaml", pod("ok-1", "x")+"---\n"+pod("big-doc", strings.Repeat("y", 2<<10))+"---\n"+pod("big-obj", strings.Repeat("z", 1<<10))+"---\n"+pod("ok-2", "x"))
		s, errs, err := LoadFiles(context.Background(), []string{p}, nil, withLimits(small))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range errs {
			var de *DocumentError
			if !errors.As(e, &de) || !errors.Is(e, ErrTooLarge) {
				t.Errorf("%v: want a *DocumentError wrapping ErrTooLarge", e)
			}
			got = append(got, e.Error())
		}
		want := []string{
			p + ":13: too large: document larger than 2048 bytes, skipped",
			p + ":25: too large: object larger than 1024 bytes, skipped",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		var names []string
		for _, p := range s.Pods {
			names = append(names, p.Name)
		}
		if strings.Join(names, " ") != "ok-1 ok-2" {
			t.Errorf("pods %v, want ok-1 and ok-2", names)
		}
	})
	t.Run("a List item over the object cap is skipped", func(t *testing.T) {
		big := kindlessList("json", 3)
		_, errs, err := LoadFiles(context.Background(), []string{"-"}, bytes.NewReader(big), withLimits(limits{input: 1 << 20, document: 1 << 20, object: 200}))
		if err != nil || len(errs) != 3 || !errors.Is(errs[0], ErrTooLarge) || !strings.Contains(errs[0].Error(), ":4: ") {
			t.Errorf("err %v, errs %v", err, errs)
		}
	})
}

// cancelOnRead cancels its context when first read: the decoder must stop
// mid-input, not read the rest.
type cancelOnRead struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelOnRead) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

func TestDecodeStopsWhenCancelled(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		ctx, cancel := context.WithCancel(context.Background())
		in := &cancelOnRead{r: bytes.NewReader(kindlessList(format, 200)), cancel: cancel}
		if _, _, err := LoadFiles(ctx, []string{"-"}, in); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: got %v, want context.Canceled", format, err)
		}
	}
}

// PyYAML writes an anchor in one item and aliases to it in later ones:
// such a List is read whole, not item by item.
func TestListWithAliases(t *testing.T) {
	in := `apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: default}
  spec: &id001
    containers:
    - {name: c, image: nginx:1.27}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: default}
  spec: *id001
kind: List
`
	s, errs, err := LoadFiles(context.Background(), []string{"-"}, strings.NewReader(in))
	if err != nil || len(errs) > 0 || len(s.Pods) != 2 || s.Pods[1].Spec.Containers[0].Image != "nginx:1.27" {
		t.Errorf("err %v, errs %v, %d pods", err, errs, len(s.Pods))
	}
}
