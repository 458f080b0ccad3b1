// Command archfit finds and fixes workloads that break on mixed amd64/arm64
// Kubernetes clusters. Installed as kubectl-archfit it is `kubectl archfit`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := cli.NewCmdRoot(streams).ExecuteContext(ctx)
	stop()
	code := cli.ExitCode(err)
	if err != nil && code == cli.ExitFailure {
		fmt.Fprintln(os.Stderr, "archfit:", err)
	}
	os.Exit(code)
}
