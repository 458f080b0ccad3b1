package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	renderer "github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/report"
)

// fleetOptions are the input flags shared by audit and plan.
type fleetOptions struct {
	streams       genericiooptions.IOStreams
	configFlags   *genericclioptions.ConfigFlags
	images        imageOptions
	files         []string
	recursive     bool
	allNamespaces bool
	nodePlatforms []string
	configFile    string
	verify        bool
	chunkSize     int64
	helmChart     string
	helmValues    []string
	helmSet       []string
	releaseName   string
	kustomize     string
	allowRemote   bool
	kubeVersion   string
	apiVersions   []string

	// helmTests are the helm test hooks of --helm-chart, listed apart
	// from the workloads.
	helmTests []renderer.TestHook

	assume  []specs.Platform
	waivers []audit.Waiver

	noAnnotationWaivers bool
	dockerfiles         dockerfileAdvice
}

func (o *fleetOptions) addFlags(cmd *cobra.Command) {
	o.configFlags = newConfigFlags()
	o.configFlags.AddFlags(cmd.Flags())
	o.images.addFlags(cmd.Flags())
	cmd.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "read manifests or kubectl dumps from files, directories or - (stdin) instead of the cluster")
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "R", false, "with -f, read directories recursively")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "every namespace of the live cluster")
	cmd.Flags().StringSliceVar(&o.nodePlatforms, "node-platform", []string{"linux/amd64", "linux/arm64"}, "node platforms to assume as pools when the input has no nodes")
	cmd.Flags().Int64Var(&o.chunkSize, "chunk-size", 500, "list the live cluster in pages of this many objects (as kubectl)")
	cmd.Flags().StringVar(&o.configFile, "config", "", "waivers file (default .archfit.yaml in the current directory, if present)")
	cmd.Flags().BoolVar(&o.noAnnotationWaivers, "no-annotation-waivers", false, "accept waivers only from the config file, not from the archfit.io/ignore annotation of the manifests")
	cmd.Flags().StringVar(&o.helmChart, "helm-chart", "", "render this Helm chart (directory or .tgz) offline as helm template does and read the result instead of the cluster")
	cmd.Flags().StringSliceVar(&o.helmValues, "values", nil, "with --helm-chart, values files merged in order (repeatable)")
	cmd.Flags().StringArrayVar(&o.helmSet, "set", nil, "with --helm-chart, set values as helm --set does (repeatable)")
	cmd.Flags().StringVar(&o.releaseName, "release-name", renderer.DefaultReleaseName, "with --helm-chart, the release name (the release namespace is -n, else \"default\")")
	cmd.Flags().StringVar(&o.kubeVersion, "kube-version", "", "with --helm-chart, the Kubernetes version for the chart's kubeVersion and .Capabilities.KubeVersion (default: the named cluster's with --kubeconfig/--context/--cluster/--server, else "+renderer.DefaultKubeVersion+")")
	cmd.Flags().StringSliceVar(&o.apiVersions, "api-versions", nil, "with --helm-chart, API versions (group/version or group/version/Kind) added to .Capabilities.APIVersions (repeatable)")
	cmd.Flags().StringVarP(&o.kustomize, "kustomize", "k", "", "build this kustomization directory as kustomize build does and read the result instead of the cluster")
	o.dockerfiles.addFlag(cmd.Flags())
	cmd.Flags().BoolVar(&o.allowRemote, "allow-remote-resources", false, "with -k, let the kustomization fetch remote resources and bases (HTTP, git); refused by default")
}

func (o *fleetOptions) complete() error {
	for _, s := range o.nodePlatforms {
		p, err := platform.Parse(s)
		if err != nil {
			return fmt.Errorf("--node-platform %q: %w", s, err)
		}
		o.assume = append(o.assume, platform.Node(p.OS, platform.Arch(p)))
	}
	file, optional := o.configFile, false
	if file == "" {
		file, optional = ".archfit.yaml", true
	}
	cfg, err := audit.LoadConfig(file, optional)
	if err != nil {
		return err
	}
	o.waivers = cfg.Waivers
	if o.helmChart == "" && (len(o.helmValues) > 0 || len(o.helmSet) > 0) {
		return errors.New("--values and --set need --helm-chart")
	}
	if o.helmChart == "" && (o.kubeVersion != "" || len(o.apiVersions) > 0) {
		return errors.New("--kube-version and --api-versions need --helm-chart")
	}
	if o.kubeVersion != "" {
		if err := renderer.ParseKubeVersion(o.kubeVersion); err != nil {
			return fmt.Errorf("--kube-version %q: %w", o.kubeVersion, err)
		}
	}
	if err := o.dockerfiles.parse(); err != nil {
		return err
	}
	return o.images.validate()
}

// rendered is a Helm chart or kustomization rendered to a file that
// LoadFiles reads like any -f input.
type rendered struct {
	what string // "helm chart PATH" or "kustomization DIR", for messages
	// src is the --helm-chart or -k path as given; helm says which.
	src  string
	helm bool
	file string
	data []byte
}

