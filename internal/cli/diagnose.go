package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/diagnose"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/report"
)

type diagnoseOptions struct {
	streams       genericiooptions.IOStreams
	configFlags   *genericclioptions.ConfigFlags
	images        imageOptions
	files         []string
	recursive     bool
	allNamespaces bool
	output        string
	failOn        string

	allowUnverified bool
	dockerfiles     dockerfileAdvice

	target       *cluster.Target
	failSeverity finding.Severity
}

// NewCmdDiagnose builds `archfit diagnose [TYPE/NAME]`.
func NewCmdDiagnose(streams genericiooptions.IOStreams) *cobra.Command {
	o := &diagnoseOptions{streams: streams, configFlags: newConfigFlags()}
	cmd := &cobra.Command{
		Use:   "diagnose [TYPE/NAME]",
		Short: "Find the root cause of every failing pod: wrong-arch binary, missing platform, or not arch at all",
		Long: `diagnose reads the failing pods (CrashLoopBackOff, ImagePullBackOff, Pending),
their nodes, events and previous logs, from the cluster or from -f dumps, and
inspects only the images involved in failures (verifying the entrypoint
binary each node pulls). For each workload it prints the root cause with the
evidence as seen, what to do today (a node-affinity patch) and for good (a
multi-arch build).

Logs for -f: put logs/NAMESPACE/POD/CONTAINER.previous.log next to the dump
(see internal/cluster/README.md for a script that writes them).`,
		Example: `  archfit diagnose -A
  archfit diagnose deployment/api -n shop
  archfit diagnose -f examples/cluster --oci-layout examples/images
  kubectl get pods,nodes,events -A -o yaml | archfit diagnose -f - -o markdown`,
		Args: cobra.MaximumNArgs(1),
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
	o.configFlags.AddFlags(cmd.Flags())
	o.images.addFlags(cmd.Flags())
	cmd.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "read a kubectl dump (file, directory, or - for stdin) instead of the live cluster; repeatable")
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "R", false, "with -f, read directories recursively")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "look at every namespace")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, json, yaml, markdown, sarif")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "error", "exit 3 when a finding is at or above this severity: error, warning, info, never")
	allowUnverifiedFlag(cmd.Flags(), &o.allowUnverified)
	o.dockerfiles.addFlag(cmd.Flags())
	return cmd
}

func (o *diagnoseOptions) complete(args []string) error {
	if len(args) == 1 {
		t, err := cluster.ParseTarget(args[0])
		if err != nil {
			return err
		}
		o.target = &t
	}
	var err error
	if o.failSeverity, err = finding.ParseSeverity(o.failOn); err != nil {
		return err
	}
	return o.dockerfiles.parse()
}

func (o *diagnoseOptions) validate() error {
	if _, err := report.For(o.output); err != nil {
		return err
	}
	return o.images.validate()
}

// snapshot loads the cluster from -f or the live API server.
func (o *diagnoseOptions) snapshot(cmd *cobra.Command) (*cluster.Snapshot, error) {
	ctx := cmd.Context()
	if len(o.files) == 0 {
		return cluster.LoadLive(ctx, o.configFlags, cluster.LiveOptions{AllNamespaces: o.allNamespaces, Target: o.target, Events: cluster.EventsDiagnosis})
	}
	snap, docErrs, err := cluster.LoadFiles(ctx, o.files, o.streams.In, cluster.Recursive(o.recursive), cluster.DefaultNamespace(fileNamespace(o.configFlags)))
	if err != nil {
		return nil, err
	}
	for _, e := range docErrs {
		fmt.Fprintf(o.streams.ErrOut, "warning: %v\n", e)
	}
	// A dump covers what it covers: every namespace unless -n narrows it.
	ns := ""
	if !o.allNamespaces && o.configFlags.Namespace != nil {
		ns = *o.configFlags.Namespace
	}
	if ns != "" && o.target == nil {
		warnOtherNamespaces(o.streams.ErrOut, o.configFlags, snap, "left out")
	}
	if ns != "" || o.target != nil {
		return snap.Select(ns, o.target)
	}
	return snap, nil
}

func (o *diagnoseOptions) run(cmd *cobra.Command) error {
	start := time.Now()
	snap, err := o.snapshot(cmd)
	if err != nil {
		return err
	}
	for _, w := range snap.Warnings {
		fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", w)
	}
	reqs := diagnose.Requests(snap)
	var reps []*image.Report
	var res *image.Resolver
	if len(reqs) > 0 {
		if len(o.files) == 0 && !o.images.offline() {
			// Live cluster: the failing pods' own pull secrets open
			// private registries the user's docker config may not.
			var pods []*corev1.Pod
			for _, p := range snap.FailingPods() {
				pods = append(pods, p.Pod)
			}
			if o.images.pullSecrets, err = cluster.ReadPullSecrets(cmd.Context(), o.configFlags, pods, false, o.streams.ErrOut); err != nil {
				return err
			}
		}
		if err := o.images.withCredentials(reqs, o.streams.ErrOut); err != nil {
			return err
		}
		if res, err = o.images.resolver(o.streams.ErrOut, true, snap.NodePlatforms()...); err != nil {
			return err
		}
		reps = res.InspectAll(cmd.Context(), reqs)
		if err := cmd.Context().Err(); err != nil {
			return err
		}
	}
	images := diagnose.NewImages(reqs, reps)
	fs := diagnose.Diagnose(snap, images)
	locateFindings(snap, fs)
	doc := &report.Document{Kind: "Diagnosis", Findings: fs, Images: images.All(), Text: report.DiagnosisText,
		Remedies: diagnose.Remedies(snap, images, fs), Nodes: report.Nodes(snap.Nodes)}
	failing := len(snap.FailingPods())
	var regReqs, hits int64
	if res != nil {
		regReqs, hits = res.Requests(), res.CacheHits()
	}
	o.dockerfiles.analyze()
	o.dockerfiles.attach(o.streams.ErrOut, remedyAdvice(doc.Remedies))
	doc.Extra = map[string]any{"notArch": diagnose.NotArchFailures(snap, fs), "stats": map[string]any{
		"pods": len(snap.Pods), "failingPods": failing, "images": len(reqs),
		"apiRequests": snap.APIRequests, "registryRequests": regReqs, "cacheHits": hits,
	}}
	fmt.Fprintf(o.streams.ErrOut, "diagnosed %d failing pod(s) of %d in %s: %d image request(s), %d registry request(s), %d cache hit(s), %d API request(s)\n",
		failing, len(snap.Pods), time.Since(start).Round(time.Millisecond), len(reqs), regReqs, hits, snap.APIRequests)
	err = render(o.streams.Out, o.output, o.failSeverity, doc)
	if dErr := o.dockerfiles.err(); dErr != nil {
		// archfit failed on some input: that outranks any finding.
		return dErr
	}
	if err != nil {
		return err
	}
	return incomplete(doc, !o.allowUnverified && o.failSeverity != finding.Never)
}
