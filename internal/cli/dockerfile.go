package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/dockerfile"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/report"
)

type dockerfileOptions struct {
	streams genericiooptions.IOStreams
	paths   []string
	output  string
	failOn  string

	failSeverity finding.Severity
}

// NewCmdDockerfile builds `archfit dockerfile PATH...`.
func NewCmdDockerfile(streams genericiooptions.IOStreams) *cobra.Command {
	o := &dockerfileOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "dockerfile PATH...",
		Short: "Find what keeps a Dockerfile from building a working multi-arch image, with the rewritten lines",
		Long: `dockerfile reads each Dockerfile (a directory means its Dockerfile,
Dockerfile.*, *.Dockerfile and Containerfile) with BuildKit's parser and
reports, at the line of the offending text: a literal FROM --platform, a
download or package for one architecture, a literal GOARCH, a compile step
that BuildKit would run under QEMU, a $BUILDPLATFORM stage that never reads
TARGETARCH, a platform ARG used without being declared. Each finding says
why it breaks a multi-arch build and gives the fix as rewritten lines.
A file that cannot be read or parsed is reported on stderr (exit 1); the
others are still analyzed.`,
		Example: `  archfit dockerfile examples/dockerfile/Dockerfile
  archfit dockerfile . services/*/Dockerfile --fail-on warning
  archfit dockerfile Dockerfile -o sarif > archfit.sarif`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run()
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, json, yaml, markdown, sarif")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "error", "exit 3 when a finding is at or above this severity: error, warning, info, never")
	return cmd
}

func (o *dockerfileOptions) complete(args []string) error {
	o.paths = args
	var err error
	o.failSeverity, err = finding.ParseSeverity(o.failOn)
	return err
}

func (o *dockerfileOptions) validate() error {
	if len(o.paths) == 0 {
		return errors.New("dockerfile needs at least one PATH (a Dockerfile or a directory holding one)")
	}
	_, err := report.For(o.output)
	return err
}

// run analyzes every file; a broken one makes the run fail (main prints
// the error on stderr), after the others are rendered.
func (o *dockerfileOptions) run() error {
	var failed []error
	files := []string{}
	bases := []dockerfile.BaseImage{}
	var findings []finding.Finding
	for _, p := range o.paths {
		paths, err := dockerfile.Files(p)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		for _, path := range paths {
			a, err := dockerfile.AnalyzeFile(path)
			if err != nil {
				failed = append(failed, err)
				continue
			}
			files = append(files, path)
			bases = append(bases, a.BaseImages...)
			findings = append(findings, a.Findings...)
		}
	}
	doc := &report.Document{Kind: "DockerfileAnalysis", Findings: findings,
		Extra: map[string]any{"files": files, "baseImages": bases}}
	doc.Text = func(w io.Writer, d *report.Document) error { return report.SourceFindingsText(w, d.Findings) }
	err := render(o.streams.Out, o.output, o.failSeverity, doc)
	if len(failed) > 0 {
		// archfit failed on some input: that outranks any finding.
		return fmt.Errorf("%d Dockerfile path(s) could not be analyzed:\n%w", len(failed), errors.Join(failed...))
	}
	return err
}
