// Command archfit finds and fixes workloads that break on mixed amd64/arm64
// Kubernetes clusters. Installed as kubectl-archfit it is `kubectl archfit`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/gctune"
)

// grace is how long archfit waits after SIGINT or SIGTERM for the command
// to return on its own (its context is cancelled) before exiting anyway.
const grace = 2 * time.Second

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	stop := profile(os.Getenv("ARCHFIT_CPUPROFILE"), os.Getenv("ARCHFIT_MEMPROFILE"))
	root := cli.NewCmdRoot(streams)
	// A one-shot command keeps nearly all it reads until it reports:
	// collecting less often while its heap is small saves much of the
	// collector's work (gctune). The server keeps Go's default pacing.
	if oneShot(root, os.Args[1:]) {
		gctune.Batch()
	}
	code := run(root, os.Stderr, grace)
	stop()
	os.Exit(code)
}

// oneShot says whether args run a command that reads, reports and exits:
// any but the long-running `archfit serve`.
func oneShot(root *cobra.Command, args []string) bool {
	c, _, err := root.Find(args)
	return err != nil || c.Name() != "serve"
}

// profile writes a CPU profile of the whole run to cpu and a heap profile
// at its end to mem, when they are set (ARCHFIT_CPUPROFILE,
// ARCHFIT_MEMPROFILE: for `make bench`, which profiles the process a user
// waits for). A profile that cannot be written is said on stderr; the run
// goes on.
func profile(cpu, mem string) (stop func()) {
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "archfit: cpu profile:", err)
			f = nil
		}
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			// The profile holds what the last collection saw, and a
			// one-shot command collects seldom (gctune): collect now.
			runtime.GC()
			m, err := os.Create(mem)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(m, 0)
				m.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "archfit: memory profile:", err)
			}
		}
	}
}

// run executes cmd and returns the exit code. SIGINT or SIGTERM cancel the
// command's context; if the command has not returned grace later (some
// library call ignores its context), or on a second signal, archfit exits
// at once with ExitFailure.
func run(cmd *cobra.Command, stderr io.Writer, grace time.Duration) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		// Keep catching the signals, so a second one does not kill
		// archfit with the runtime's exit status: it exits here instead.
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		select {
		case <-done:
			return
		case <-again:
		case <-time.After(grace):
		}
		fmt.Fprintln(stderr, "archfit: interrupted")
		os.Exit(cli.ExitFailure)
	}()
	err := cmd.ExecuteContext(ctx)
	close(done)
	stop()
	code := cli.ExitCode(err)
	if err != nil && (code == cli.ExitFailure || code == cli.ExitIncomplete) {
		fmt.Fprintln(stderr, "archfit:", err)
	}
	return code
}
