package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/plan"
	"github.com/archfit/archfit/internal/report"
)

type planOptions struct {
	fleetOptions
	output    string
	soak      time.Duration
	preferArm bool
	eks       string

	allowUnverified bool
}

// NewCmdPlan builds `archfit plan`.
func NewCmdPlan(streams genericiooptions.IOStreams) *cobra.Command {
	o := &planOptions{fleetOptions: fleetOptions{streams: streams}}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print a taint-based rollout plan onto Arm nodes, in phases, with commands, gates and rollbacks",
		Long: `plan audits the fleet (as archfit audit does) and prints the rollout:
1. taint the Arm pools (kubectl taint, Karpenter NodePool taints, EKS node
   group taints; GKE does it already), tolerating multi-arch DaemonSets first;
2. fix the blockers, most-blocking image first;
3. add the toleration (and with --prefer-arm a preferred arm64 affinity) to
   the workloads proven multi-arch, as JSON patches;
4. watch (archfit diagnose clean, pods Running on arm64 for --soak);
5. widen. Each phase has its gate and its rollback.`,
		Example: `  archfit plan -A
  archfit plan -f examples/manifests --oci-layout examples/images --prefer-arm -o markdown`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.fleetOptions.complete(); err != nil {
				return err
			}
			if o.output != "html" {
				if _, err := report.For(o.output); err != nil {
					return err
				}
			}
			return o.runPlan(cmd.Context())
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.verify, "verify", true, "read each entry's entrypoint binary: only verified images count as proven multi-arch")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, json, yaml, markdown, html")
	cmd.Flags().DurationVar(&o.soak, "soak", 24*time.Hour, "how long pods must run on arm64 before the next phase")
	cmd.Flags().BoolVar(&o.preferArm, "prefer-arm", false, "also add a preferred arm64 node affinity to the workloads that get the toleration")
	cmd.Flags().StringVar(&o.eks, "eks-cluster", "", "EKS cluster name for the aws eks commands")
	allowUnverifiedFlag(cmd.Flags(), &o.allowUnverified)
	return cmd
}

func (o *planOptions) runPlan(ctx context.Context) error {
	fr, err := o.run(ctx)
	if err != nil {
		return err
	}
	p := plan.Build(fr.result, plan.Options{Soak: o.soak, PreferArm: o.preferArm, Cluster: o.eks})
	doc := &report.Document{Kind: "Plan", Findings: fr.result.Findings, Images: fr.reports,
		Extra: map[string]any{"plan": p, "readiness": fr.result.Readiness, "blockers": fr.result.Blockers}}
	doc.Remedies = fr.result.Remedies
	doc.Nodes = report.Nodes(fr.snap.Nodes)
	doc.Extra["pools"] = fr.result.Pools
	doc.Incomplete = report.Unread(fr.reports)
	doc.Text = func(w io.Writer, _ *report.Document) error { return report.PlanText(w, p) }
	withHelmTests(doc, fr.helmTests)
	switch o.output {
	case "html":
		report.SortFindings(doc.Findings)
		if err := report.HTML(o.streams.Out, fr.result, doc.Findings, report.PlanSections(p), doc.Incomplete); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	case "markdown", "md":
		if err := report.PlanMarkdown(o.streams.Out, p, doc.Incomplete); err != nil {
			return err
		}
	default:
		// The plan is advice: findings do not change its exit code.
		if err := render(o.streams.Out, o.output, finding.Never, doc); err != nil {
			return err
		}
	}
	if err := o.dockerfiles.err(); err != nil {
		// archfit failed on some input: that outranks the rest.
		return err
	}
	// But a plan that rests on unread images is not green.
	return incomplete(doc, !o.allowUnverified)
}

// planSections is the plan of an audit as HTML sections.
func planSections(r *audit.Result) []report.HTMLSection {
	return report.PlanSections(plan.Build(r, plan.Options{}))
}
