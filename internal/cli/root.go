// Package cli holds archfit's commands: one file per subcommand, each an
// options struct with Complete, Validate and Run. Results go to the injected
// Out stream, progress and logs to ErrOut.
package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes (DESIGN.md): a contract with scripts and CI.
const (
	ExitOK       = 0
	ExitFailure  = 1 // archfit itself failed
	ExitFindings = 3 // findings at or above --fail-on
)

// FindingsError reports that the run worked and found problems at or above
// the --fail-on threshold.
type FindingsError struct{ Count int }

func (e *FindingsError) Error() string {
	return fmt.Sprintf("%d finding(s) at or above the --fail-on threshold", e.Count)
}

// ExitCode maps an error from a command to the documented exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var fe *FindingsError
	if errors.As(err, &fe) {
		return ExitFindings
	}
	return ExitFailure
}

// NewCmdRoot builds the archfit command tree.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archfit",
		Short: "Find and fix workloads that break on mixed amd64/arm64 Kubernetes clusters",
		Long: `archfit tells, for every workload, what is wrong and why (a root-cause code
with the evidence it saw), what to do today (a node-affinity patch), what to
do for good (a multi-arch build), and how to move a fleet onto Arm safely.
Image architecture is always checked against the registry, never a local daemon.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Invoked as kubectl-archfit, show usage as "kubectl archfit".
	if strings.HasPrefix(filepath.Base(osArgs0()), "kubectl-") {
		cmd.Use = "kubectl archfit"
		cmd.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl archfit"}
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.AddCommand(NewCmdInspect(streams))
	cmd.AddCommand(NewCmdDiagnose(streams))
	cmd.AddCommand(NewCmdVersion(streams))
	cmd.AddCommand(NewCmdAudit(streams))
	cmd.AddCommand(NewCmdPlan(streams))
	cmd.AddCommand(NewCmdPatch(streams))
	cmd.AddCommand(NewCmdDockerfile(streams))
	return cmd
}

// newConfigFlags returns kubectl's standard flags (--kubeconfig, --context,
// -n, ...); -A is added by each cluster command.
//
// kubectl's --cache-dir (discovery cache) is dropped: archfit's own
// --cache-dir is the image cache.
func newConfigFlags() *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	f.CacheDir = nil
	return f
}
