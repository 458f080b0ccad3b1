package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/apply"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/remedy"
)

type patchOptions struct {
	streams     genericiooptions.IOStreams
	configFlags *genericclioptions.ConfigFlags
	images      imageOptions
	files       []string
	recursive   bool
	format      string
	archs       []string
	apply       bool
	force       bool
	write       bool

	target  cluster.Target
	fmt     remedy.Format
	allowIn []string // --arch, canonical
	stdin   []byte   // read once when -f - is given
}

// NewCmdPatch builds `archfit patch TYPE/NAME`.
func NewCmdPatch(streams genericiooptions.IOStreams) *cobra.Command {
	o := &patchOptions{streams: streams, configFlags: newConfigFlags()}
	cmd := &cobra.Command{
		Use:   "patch TYPE/NAME",
		Short: "Print (or with --apply, apply) the node-affinity patch that keeps a workload on architectures its images run",
		Long: `patch inspects every image of the workload's pod template (verifying the
entrypoint binaries), intersects the architectures they really run with those
of the cluster's nodes (or --arch), and prints the patch of the object that
owns the pod template: a Deployment rather than its ReplicaSet, a CronJob
rather than its Job, the Deployment an Argo Rollout's workloadRef names.
Tolerations are added for taints that every node of an allowed architecture
carries. A workload that pins an architecture its images cannot run is a
conflict: it is explained and archfit exits 3.

--apply (live cluster only) refuses objects that Helm, Argo CD, Flux or an
operator manage, and says where the change belongs instead (--force patches
anyway); it sends the patch as a server-side dry run first, shows the change
to the pod template's nodeSelector/affinity/tolerations, then patches for
real with field manager "archfit". It sends an RFC 6902 JSON patch whose test
ops make it fail, rather than misapply, if the object changed meanwhile. A
bare Pod must be recreated and a started Job cannot change: archfit prints the
patched manifest and changes nothing; it never deletes anything.`,
		Example: `  archfit patch deployment/api -n shop
  archfit patch deployment/api -n shop --format kubectl
  archfit patch deployment/api -n shop --apply
  archfit patch deploy/api -f k8s/api.yaml --arch amd64,arm64 --format yaml --write
  archfit patch cronjob/report -f manifests/ --arch amd64,arm64 --format kustomize`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(cmd, args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	o.configFlags.AddFlags(cmd.Flags())
	o.images.addFlags(cmd.Flags())
	fs := cmd.Flags()
	fs.StringSliceVarP(&o.files, "filename", "f", nil, "read the workload from manifests or kubectl dumps (files, directories, - for stdin) instead of the cluster; repeatable")
	fs.BoolVarP(&o.recursive, "recursive", "R", false, "with -f, read directories recursively")
	fs.StringVar(&o.format, "format", string(remedy.FormatJSONPatch), "patch format: "+formatList())
	fs.StringSliceVar(&o.archs, "arch", nil, "the node architectures to allow at most (e.g. amd64,arm64) instead of those of the cluster's nodes; needed with -f input that has no nodes")
	fs.BoolVar(&o.apply, "apply", false, "apply the patch to the live cluster: server-side dry run and diff first, then a JSON patch with field manager archfit")
	fs.BoolVar(&o.force, "force", false, "with --apply, patch even an object that Helm, Argo CD, Flux or an operator manages")
	fs.BoolVar(&o.write, "write", false, "with -f FILE and --format yaml, write the patched manifest back into the file it came from (comments and order kept)")
	return cmd
}

func formatList() string {
	s := make([]string, len(remedy.Formats))
	for i, f := range remedy.Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func (o *patchOptions) complete(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("patch needs exactly one TYPE/NAME, e.g. deployment/api")
	}
	t, err := cluster.ParseTarget(args[0])
	if err != nil {
		return err
	}
	o.target = t
	// --write only makes sense for the yaml format: imply it when no
	// format was asked for.
	if o.write && (cmd == nil || !cmd.Flags().Changed("format")) {
		o.format = string(remedy.FormatYAML)
	}
	o.fmt = remedy.Format(o.format)
	o.allowIn = nil
	for _, a := range o.archs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		p, err := platform.Parse(a)
		if err != nil {
			return fmt.Errorf("--arch %q: %w", a, err)
		}
		c := platform.Arch(p)
		if !contains(o.allowIn, c) {
			o.allowIn = append(o.allowIn, c)
		}
	}
	sort.Strings(o.allowIn)
	if contains(o.files, "-") && o.streams.In != nil {
		b, err := io.ReadAll(o.streams.In)
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		o.stdin = b
	}
	return nil
}

func (o *patchOptions) validate() error {
	if !contains(formatStrings(), string(o.fmt)) {
		return fmt.Errorf("--format %q: want one of %s", o.format, formatList())
	}
	if len(o.archs) > 0 && len(o.allowIn) == 0 {
		return fmt.Errorf("--arch names no architecture")
	}
	if o.force && !o.apply {
		return fmt.Errorf("--force only makes sense with --apply")
	}
	if o.apply && len(o.files) > 0 {
		return fmt.Errorf("--apply patches the live cluster; it cannot be used with -f (apply the printed patch to your files, or use --write)")
	}
	if o.apply && o.write {
		return fmt.Errorf("--apply and --write do not go together: one changes the cluster, the other a file")
	}
	if o.write {
		if len(o.files) == 0 {
			return fmt.Errorf("--write needs -f: it writes the patched manifest back into the file it came from")
		}
		if contains(o.files, "-") {
			return fmt.Errorf("--write cannot write back to stdin")
		}
		if o.fmt != remedy.FormatYAML {
			return fmt.Errorf("--write writes the yaml format, not %s", o.fmt)
		}
	}
	return o.images.validate()
}

func formatStrings() []string {
	s := make([]string, len(remedy.Formats))
	for i, f := range remedy.Formats {
		s[i] = string(f)
	}
	return s
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// patchSource reads the workload: the snapshot narrowed to the target, and
// the whole snapshot (to follow a redirect to another object of the files).
func (o *patchOptions) load(ctx context.Context) (sel, all *cluster.Snapshot, err error) {
	ns := ""
	if o.configFlags.Namespace != nil {
		ns = *o.configFlags.Namespace
	}
	if len(o.files) == 0 {
		snap, err := cluster.LoadLive(ctx, o.configFlags, cluster.LiveOptions{Target: &o.target, Logs: cluster.LogsNone})
		if err != nil {
			return nil, nil, err
		}
		return snap, snap, nil
	}
	snap, docErrs, err := cluster.LoadFiles(ctx, o.files, bytes.NewReader(o.stdin), cluster.Recursive(o.recursive))
	if err != nil {
		return nil, nil, err
	}
	for _, e := range docErrs {
		fmt.Fprintf(o.streams.ErrOut, "warning: %v\n", e)
	}
	sel, err = snap.Select(ns, &o.target)
	return sel, snap, err
}

func (o *patchOptions) run(ctx context.Context) error {
	sel, all, err := o.load(ctx)
	if err != nil {
		return err
	}
	for _, w := range sel.Warnings {
		fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", w)
	}
	w, err := oneWorkload(sel, o.target)
	if err != nil {
		return err
	}
	if w.Original == nil {
		return fmt.Errorf("%s %s/%s is not in the input (%s): nothing to patch; add it with -f", w.Kind, w.Namespace, w.Name, w.Inferred)
	}

	containers, err := o.containers(ctx, w)
	if err != nil {
		return err
	}
	nodeArchs := o.allowIn
	if len(nodeArchs) == 0 {
		nodeArchs = snapshotArchs(sel)
		if len(nodeArchs) == 0 {
			fmt.Fprintln(o.streams.ErrOut, "warning: the input has no nodes and --arch was not given: only the images restrict the architectures")
		}
	}
	allowed := remedy.AllowedArchitectures(containers, nodeArchs)
	if len(allowed.Unverified) > 0 {
		fmt.Fprintf(o.streams.ErrOut, "warning: not taken into account (image not inspected): %s\n", strings.Join(allowed.Unverified, ", "))
	}
	if allowed.Conflict != nil {
		writeConflicts(o.streams.Out, w.Ref.String(), []remedy.Conflict{*allowed.Conflict})
		return &FindingsError{Count: 1}
	}
	if len(allowed.Architectures) == 0 {
		return fmt.Errorf("no image of %s could be inspected: no architecture to allow (give --arch to state it)", w.Ref)
	}
	fmt.Fprintf(o.streams.ErrOut, "%s: allowed architectures %s\n", w.Ref, strings.Join(allowed.Architectures, ", "))

	// Tolerate what keeps pods off every node of an allowed architecture
	// (none when the input has no nodes).
	var opts []remedy.Option
	for _, a := range allowed.Architectures {
		if ts := archTaints(sel.Nodes, a); len(ts) > 0 {
			opts = append(opts, remedy.WithTaints(a, ts...))
		}
	}

	var applier *apply.Applier
	if o.apply {
		if applier, err = o.applier(); err != nil {
			return err
		}
	}
	obj, res, err := o.follow(ctx, all, applier, w.Original, allowed.Architectures, opts)
	if err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintf(o.streams.ErrOut, "note: %s\n", n)
	}
	if o.apply {
		managed := (*cluster.Ref)(nil)
		if obj == w.Original {
			managed = w.ManagedBy
		}
		return o.applyLive(ctx, applier, obj, allowed.Architectures, opts, managed)
	}
	return o.print(obj, res, allowed.Architectures, opts)
}

// follow computes the patch, following RedirectErrors to the object that
// owns the pod template.
func (o *patchOptions) follow(ctx context.Context, all *cluster.Snapshot, applier *apply.Applier, obj *unstructured.Unstructured, allowed []string, opts []remedy.Option) (*unstructured.Unstructured, *remedy.Result, error) {
	for hops := 0; ; hops++ {
		res, err := remedy.Patch(obj, allowed, opts...)
		var redirect *remedy.RedirectError
		if !errors.As(err, &redirect) {
			return obj, res, err
		}
		if hops == 3 {
			return nil, nil, fmt.Errorf("following owners: %w", err)
		}
		fmt.Fprintf(o.streams.ErrOut, "note: patching %s instead of %s: %s\n", redirect.To, redirect.From, redirect.Reason)
		next, err := o.lookup(ctx, all, applier, redirect.To)
		if err != nil {
			return nil, nil, fmt.Errorf("%w; and %s cannot be read: %v", redirect, redirect.To, err)
		}
		obj = next
	}
}

// lookup finds an object in the files, or reads it from the cluster.
func (o *patchOptions) lookup(ctx context.Context, all *cluster.Snapshot, applier *apply.Applier, ref remedy.ObjectRef) (*unstructured.Unstructured, error) {
	if len(o.files) > 0 {
		if w := all.Workload(cluster.Ref{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}); w != nil && w.Original != nil {
			return w.Original, nil
		}
		return nil, fmt.Errorf("%w: %s is not in the input; add it with -f", cluster.ErrNotFound, ref)
	}
	if applier == nil {
		a, err := o.applier()
		if err != nil {
			return nil, err
		}
		applier = a
	}
	return applier.Get(ctx, ref)
}

func (o *patchOptions) applier() (*apply.Applier, error) {
	cfg, err := o.configFlags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := o.configFlags.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	return &apply.Applier{Client: dc, Mapper: mapper}, nil
}

// print renders the patch (no --apply).
func (o *patchOptions) print(obj *unstructured.Unstructured, res *remedy.Result, allowed []string, opts []remedy.Option) error {
	if len(res.Conflicts) > 0 {
		writeConflicts(o.streams.Out, res.Object.String(), res.Conflicts)
		return &FindingsError{Count: len(res.Conflicts)}
	}
	var srcPath string
	if o.fmt == remedy.FormatYAML && len(o.files) > 0 {
		src, err := remedy.FindSource(o.files, o.recursive, remedy.SourceFile{Path: cluster.StdinName, Data: o.stdin}, res.Object)
		if err != nil {
			return err
		}
		if src != nil {
			srcPath = src.Path
			if res, err = remedy.Patch(obj, allowed, append(opts, remedy.WithSource(src.Data))...); err != nil {
				return err
			}
		} else if o.write {
			return fmt.Errorf("--write: no file of -f holds %s", res.Object)
		}
	}
	out, err := res.Render(o.fmt)
	if err != nil {
		return err
	}
	// Recreate and Immutable are explained by res.Notes, printed already.
	if !res.Changed {
		fmt.Fprintf(o.streams.ErrOut, "%s is already kept on %s: nothing to patch\n", res.Object, strings.Join(allowed, ", "))
	}
	if o.write {
		if !res.Changed {
			return nil
		}
		if err := remedy.WriteFile(srcPath, out); err != nil {
			return err
		}
		fmt.Fprintf(o.streams.ErrOut, "wrote %s\n", srcPath)
		return nil
	}
	_, err = o.streams.Out.Write(out)
	return err
}

// applyLive re-reads the object, recomputes the patch against what is live
// now, and applies it after a server-side dry run.
func (o *patchOptions) applyLive(ctx context.Context, a *apply.Applier, obj *unstructured.Unstructured, allowed []string, opts []remedy.Option, operator *cluster.Ref) error {
	ref := remedy.ObjectRef{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
	live, err := a.Get(ctx, ref)
	if err != nil {
		return err
	}
	res, err := remedy.Patch(live, allowed, opts...)
	if err != nil {
		return err
	}
	if len(res.Conflicts) > 0 {
		writeConflicts(o.streams.Out, res.Object.String(), res.Conflicts)
		return &FindingsError{Count: len(res.Conflicts)}
	}
	if !res.Changed {
		fmt.Fprintf(o.streams.Out, "%s is already kept on %s: nothing to apply\n", res.Object, strings.Join(allowed, ", "))
		return nil
	}
	err = apply.Check(live, res, o.force)
	if err == nil && operator != nil && !o.force {
		err = &apply.ManagedError{Object: res.Object, Owners: []apply.Owner{{
			Tool: apply.Tool(operator.Kind + " " + operator.Name), Name: operator.Name, Namespace: operator.Namespace,
			Evidence: []string{"controller ownerReference " + operator.String()},
		}}}
	}
	var managed *apply.ManagedError
	switch {
	case errors.As(err, &managed):
		return o.refuseManaged(res, managed)
	case errors.Is(err, apply.ErrRecreate), errors.Is(err, apply.ErrImmutable):
		fmt.Fprintf(o.streams.ErrOut, "%v\n", err)
		fmt.Fprintf(o.streams.ErrOut, "the patched manifest (not applied):\n")
		b, merr := yaml.Marshal(apply.Manifest(res.Patched()).Object)
		if merr != nil {
			return merr
		}
		if _, werr := o.streams.Out.Write(b); werr != nil {
			return werr
		}
		return err
	case err != nil:
		return err
	}
	if len(apply.Owners(live)) > 0 {
		fmt.Fprintf(o.streams.ErrOut, "warning: --force: patching %s although %s manages it; it may revert the change\n", res.Object, apply.Owners(live)[0].Tool)
	}

	_, diff, err := a.DryRun(ctx, live, res)
	if err != nil {
		return fmt.Errorf("server-side dry run: %w", err)
	}
	fmt.Fprintf(o.streams.Out, "server-side dry run of %s passed; the pod template changes as follows:\n%s", res.Object, diff)
	if _, err := a.Apply(ctx, live, res); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "%s patched (field manager %s): its pods now run only on %s\n", res.Object, apply.FieldManager, strings.Join(allowed, ", "))
	return nil
}

// refuseManaged says where the change belongs and prints the patch in the
// form that goes there.
func (o *patchOptions) refuseManaged(res *remedy.Result, e *apply.ManagedError) error {
	w := o.streams.Out
	fmt.Fprintf(w, "%s is managed by %s:\n", res.Object, e.Owners[0].Tool)
	for _, ow := range e.Owners {
		fmt.Fprintf(w, "  %s: %s\n", ow.Tool, strings.Join(ow.Evidence, ", "))
	}
	fmt.Fprintf(w, "Not applied: %s.\n", e.Owners[0].Advice())
	switch e.Owners[0].Tool {
	case apply.Helm, apply.FluxHelm:
		sched, err := apply.Scheduling(res.Patched(), res.PodSpecPath)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n# values for the chart, if it exposes the pod's scheduling fields:\n%s", sched)
	case apply.ArgoCD, apply.FluxKustomize:
		b, err := res.Render(remedy.FormatKustomize)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s", b)
	default:
		b, err := res.Render(remedy.FormatJSONPatch)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n# the JSON patch:\n%s\n", b)
	}
	return e
}

// containers inspects the workload's images (verified, with each
// container's command/args) and returns what each container runs.
func (o *patchOptions) containers(ctx context.Context, w *cluster.Workload) ([]remedy.Container, error) {
	spec := w.Template.Spec
	cs := remedy.Containers(spec, nil)
	var reqs []image.Request
	idx := make([]int, len(cs))
	for i, c := range cs {
		idx[i] = -1
		if c.Role == remedy.RoleEphemeral || c.Image == "" {
			continue
		}
		idx[i] = len(reqs)
		reqs = append(reqs, image.Request{Ref: c.Image, Verify: true, Override: podOverride(&spec, c.Name)})
	}
	if len(reqs) == 0 {
		return cs, nil
	}
	if len(o.files) == 0 && o.images.ociLayout == "" {
		// Live: the workload's own pull secrets open its private registry.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace}, Spec: spec}
		var err error
		if o.images.pullSecrets, err = pullSecretKeychain(ctx, o.configFlags, []*corev1.Pod{pod}, o.streams.ErrOut); err != nil {
			return nil, err
		}
	}
	res, err := o.images.resolver(true)
	if err != nil {
		return nil, err
	}
	reps := res.InspectAll(ctx, reqs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range cs {
		if idx[i] < 0 {
			continue
		}
		r := reps[idx[i]]
		if r == nil || r.Error != nil {
			cs[i].Unknown, cs[i].Architectures = true, nil
			if r != nil {
				fmt.Fprintf(o.streams.ErrOut, "warning: cannot read %s: %s: %s\n", r.Reference, r.Error.Reason, r.Error.Detail)
			}
			continue
		}
		cs[i].Unknown, cs[i].Architectures = false, r.Architectures
	}
	return cs, nil
}

func podOverride(spec *corev1.PodSpec, name string) *image.Override {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range list {
			if c.Name == name && (len(c.Command) > 0 || len(c.Args) > 0) {
				return &image.Override{Command: c.Command, Args: c.Args}
			}
		}
	}
	return nil
}

// oneWorkload returns the workload the target names, asking for -n when the
// name exists in several namespaces.
func oneWorkload(s *cluster.Snapshot, t cluster.Target) (*cluster.Workload, error) {
	switch len(s.Workloads) {
	case 0:
		return nil, fmt.Errorf("%s: %w", t, cluster.ErrNotFound)
	case 1:
		return s.Workloads[0], nil
	}
	var names []string
	for _, w := range s.Workloads {
		names = append(names, w.Ref.String())
	}
	return nil, fmt.Errorf("%s names %d workloads (%s): narrow it with -n", t, len(names), strings.Join(names, ", "))
}

// snapshotArchs are the distinct architectures of the snapshot's nodes.
func snapshotArchs(s *cluster.Snapshot) []string {
	var out []string
	for _, n := range s.Nodes {
		if a := n.Arch(); a != "" && !contains(out, a) {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// archTaints are the NoSchedule/NoExecute taints that every node of arch
// carries: those keep an intolerant pod off that architecture entirely. A
// taint only some pools have (a GPU pool's) is left alone: tolerating it
// would let the workload onto nodes it was kept off for other reasons.
// Taints the node lifecycle controller manages (node.kubernetes.io/...) are
// transient and never tolerated here.
func archTaints(nodes []*cluster.Node, arch string) []corev1.Taint {
	var common []corev1.Taint
	first := true
	for _, n := range nodes {
		if n.Arch() != arch {
			continue
		}
		var ts []corev1.Taint
		for _, t := range n.Taints {
			if t.Effect == corev1.TaintEffectPreferNoSchedule || strings.HasPrefix(t.Key, "node.kubernetes.io/") || strings.HasPrefix(t.Key, "node.cloudprovider.kubernetes.io/") {
				continue
			}
			ts = append(ts, corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
		}
		if first {
			common, first = ts, false
			continue
		}
		var keep []corev1.Taint
		for _, c := range common {
			for _, t := range ts {
				if c.MatchTaint(&t) && c.Value == t.Value {
					keep = append(keep, c)
					break
				}
			}
		}
		common = keep
	}
	return common
}

// writeConflicts explains why no patch is possible.
func writeConflicts(w io.Writer, what string, cs []remedy.Conflict) {
	fmt.Fprintf(w, "%s: %s: no patch is possible\n", what, remedy.CodeArchConstraintConflict)
	for _, c := range cs {
		fmt.Fprintf(w, "  %s\n", c.Message)
		if c.Path != "" {
			fmt.Fprintf(w, "    at %s", c.Path)
			if len(c.Pinned) > 0 {
				fmt.Fprintf(w, ", which admits only %s", strings.Join(c.Pinned, ", "))
			}
			fmt.Fprintln(w)
		}
		for _, e := range c.Containers {
			runs := "nothing"
			if len(e.Runs) > 0 {
				runs = strings.Join(e.Runs, ", ")
			}
			fmt.Fprintf(w, "    %s container %s (%s) runs %s: excludes %s\n", e.Role, e.Name, e.Image, runs, strings.Join(e.Excludes, ", "))
		}
	}
	fmt.Fprintln(w, "  fix the images (see `archfit diagnose` for the build advice) or the workload's own arch constraint; archfit never overwrites a pin")
}