// renderInputs renders --helm-chart and -k into files under dir.
func (o *fleetOptions) renderInputs(ctx context.Context, dir string) ([]rendered, error) {
	var out []rendered
	if o.helmChart != "" {
		ns := ""
		if o.configFlags.Namespace != nil {
			ns = *o.configFlags.Namespace
		}
		caps, err := o.chartCapabilities(ctx)
		if err != nil {
			return nil, err
		}
		c, err := renderer.RenderChart(ctx, o.helmChart, o.helmValues, o.helmSet, o.releaseName, ns, renderer.WithCapabilities(caps))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.streams.ErrOut, "rendered chart %s for Kubernetes %s (%s)\n", o.helmChart, c.KubeVersion, capsSource(caps))
		for _, s := range c.Skipped {
			fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", s)
		}
		o.helmTests = c.TestHooks()
		out = append(out, rendered{what: "helm chart " + o.helmChart, src: o.helmChart, helm: true, file: "helm-" + filepath.Base(filepath.Clean(o.helmChart)) + ".yaml", data: c.Manifests})
	}
	if o.kustomize != "" {
		data, err := renderer.Kustomize(ctx, o.kustomize, renderer.AllowRemote(o.allowRemote), renderer.WithOrigins())
		if err != nil {
			return nil, err
		}
		out = append(out, rendered{what: "kustomization " + o.kustomize, src: o.kustomize, file: "kustomize-" + filepath.Base(filepath.Clean(o.kustomize)) + ".yaml", data: data})
	}
	for i := range out {
		out[i].file = filepath.Join(dir, out[i].file)
		if err := os.WriteFile(out[i].file, out[i].data, 0o600); err != nil {
			return nil, fmt.Errorf("writing the render of %s: %w", out[i].what, err)
		}
	}
	return out, nil
}

// loadFiles reads -f and the rendered --helm-chart and -k. A document
// error in a render names the chart or kustomization (and the template)
// instead of the temporary file; its line is that of the render, as helm
// template or kustomize build prints it.
func (o *fleetOptions) loadFiles(ctx context.Context) (*cluster.Snapshot, []error, error) {
	paths := o.files
	var rs []rendered
	if o.helmChart != "" || o.kustomize != "" {
		dir, err := os.MkdirTemp("", "archfit-render-")
		if err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(dir)
		if rs, err = o.renderInputs(ctx, dir); err != nil {
			return nil, nil, err
		}
		paths = append([]string{}, o.files...)
		for _, r := range rs {
			paths = append(paths, r.file)
		}
	}
	snap, docErrs, err := cluster.LoadFiles(ctx, paths, o.streams.In, cluster.Recursive(o.recursive), cluster.DefaultNamespace(fileNamespace(o.configFlags)))
	for _, r := range rs {
		locateRendered(snap, r)
	}
	for _, e := range docErrs {
		var de *cluster.DocumentError
		if !errors.As(e, &de) {
			continue
		}
		for _, r := range rs {
			if de.File != r.file {
				continue
			}
			de.File = r.what + " (rendered)"
			if src := renderer.SourceAt(r.data, de.Line); src != "" {
				de.File = r.what + ", " + src + " (rendered)"
			}
		}
	}
	return snap, docErrs, err
}

// load reads the snapshot from -f, --helm-chart and -k, or else the live
// cluster.
func (o *fleetOptions) load(ctx context.Context) (*cluster.Snapshot, error) {
	if len(o.files) > 0 || o.helmChart != "" || o.kustomize != "" {
		snap, docErrs, err := o.loadFiles(ctx)
		for _, e := range docErrs {
			fmt.Fprintf(o.streams.ErrOut, "warning: %v\n", e)
		}
		if err != nil {
			return nil, err
		}
		warnOtherNamespaces(o.streams.ErrOut, o.configFlags, snap, "they are read in their own namespace")
		return snap, nil
	}
	snap, err := cluster.LoadLive(ctx, o.configFlags, cluster.LiveOptions{AllNamespaces: o.allNamespaces, Logs: cluster.LogsNone, Events: cluster.EventsNone, PageSize: o.chunkSize})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.streams.ErrOut, "read the cluster with %d API request(s)\n", snap.APIRequests)
	// The workloads' own pull secrets open their private registries.
	var pods []*corev1.Pod
	for _, w := range snap.Workloads {
		pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace}, Spec: w.Template.Spec})
	}
	if o.images.pullSecrets, err = cluster.ReadPullSecrets(ctx, o.configFlags, pods, true, o.streams.ErrOut); err != nil {
		return nil, err
	}
	return snap, nil
}

// fleetRun is one audit with everything it was computed from.
type fleetRun struct {
	snap    *cluster.Snapshot
	reports []*image.Report
	result  *audit.Result
	// helmTests are --helm-chart's helm test hooks, listed apart.
	helmTests []renderer.TestHook
}

