package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/report"
)

type inspectOptions struct {
	streams genericiooptions.IOStreams
	images  imageOptions
	refs    []string
	verify  bool
	output  string
	failOn  string
	suggest int
	nodes   []string

	allowUnverified bool

	failSeverity finding.Severity
	nodeSpecs    []platform.NodeSpec
}

// NewCmdInspect builds `archfit inspect REF...`.
func NewCmdInspect(streams genericiooptions.IOStreams) *cobra.Command {
	o := &inspectOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "inspect REF...",
		Short: "Show what each node would pull for an image, and whether its binaries really are that architecture",
		Long: `inspect reads each image from its registry (or --oci-layout): index or single
manifest, every entry's platform, attestations, what a linux/amd64 and a
linux/arm64 node would pull under containerd's local and transfer paths and
CRI-O, and with --verify the entrypoint binary of every runnable entry.`,
		Example: `  archfit inspect nginx:1.27 --verify
  archfit inspect --oci-layout examples/images --verify
  archfit inspect ghcr.io/org/app:v1 -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd)
		},
	}
	o.images.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.verify, "verify", false, "read each runnable entry's entrypoint binary (streams layers top-down, stops when found)")
	cmd.Flags().IntVar(&o.suggest, "suggest-tags", 0, "for an image missing amd64 or arm64, look at up to N recent tags of its repository for one that has both (third-party images)")
	cmd.Flags().StringArrayVar(&o.nodes, "node", nil, "predict for exactly this node, PLATFORM=RUNTIME://VERSION (e.g. linux/arm64=containerd://2.1.9, linux/amd64=cri-o://1.34.1); repeatable")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, json, yaml, markdown, sarif")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "error", "exit 3 when a finding is at or above this severity: error, warning, info, never")
	allowUnverifiedFlag(cmd.Flags(), &o.allowUnverified)
	return cmd
}

func (o *inspectOptions) complete(args []string) error {
	o.refs = args
	for _, n := range o.nodes {
		spec, err := platform.ParseNodeSpec(n)
		if err != nil {
			return err
		}
		o.nodeSpecs = append(o.nodeSpecs, spec)
	}
	var err error
	o.failSeverity, err = finding.ParseSeverity(o.failOn)
	return err
}

func (o *inspectOptions) validate() error {
	if len(o.refs) == 0 && !o.images.offline() {
		return fmt.Errorf("inspect needs at least one image reference (or --oci-layout DIR to inspect all of it)")
	}
	if _, err := report.For(o.output); err != nil {
		return err
	}
	return o.images.validate()
}

func (o *inspectOptions) run(cmd *cobra.Command) error {
	var plats []specs.Platform
	for _, n := range o.nodeSpecs {
		plats = append(plats, n.Platform)
	}
	res, err := o.images.resolver(o.streams.ErrOut, o.verify, plats...)
	if err != nil {
		return err
	}
	refs := o.refs
	if len(refs) == 0 {
		refs = res.LayoutReferences()
		for _, u := range res.LayoutUnnamed() {
			fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", u)
		}
		if len(refs) == 0 {
			return fmt.Errorf("the OCI layout(s) %s name no image (io.containerd.image.name, or org.opencontainers.image.ref.name with a repository)", strings.Join(o.images.ociLayouts, ", "))
		}
	}
	reqs := make([]image.Request, len(refs))
	for i, r := range refs {
		reqs[i] = image.Request{Ref: r, Verify: o.verify}
	}
	start := time.Now()
	reps := res.InspectAll(cmd.Context(), reqs)
	if err := cmd.Context().Err(); err != nil {
		return err
	}
	if len(o.nodeSpecs) > 0 {
		for _, rep := range reps {
			if rep.Error == nil {
				rep.Pulls = rep.PullsFor(o.nodeSpecs)
			}
		}
	}
	if o.suggest > 0 && !o.images.offline() {
		for _, rep := range reps {
			if rep.Error != nil || (slices.Contains(rep.Architectures, "amd64") && slices.Contains(rep.Architectures, "arm64")) {
				continue
			}
			alts, err := res.Alternatives(cmd.Context(), rep.Reference, []string{"amd64", "arm64"}, o.suggest)
			if err != nil {
				rep.Notes = append(rep.Notes, "could not look for multi-arch tags: "+err.Error())
				continue
			}
			rep.Alternatives = alts
			if len(alts) == 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("none of the %d most recent other tags has both amd64 and arm64: build it yourself, or mirror and pin a multi-arch upstream", o.suggest))
			}
		}
	}
	fmt.Fprintf(o.streams.ErrOut, "inspected %d image(s) in %s: %d registry request(s), %d cache hit(s)\n",
		image.Distinct(reps), time.Since(start).Round(time.Millisecond), res.Requests(), res.CacheHits())
	doc := &report.Document{Kind: "Inspection", Images: reps, Findings: image.Findings(reps)}
	doc.Text = func(w io.Writer, d *report.Document) error { return report.ImagesText(w, d.Images) }
	if err := render(o.streams.Out, o.output, o.failSeverity, doc); err != nil {
		return err
	}
	return incomplete(doc, !o.allowUnverified && o.failSeverity != finding.Never)
}
