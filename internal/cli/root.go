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
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/report"
)

// Exit codes (DESIGN.md): a contract with scripts and CI.
const (
	ExitOK       = 0
	ExitFailure  = 1 // archfit itself failed
	ExitFindings = 3 // findings at or above --fail-on
	// ExitIncomplete: nothing at or above --fail-on was found, but some
	// image the answer needs could not be read, so the answer is not known
	// to be green (--allow-unverified or --fail-on never accept it).
	ExitIncomplete = 4
)

// IncompleteError reports that the run worked and found nothing at or
// above --fail-on, but could not read Unread of the Images it needed.
type IncompleteError struct {
	Unread, Images int
	// Detail, when set, says what could not be done without them.
	Detail string
}

func (e *IncompleteError) Error() string {
	msg := fmt.Sprintf("%d of %d image(s) could not be read: the answer is incomplete", e.Unread, e.Images)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg + " (exit 4; --allow-unverified accepts an incomplete answer)"
}

// allowUnverifiedFlag registers --allow-unverified on a command.
func allowUnverifiedFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "allow-unverified", false, "exit 0 rather than 4 when some images could not be read (the answers that need them stay unknown)")
}

// incomplete is the exit verdict of a rendered document whose findings
// did not fail the run: an IncompleteError when some image could not be
// read, unless enforce is false (--allow-unverified, --fail-on never). An
// unread image whose every image-uninspectable finding is waived was
// accepted deliberately and does not count.
func incomplete(doc *report.Document, enforce bool) error {
	if doc.Incomplete == nil {
		doc.Incomplete = report.Unread(doc.Images)
	}
	if !enforce || doc.Incomplete == nil {
		return nil
	}
	waived, open := map[string]bool{}, map[string]bool{}
	for _, f := range doc.Findings {
		if f.Code != finding.ImageUninspectable {
			continue
		}
		if f.Waived != "" {
			waived[f.Image] = true
		} else {
			open[f.Image] = true
		}
	}
	n := 0
	for _, g := range doc.Incomplete.ByReason {
		for _, ref := range g.Images {
			if !waived[ref] || open[ref] {
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return &IncompleteError{Unread: n, Images: doc.Incomplete.Images}
}

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
	var ie *IncompleteError
	if errors.As(err, &ie) {
		return ExitIncomplete
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
	cmd.AddCommand(NewCmdServe(streams))
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
