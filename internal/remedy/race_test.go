//go:build race

package remedy

// raceEnabled shrinks the property test: the race detector slows it tenfold.
const raceEnabled = true
