// Command archfit-testenv runs the test cluster of package testenv in the
// foreground until SIGINT/SIGTERM: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager, the node twins of the default six-node mixed
// pool, and an OCI registry. hack/testenv.sh up starts it in the background.
//
// It writes STATE/kubeconfig and STATE/env (KUBECONFIG=..., ARCHFIT_TESTENV_REGISTRY=...)
// once the cluster is ready, and removes them when it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/archfit/archfit/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "archfit-testenv:", err)
		os.Exit(1)
	}
}

func run() error {
	state := flag.String("state-dir", "", "directory for kubeconfig and env files (required)")
	flag.Parse()
	if *state == "" {
		return fmt.Errorf("--state-dir is required")
	}
	if err := os.MkdirAll(*state, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	env, err := testenv.Start(sctx, testenv.WithLog(os.Stderr))
	cancel()
	if err != nil {
		return err
	}
	defer env.Stop()

	kubeconfig := filepath.Join(*state, "kubeconfig")
	envFile := filepath.Join(*state, "env")
	defer os.Remove(kubeconfig)
	defer os.Remove(envFile)
	b, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		return err
	}
	vars := fmt.Sprintf("KUBECONFIG=%s\nARCHFIT_TESTENV_REGISTRY=%s\nARCHFIT_TESTENV_DIR=%s\n", kubeconfig, env.Registry, env.Dir)
	if err := os.WriteFile(envFile, []byte(vars), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "archfit-testenv: ready\n%s", vars)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "archfit-testenv: stopping")
	return nil
}
