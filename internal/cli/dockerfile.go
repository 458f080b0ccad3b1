package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/dockerfile"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/report"
)

type dockerfileOptions struct {
	streams   genericiooptions.IOStreams
	paths     []string
	output    string
	failOn    string
	buildArgs []string

	// --check-base: inspect the FROM images.
	checkBase bool
	images    imageOptions
	platforms []string
	verify    bool
	suggest   int
	// allowUnverified: exit 0 rather than 4 when a base could not be read.
	allowUnverified bool

	failSeverity finding.Severity
	args         map[string]string
	targets      []specs.Platform
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
  archfit dockerfile Dockerfile -o sarif > archfit.sarif
  archfit dockerfile Dockerfile --check-base --platform linux/amd64,linux/arm64`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, json, yaml, markdown, sarif")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "error", "exit 3 when a finding is at or above this severity: error, warning, info, never")
	cmd.Flags().StringArrayVar(&o.buildArgs, "build-arg", nil, "KEY=VALUE for a global ARG, as docker build --build-arg gives it; repeatable")
	cmd.Flags().BoolVar(&o.checkBase, "check-base", false, "read every FROM image from its registry (or --oci-layout) and report a base without the platforms its stage is built for")
	cmd.Flags().StringSliceVar(&o.platforms, "platform", []string{"linux/amd64", "linux/arm64"}, "with --check-base: the platforms the build targets (docker buildx --platform)")
	cmd.Flags().BoolVar(&o.verify, "verify", false, "with --check-base: also read each base entry's entrypoint binary, so a mislabeled entry does not count")
	cmd.Flags().IntVar(&o.suggest, "suggest-tags", 0, "with --check-base: for a base missing a platform, look at up to N recent tags of its repository for one that has them all")
	allowUnverifiedFlag(cmd.Flags(), &o.allowUnverified)
	o.images.addFlags(cmd.Flags())
	return cmd
}

func (o *dockerfileOptions) complete(args []string) error {
	o.paths = args
	o.args = map[string]string{}
	for _, kv := range o.buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--build-arg %q: want KEY=VALUE", kv)
		}
		o.args[k] = v
	}
	for _, s := range o.platforms {
		p, err := platform.Parse(s)
		if err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
		o.targets = append(o.targets, p)
	}
	var err error
	o.failSeverity, err = finding.ParseSeverity(o.failOn)
	return err
}

func (o *dockerfileOptions) validate() error {
	if len(o.paths) == 0 {
		return errors.New("dockerfile needs at least one PATH (a Dockerfile or a directory holding one)")
	}
	if len(o.targets) == 0 {
		return errors.New("--platform needs at least one platform")
	}
	if _, err := report.For(o.output); err != nil {
		return err
	}
	return o.images.validate()
}

// run analyzes every file; a broken one makes the run fail (main prints
// the error on stderr), after the others are rendered.
func (o *dockerfileOptions) run(ctx context.Context) error {
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
			a, err := dockerfile.AnalyzeFile(path, dockerfile.WithBuildArgs(o.args))
			if err != nil {
				failed = append(failed, err)
				continue
			}
			files = append(files, path)
			bases = append(bases, a.BaseImages...)
			findings = append(findings, a.Findings...)
		}
	}
	extra := map[string]any{"files": files, "baseImages": bases}
	var baseReports []*image.Report
	if o.checkBase {
		checks, fs, reps, err := o.checkBases(ctx, bases)
		if err != nil {
			return err
		}
		baseReports = reps
		extra["baseChecks"] = checks
		findings = append(findings, fs...)
		slices.SortStableFunc(findings, func(x, y finding.Finding) int {
			return cmp.Or(cmp.Compare(x.File, y.File), cmp.Compare(x.Line, y.Line))
		})
	}
	doc := &report.Document{Kind: "DockerfileAnalysis", Findings: findings, Extra: extra}
	// The unread base images make the answer incomplete (exit 4), as in
	// every command that reads images; the header says which and why.
	doc.Incomplete = report.Unread(baseReports)
	doc.Text = func(w io.Writer, d *report.Document) error {
		if d.Incomplete != nil {
			report.IncompleteText(w, d.Incomplete)
		}
		return report.SourceFindingsText(w, d.Findings)
	}
	err := render(o.streams.Out, o.output, o.failSeverity, doc)
	if len(failed) > 0 {
		// archfit failed on some input: that outranks any finding.
		return fmt.Errorf("%d Dockerfile path(s) could not be analyzed:\n%w", len(failed), errors.Join(failed...))
	}
	if err != nil {
		return err
	}
	return incomplete(doc, !o.allowUnverified && o.failSeverity != finding.Never)
}

// maxBaseImages bounds the distinct FROM images --check-base reads in one run.
const maxBaseImages = 256

// checkBases inspects each distinct FROM image that a stage needs for some
// platform (with the engine of inspect) and judges it.
func (o *dockerfileOptions) checkBases(ctx context.Context, bases []dockerfile.BaseImage) ([]dockerfile.BaseCheck, []finding.Finding, []*image.Report, error) {
	// The Dockerfiles are input from whoever opened the pull request: the
	// distinct base images read are bounded, the rest are reported unread.
	var refs, all []string
	seen := map[string]bool{}
	reports := map[string]*image.Report{}
	for _, b := range bases {
		if b.Unresolved || seen[b.Ref] {
			continue
		}
		seen[b.Ref] = true
		all = append(all, b.Ref)
		if len(refs) == maxBaseImages {
			reports[b.Ref] = &image.Report{Reference: b.Ref, Error: &image.Failure{Reason: "too-many",
				Detail: fmt.Sprintf("not read: the Dockerfiles name more than %d distinct base images", maxBaseImages)}}
			continue
		}
		refs = append(refs, b.Ref)
	}
	if len(refs) > 0 {
		res, err := o.images.resolver(o.streams.ErrOut, o.verify, o.targets...)
		if err != nil {
			return nil, nil, nil, err
		}
		reqs := make([]image.Request, len(refs))
		for i, r := range refs {
			reqs[i] = image.Request{Ref: r, Verify: o.verify}
		}
		start := time.Now()
		reps := res.InspectAll(ctx, reqs)
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		var want []string
		for _, p := range o.targets {
			want = append(want, platform.Arch(p))
		}
		for i, rep := range reps {
			reports[refs[i]] = rep
			if o.suggest > 0 && rep.Error == nil && !hasAll(rep.Architectures, want) {
				alts, err := res.Alternatives(ctx, rep.Reference, want, o.suggest)
				if err != nil {
					rep.Notes = append(rep.Notes, "could not look for other tags: "+err.Error())
				}
				rep.Alternatives = alts
			}
		}
		fmt.Fprintf(o.streams.ErrOut, "inspected %d base image(s) in %s: %d registry request(s), %d cache hit(s)\n",
			len(reps), time.Since(start).Round(time.Millisecond), res.Requests(), res.CacheHits())
	}
	checks, fs := dockerfile.CheckBases(bases, reports, o.targets)
	reps := make([]*image.Report, 0, len(all))
	for _, r := range all {
		reps = append(reps, reports[r])
	}
	return checks, fs, reps, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
