package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/cli"
)

// TestMain runs the child side of TestInterrupt: a command that ignores
// its context and never returns.
func TestMain(m *testing.M) {
	if os.Getenv("ARCHFIT_TEST_HANG") != "" {
		cmd := &cobra.Command{Use: "hang", RunE: func(*cobra.Command, []string) error {
			os.Stdout.WriteString("ready\n")
			select {}
		}}
		os.Exit(run(cmd, os.Stderr, 200*time.Millisecond))
	}
	os.Exit(m.Run())
}

func TestInterrupt(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), "ARCHFIT_TEST_HANG=1")
			var stderr bytes.Buffer
			child.Stderr = &stderr
			stdout, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			// Signal only once run has installed its handler.
			if _, err := stdout.Read(make([]byte, 6)); err != nil {
				t.Fatal(err)
			}
			child.Process.Signal(sig)
			err = child.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitFailure {
				t.Errorf("child ended with %v, want exit code %d", err, cli.ExitFailure)
			}
			if !strings.Contains(stderr.String(), "archfit: interrupted") {
				t.Errorf("stderr: %q", stderr.String())
			}
		})
	}
}

// TestOneShot: every command but serve gets the batch GC pacing, whatever
// flags come before it; an unknown command is one-shot too (it fails).
func TestOneShot(t *testing.T) {
	root := cli.NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"audit", "-f", "x.yaml"}, true},
		{[]string{"serve"}, false},
		{[]string{"serve", "--mode", "enforce"}, false},
		{[]string{"--kubeconfig", "k", "serve"}, false},
		{[]string{"plan", "-A"}, true},
		{[]string{"nonsense"}, true},
		{nil, true},
	} {
		if got := oneShot(root, c.args); got != c.want {
			t.Errorf("oneShot(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
