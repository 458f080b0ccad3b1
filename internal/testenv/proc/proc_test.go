package proc

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

const childEnv = "ARCHFIT_PROC_TEST_CHILD"

// The child allocates and touches 32 MiB, then exits.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
	case "fail":
		os.Exit(3)
	default:
		b := make([]byte, 32<<20)
		for i := range b {
			b[i] = byte(i)
		}
		if b[len(b)-1] == 0 && b[1] == 0 {
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The child's peak is its own: between the 32 MiB it touches and the
// 160 MiB this process holds when it starts the child, which wait4's
// figure would report.
func TestRunMeasuresTheChildAlone(t *testing.T) {
	if _, err := os.Stat(TimeBinary); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (Debian package time; .ci/run installs it)", TimeBinary)
		}
		t.Skipf("%s is missing", TimeBinary)
	}
	held := make([]byte, 160<<20)
	for i := range held {
		held[i] = 1
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	u, err := Run(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if u.RSSUpperBound || u.MaxRSSKiB < 32<<10 || u.MaxRSSKiB >= 160<<10 {
		t.Errorf("child peak %d KiB (upper bound %t), want its own ~32 MiB, not this process's 160 MiB", u.MaxRSSKiB, u.RSSUpperBound)
	}
	if u.CPU() <= 0 || u.Wall <= 0 {
		t.Errorf("no time measured: %+v", u)
	}
	t.Logf("child peak %d KiB", u.MaxRSSKiB)
	held[len(held)-1] = 2 // keep it alive until here
	// A child that exits non-zero is measured, and its status returned.
	cmd = exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=fail")
	u, err = Run(cmd)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || u.MaxRSSKiB <= 0 {
		t.Errorf("failing child: %v, %+v; want exit status 3, measured", err, u)
	}
}
