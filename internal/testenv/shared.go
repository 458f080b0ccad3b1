package testenv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// Shared is one Env for all tests of a package, started by Main:
//
//	var cluster testenv.Shared
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &cluster)) }
//
//	func TestX(t *testing.T) { env := cluster.Env(t); ... }
type Shared struct {
	env  *Env
	skip string
}

// Main starts the environment, runs the tests and stops it. When the
// binaries are not built the tests that call Shared.Env skip, unless the CI
// environment variable is set: then Main fails. Set ARCHFIT_TESTENV_VERBOSE
// to see the twin's log on stderr.
func Main(m *testing.M, s *Shared, opts ...Option) int {
	if os.Getenv("ARCHFIT_TESTENV_VERBOSE") != "" {
		opts = append([]Option{WithLog(os.Stderr)}, opts...)
	}
	flag.Parse() // testing.Short needs the flags; m.Run parses again harmlessly
	if testing.Short() {
		s.skip = "testenv: skipped in -short mode"
		return m.Run()
	}
	if err := CheckBinaries(); err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
			return 1
		}
		s.skip = "testenv: " + err.Error()
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	env, err := Start(ctx, opts...)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: starting the cluster: %v\n", err)
		return 1
	}
	s.env = env
	defer env.Stop()
	return m.Run()
}

// Env returns the running environment, or skips the test with the reason
// Main could not start it.
func (s *Shared) Env(t testing.TB) *Env {
	t.Helper()
	if s.env == nil {
		if s.skip == "" {
			t.Fatal(errors.New("testenv: Shared.Env called without testenv.Main in TestMain"))
		}
		t.Skip(s.skip)
	}
	return s.env
}