// run loads, inspects every distinct image once and audits.
func (o *fleetOptions) run(ctx context.Context) (*fleetRun, error) {
	snap, err := o.load(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range snap.Warnings {
		fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", w)
	}
	if len(snap.Workloads) == 0 {
		return nil, errors.New("the input holds no workloads")
	}
	res, err := o.images.resolver(o.streams.ErrOut, o.verify, snap.NodePlatforms()...)
	if err != nil {
		return nil, err
	}
	reqs := audit.Requests(snap, o.verify)
	if err := o.images.withCredentials(reqs, o.streams.ErrOut); err != nil {
		return nil, err
	}
	start := time.Now()
	reps := res.InspectAll(ctx, reqs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.streams.ErrOut, "inspected %d image(s) of %d workload(s) in %s: %d registry request(s), %d cache hit(s)\n",
		image.Distinct(reps), len(snap.Workloads), time.Since(start).Round(time.Millisecond), res.Requests(), res.CacheHits())
	result := audit.Run(snap, image.NewSet(reqs, reps), audit.Options{AssumePlatforms: o.assume, Waivers: o.waivers, Verify: o.verify, NoAnnotationWaivers: o.noAnnotationWaivers})
	locateFindings(snap, result.Findings)
	o.dockerfiles.analyze()
	advice := remedyAdvice(result.Remedies)
	for _, b := range result.Blockers {
		advice = append(advice, b.Build)
	}
	o.dockerfiles.attach(o.streams.ErrOut, advice)
	return &fleetRun{snap: snap, reports: reps, result: result, helmTests: o.helmTests}, nil
}

type auditOptions struct {
	fleetOptions
	output          string
	failOn          string
	allowUnverified bool

	failSeverity finding.Severity
}

// NewCmdAudit builds `archfit audit`.
func NewCmdAudit(streams genericiooptions.IOStreams) *cobra.Command {
	o := &auditOptions{fleetOptions: fleetOptions{streams: streams}}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check every workload's containers against every node pool: coverage, risks, arm64 readiness, blockers",
		Long: `audit checks each container (init, native sidecar, main, and sidecars injected
at admission as seen in running pods) of every workload against each node
pool's platform: runs, fails (and how: the runtime's pull error, or an exec
format error) or unknown. It reports the containers at risk where the pods
may be scheduled (nodeSelector, affinity and taints respected), the
workload's allowed architectures with the interim patch, base images, the
share of workloads and replicas ready for arm64, and the images that block
the most workloads first.

Without nodes in the input, --node-platform pools are assumed. Waivers come
from .archfit.yaml (--config) and the archfit.io/ignore annotation
("<code>: <reason>").`,
		Example: `  archfit audit -f examples/manifests --oci-layout examples/images --verify
  archfit audit -A -o html > audit.html
  archfit audit -A -o json | jq .extra.readiness`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.runAudit(cmd.Context())
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.verify, "verify", true, "read each runnable entry's entrypoint binary to prove its architecture")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, json, yaml, markdown, sarif, html")
	cmd.Flags().StringVar(&o.failOn, "fail-on", "error", "exit 3 when a finding is at or above this severity: error, warning, info, never")
	allowUnverifiedFlag(cmd.Flags(), &o.allowUnverified)
	return cmd
}

func (o *auditOptions) complete() error {
	var err error
	if o.failSeverity, err = finding.ParseSeverity(o.failOn); err != nil {
		return err
	}
	return o.fleetOptions.complete()
}

func (o *auditOptions) validate() error {
	if o.output == "html" {
		return nil
	}
	_, err := report.For(o.output)
	return err
}

func (o *auditOptions) runAudit(ctx context.Context) error {
	fr, err := o.run(ctx)
	if err != nil {
		return err
	}
	doc := auditDocument(fr)
	out, format := o.streams.Out, o.output
	if o.output == "html" {
		report.SortFindings(doc.Findings)
		if err := report.HTML(o.streams.Out, fr.result, doc.Findings, planSections(fr.result), doc.Incomplete); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		out, format = io.Discard, "json"
	}
	err = render(out, format, o.failSeverity, doc)
	if dErr := o.dockerfiles.err(); dErr != nil {
		// archfit failed on some input: that outranks any finding.
		return dErr
	}
	if err != nil {
		return err
	}
	return incomplete(doc, !o.allowUnverified && o.failSeverity != finding.Never)
}

// auditDocument turns an audit into the report Document (DESIGN.md shape:
// findings, remedies, images, nodes; the matrix, blockers and readiness in
// extra).
func auditDocument(fr *fleetRun) *report.Document {
	r := fr.result
	doc := &report.Document{Kind: "Audit", Findings: r.Findings, Images: fr.reports,
		Extra: map[string]any{"pools": r.Pools, "readiness": r.Readiness, "blockers": r.Blockers, "workloads": r.Workloads}}
	if len(r.Warnings) > 0 {
		doc.Extra["warnings"] = r.Warnings
	}
	doc.Remedies = r.Remedies
	doc.Nodes = report.Nodes(fr.snap.Nodes)
	doc.Incomplete = report.Unread(fr.reports)
	doc.Text = report.AuditText(r)
	withHelmTests(doc, fr.helmTests)
	return doc
}
