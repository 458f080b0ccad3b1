// Package gctune paces Go's garbage collector for archfit's one-shot
// commands (audit, plan, patch, inspect, diagnose...).
//
// Such a command builds what it reads and keeps nearly all of it until it
// writes its report: the heap only grows, and with the default pacing
// (GOGC=100: collect whenever the heap doubles) a 5,000-pod audit collects
// eight times on a heap of 4 to 50 MB, re-marking everything it keeps each
// time; that was 10-15 % of its CPU. Batch lets a small heap grow to
// Budget before collecting; past that, a collection starts once the heap
// has grown by what the last one kept or by Headroom, whichever is less
// (a 100,000-pod audit of pods as the API server stores them keeps ~540
// MB at its peak; the default pacing let its heap reach twice that, and a
// headroom of 320 MiB put the process at 1.0-1.04 GB, 192 MiB at 0.93 GB
// for 5 % more CPU).
//
// A user's own GOGC or GOMEMLIMIT is left in charge. The long-running
// `archfit serve` keeps the default pacing.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Budget is the heap a collection is not started below (unless the live
// heap past half of it makes GOGC=100 pace later anyway).
const Budget = 192 << 20

// Headroom is the most the heap may grow past what the last collection
// kept before the next one starts, once that is past Budget/2 (GOGC=100
// lets it grow by all it kept).
const Headroom = 192 << 20

// maxPercent bounds GOGC while the live heap is tiny (at start): a
// collection then happens once the heap is 11 times what it keeps.
const maxPercent = 1000

// Batch starts pacing, unless GOGC or GOMEMLIMIT is set. It returns
// whether it did.
func Batch() bool {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetGCPercent(maxPercent)
	arm()
	return true
}

// sentinel is a heap object nothing refers to: its finalizer runs once
// per completed collection, and re-paces for the next.
type sentinel struct{ p *int }

func arm() {
	runtime.SetFinalizer(&sentinel{p: new(int)}, func(*sentinel) {
		debug.SetGCPercent(percentFor(liveHeap()))
		arm()
	})
}

// liveHeap is the heap the last collection found live (0 if unknown).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// percentFor is the GOGC for the next collection, given the live bytes
// the last one kept: one that starts it when the heap reaches Budget
// (at most maxPercent; maxPercent too when live is unknown), or once live
// is half of Budget or more, when the heap has grown by live or by
// Headroom, whichever is less (at least 25).
func percentFor(live uint64) int {
	switch {
	case live == 0:
		return maxPercent
	case live < Budget/2:
		return min(int(100*(Budget-live)/live), maxPercent)
	}
	return max(min(int(100*Headroom/live), 100), 25)
}
