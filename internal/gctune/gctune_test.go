package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, maxPercent},
		{1 << 20, maxPercent}, // goal would be 192 MiB: capped at 11x
		{Budget / 8, 700},     // 24 MiB live: goal 192 MiB
		{Budget / 4, 300},     // 48 MiB: goal 192 MiB
		{Budget / 3, 200},
		{Budget/2 - 1, 100}, // just under half: goal = Budget
		{Budget / 2, 100},   // half and more: the default...
		{Headroom, 100},     // ...up to Headroom live
		{2 * Headroom, 50},  // then the heap grows by Headroom
		{4 * Headroom, 25},  // and by at least a quarter
		{40 * Headroom, 25},
	} {
		if got := percentFor(c.live); got != c.want {
			t.Errorf("percentFor(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

// TestBatchRepacesAfterEachCollection: after a collection, GOGC is what
// percentFor gives for the heap that collection kept; a user's GOGC
// turns pacing off.
func TestBatchRepacesAfterEachCollection(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if !Batch() {
		t.Fatal("Batch did not start with GOGC and GOMEMLIMIT unset")
	}
	keep := make([][]byte, 0, 64)
	for i := 0; i < 64; i++ {
		keep = append(keep, make([]byte, 1<<20)) // 64 MiB live: percentFor gives 200
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer runs after the collection
		got := debug.SetGCPercent(-1)
		debug.SetGCPercent(got)
		want := percentFor(liveHeap())
		if got == want && got < maxPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d after collections, want %d (live %d bytes)", got, want, liveHeap())
		}
	}
	runtime.KeepAlive(keep)
	t.Setenv("GOGC", "100")
	if Batch() {
		t.Error("Batch paced though GOGC was set")
	}
}
