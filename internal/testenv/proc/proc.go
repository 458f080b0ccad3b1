// Package proc measures a whole process as a user waits for it: wall time,
// CPU (user and system) and peak resident memory, for the benchmarks that
// compare archfit with the tools a user would script instead.
//
// The peak memory is not the child's rusage as wait4 returns it to a Go
// program: os/exec starts the child with vfork (the parent's address space
// shared until exec), and at exec the kernel folds that address space's
// peak into the child's maxrss. A benchmark process that holds a 300 MB
// registry would so report 300 MB for every child. GNU time forks from a
// process of a few MB, so its %M is the child's own; it is used when
// /usr/bin/time is there (Debian package "time"), and Usage.RSSUpperBound
// says when it was not.
package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// TimeBinary is GNU time, when installed.
const TimeBinary = "/usr/bin/time"

// Usage is what one process cost.
type Usage struct {
	Wall, User, Sys time.Duration
	// MaxRSSKiB is the peak resident set of the process, in KiB.
	MaxRSSKiB int64
	// RSSUpperBound is true when GNU time was missing and MaxRSSKiB is the
	// wait4 figure, which includes the starting process's peak.
	RSSUpperBound bool
}

// CPU is user plus system time.
func (u Usage) CPU() time.Duration { return u.User + u.Sys }

// Run runs cmd (not started) and measures it. The error is cmd.Run's,
// an *exec.ExitError for a non-zero exit, with the usage still filled in.
func Run(cmd *exec.Cmd) (Usage, error) {
	dir, err := os.MkdirTemp("", "archfit-proc-")
	if err != nil {
		return Usage{}, err
	}
	defer os.RemoveAll(dir)
	report := filepath.Join(dir, "usage")
	timed := false
	if _, err := os.Stat(TimeBinary); err == nil {
		cmd.Args = append([]string{TimeBinary, "-f", "%U %S %M", "-o", report}, cmd.Args...)
		cmd.Path, timed = TimeBinary, true
	}
	start := time.Now()
	runErr := cmd.Run()
	u := Usage{Wall: time.Since(start)}
	if timed {
		if err := parseTime(report, &u); err != nil {
			return u, err
		}
		return u, runErr
	}
	if cmd.ProcessState == nil {
		return u, runErr
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.User, u.Sys = time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
		u.MaxRSSKiB, u.RSSUpperBound = ru.Maxrss, true
	}
	return u, runErr
}

// parseTime reads GNU time's "%U %S %M" line: the last line of its output
// file (a line before it says why the command ended, when it did not exit 0).
func parseTime(path string, u *Usage) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s's report: %w", TimeBinary, err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var user, sys float64
	if _, err := fmt.Sscanf(lines[len(lines)-1], "%g %g %d", &user, &sys, &u.MaxRSSKiB); err != nil {
		return fmt.Errorf("%s printed %q: %w", TimeBinary, b, err)
	}
	u.User, u.Sys = time.Duration(user*float64(time.Second)), time.Duration(sys*float64(time.Second))
	return nil
}
