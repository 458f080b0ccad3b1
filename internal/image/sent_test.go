package image

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// TestStatsRequestsCountsSent: each report's stats.requests is what it
// sent, so they add up to what the registry served: reads shared by two
// reports (the same image for two commands) are counted once, answers from
// the cache not at all, connections refused not at all.
func TestStatsRequestsCountsSent(t *testing.T) {
	reg := newCountingRegistry(t)
	img := reg.host() + "/app:1"
	push(t, img, testimage.Index(testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64"), testimage.For(testimage.App("linux/arm64", "arm64"), "linux/arm64")))
	reg.take()
	// And an image on a port nothing listens on: connections refused,
	// nothing sent.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String() + "/gone:1"
	ln.Close()
	dir := t.TempDir()
	reqs := []Request{{Ref: img}, {Ref: img, Override: &Override{Command: []string{"/app"}, Args: []string{"--once"}}}, {Ref: refused}}
	for _, run := range []string{"cold", "warm"} {
		r := newResolver(t, dir, WithTagTTL(time.Hour))
		reps := r.InspectAll(context.Background(), reqs)
		sum := 0
		for _, rep := range reps {
			if rep.Reference == refused {
				if rep.Error == nil || rep.Stats.Requests != 0 {
					t.Errorf("%s: refused image: error %v, %d request(s) counted as sent", run, rep.Error, rep.Stats.Requests)
				}
				continue
			}
			if rep.Error != nil {
				t.Fatalf("%s: %s", run, rep.Error.Detail)
			}
			sum += rep.Stats.Requests
		}
		served := len(reg.take())
		if sum != served || r.Requests() != int64(served) {
			t.Errorf("%s run: reports say %d request(s), the resolver %d, the registry served %d", run, sum, r.Requests(), served)
		}
		if run == "cold" && served == 0 || run == "warm" && served != 0 {
			t.Errorf("%s run: the registry served %d request(s)", run, served)
		}
	}
}

// TestBlackHoleImagesFailFast: 20 images on a registry that accepts
// connections and never answers (a bare listener: no real registry does
// this) fail within a few timeouts, all with reason timeout, having sent
// no request after the breaker opened, and nothing of them is cached.
func TestBlackHoleImagesFailFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	const timeout = 300 * time.Millisecond
	dir := t.TempDir()
	r := newResolver(t, dir, WithRegistryClient(regclient.New(regclient.WithTimeout(timeout))), WithConcurrency(4))
	var reqs []Request
	for i := range 20 {
		reqs = append(reqs, Request{Ref: fmt.Sprintf("%s/app%d:1", ln.Addr(), i)})
	}
	start := time.Now()
	reps := r.InspectAll(context.Background(), reqs)
	if took := time.Since(start); took > 4*timeout+time.Second {
		t.Errorf("20 images took %s with a %s timeout", took, timeout)
	}
	for _, rep := range reps {
		if rep.Error == nil || rep.Error.Reason != "timeout" {
			t.Fatalf("%s: %+v, want reason timeout", rep.Reference, rep.Error)
		}
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("cache entries written for images never read: %v", files)
	}
}
