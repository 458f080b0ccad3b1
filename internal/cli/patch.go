package cli

import (
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/report"

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
	renderer "github.com/archfit/archfit/internal/render"
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
	output      string
	helmChart   string
	helmValues  []string
	helmSet     []string
	releaseName string

	allowUnverified bool
	unread          *report.Incomplete // the workload's images that could not be read

	target  cluster.Target
	fmt     remedy.Format
	allowIn []string // --arch, canonical
	stdin   []byte   // read once when -f - is given
	// formatSet: --format was given, so the object patch is printed even
	// for a Helm-managed workload.
	formatSet bool

	dockerfiles dockerfileAdvice
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
patched manifest and changes nothing; it never deletes anything.

For a Helm-managed workload (--helm-chart, or a live object with Helm's
labels, whose release record archfit then reads) the fix belongs in the
chart's values: patch renders the chart with a sentinel at candidate values
keys to find the one that reaches the pod template's affinity, and prints the
values override with its helm upgrade command; when no key reaches it, a
kustomize post-renderer patch. --format prints the object patch instead.`,
		Example: `  archfit patch deployment/api -n shop
  archfit patch deployment/api -n shop --format kubectl
  archfit patch deployment/api -n shop --apply
  archfit patch deploy/api -f k8s/api.yaml --arch amd64,arm64 --format yaml --write
  archfit patch cronjob/report -f manifests/ --arch amd64,arm64 --format kustomize
  archfit patch deployment/edge-ingress-nginx-controller --helm-chart ./ingress-nginx --release-name edge -n ingress --arch amd64,arm64`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(cmd, args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			err := o.run(cmd.Context())
			if dErr := o.dockerfiles.err(); dErr != nil {
				// archfit failed on some input: that outranks any
				// finding, and an error of the patch is kept in words.
				if err != nil {
					return fmt.Errorf("%v\n%w", err, dErr)
				}
				return dErr
			}
			return err
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
	fs.BoolVar(&o.write, "write", false, "with -f FILE and --format yaml, write the patched manifest back into the file it came from, changing only the lines of the patch")
	fs.BoolVar(&o.allowUnverified, "allow-unverified", false, "print (or apply) the patch even when some of the workload's images could not be read: the allowed architectures then ignore those images, and the patch says so (refused with exit 4 otherwise)")
	fs.StringVarP(&o.output, "output", "o", "text", "output: text (the patch), or json or yaml (the workload's remedy, with where the fix belongs in a Helm chart)")
	fs.StringVar(&o.helmChart, "helm-chart", "", "render this Helm chart (directory or .tgz) offline and patch the workload in it: prints the values override that fixes it")
	fs.StringSliceVar(&o.helmValues, "values", nil, "with --helm-chart, values files merged in order (repeatable)")
	fs.StringArrayVar(&o.helmSet, "set", nil, "with --helm-chart, set values as helm --set does (repeatable)")
	fs.StringVar(&o.releaseName, "release-name", renderer.DefaultReleaseName, "with --helm-chart, the release name (the release namespace is -n, else \"default\")")
	o.dockerfiles.addFlag(fs)
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
	o.formatSet = cmd != nil && cmd.Flags().Changed("format")
	if o.write && !o.formatSet {
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
		// Read once (the loader and --format yaml both need it), bounded as
		// the loader bounds every input.
		b, err := io.ReadAll(io.LimitReader(o.streams.In, cluster.MaxInputBytes+1))
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		if len(b) > cluster.MaxInputBytes {
			return fmt.Errorf("reading stdin: %w (%d bytes)", cluster.ErrTooLarge, cluster.MaxInputBytes)
		}
		o.stdin = b
	}
	return o.dockerfiles.parse()
}

func (o *patchOptions) validate() error {
	if !contains(formatStrings(), string(o.fmt)) {
		return fmt.Errorf("--format %q: want one of %s", o.format, formatList())
	}
	if len(o.archs) > 0 && len(o.allowIn) == 0 {
		return fmt.Errorf("--arch names no architecture")
	}
	if o.output != "text" && o.output != "json" && o.output != "yaml" {
		return fmt.Errorf("-o %q: want text, json or yaml", o.output)
	}
	if o.helmChart == "" && (len(o.helmValues) > 0 || len(o.helmSet) > 0) {
		return errors.New("--values and --set need --helm-chart")
	}
	if o.helmChart != "" && (o.apply || o.write) {
		return errors.New("--helm-chart prints the values that fix the chart; --apply and --write do not go with it (save the output as the values file)")
	}
	if o.output != "text" && (o.apply || o.write) {
		return fmt.Errorf("-o %s prints the remedy; --apply and --write do not go with it", o.output)
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
	if o.helmChart != "" {
		fo := &fleetOptions{streams: o.streams, configFlags: o.configFlags, files: o.files, recursive: o.recursive,
			helmChart: o.helmChart, helmValues: o.helmValues, helmSet: o.helmSet, releaseName: o.releaseName}
		if len(o.stdin) > 0 {
			fo.streams.In = bytes.NewReader(o.stdin)
		}
		snap, docErrs, err := fo.loadFiles(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range docErrs {
			fmt.Fprintf(o.streams.ErrOut, "warning: %v\n", e)
		}
		if ns == "" {
			ns = "default" // the release namespace of the render
		}
		sel, err = snap.Select(ns, &o.target)
		return sel, snap, err
	}
	if len(o.files) == 0 {
		snap, err := cluster.LoadLive(ctx, o.configFlags, cluster.LiveOptions{Target: &o.target, Logs: cluster.LogsNone})
		if err != nil {
			return nil, nil, err
		}
		return snap, snap, nil
	}
	snap, docErrs, err := cluster.LoadFiles(ctx, o.files, bytes.NewReader(o.stdin), cluster.Recursive(o.recursive), cluster.DefaultNamespace(fileNamespace(o.configFlags)))
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
	w, err := sel.One(o.target)
	if err != nil {
		return err
	}
	if w.Original == nil {
		return fmt.Errorf("%s is not in the input (%s): nothing to patch; add it with -f", w.Ref, w.Inferred)
	}
	if len(o.allowIn) == 0 && len(sel.Nodes) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "warning: the input has no nodes and --arch was not given: only the images restrict the architectures")
	}
	images, err := o.inspect(ctx, w, sel)
	if err != nil {
		return err
	}
	var applier *apply.Applier
	if o.apply || (len(o.files) == 0 && o.helmChart == "") {
		if applier, err = o.applier(); err != nil {
			return err
		}
	}
	lookup := all.Object
	if len(o.files) == 0 && o.helmChart == "" {
		lookup = func(r object.Ref) (*unstructured.Unstructured, error) { return applier.Get(ctx, r) }
	}
	rem := remedy.ForWorkload(remedy.Input{Workload: w, Nodes: sel.Nodes, Architectures: o.allowIn,
		Images: images, Verify: true, Lookup: lookup})
	for _, n := range rem.Notes {
		fmt.Fprintf(o.streams.ErrOut, "note: %s\n", n)
	}
	o.dockerfiles.analyze()
	o.dockerfiles.attach(o.streams.ErrOut, remedyAdvice([]*remedy.Remedy{rem}))
	if o.output == "text" {
		// stdout is the patch: what blocks the build goes with the notes.
		for _, b := range rem.Build {
			if len(b.Dockerfiles) > 0 {
				what := "every platform (mislabeled entries)"
				if len(b.Missing) > 0 {
					what = strings.Join(b.Missing, ", ")
				}
				fmt.Fprintf(o.streams.ErrOut, "for good: rebuild %s for %s\n", b.Image, what)
				report.DockerfileChecksText(o.streams.ErrOut, "  ", b.Dockerfiles)
			}
		}
	}
	if o.output != "text" {
		// The document always; where the fix belongs in a chart only for
		// an answer that rests on read images (or --allow-unverified).
		o.unread = report.Unread(images.All())
		incomplete := len(rem.Unverified) > 0 && !o.allowUnverified
		if rem.Conflict == nil && !incomplete {
			if err := o.withHelm(ctx, rem); err != nil {
				return err
			}
		}
		doc := patchDocument(rem, sel.Nodes)
		if o.output == "yaml" {
			err = report.YAML(o.streams.Out, doc)
		} else {
			err = report.JSON(o.streams.Out, doc)
		}
		switch {
		case err != nil:
			return err
		case rem.Conflict != nil:
			return &FindingsError{Count: 1}
		case incomplete:
			return o.incompleteError(rem, fmt.Sprintf("no patch for %s: its allowed architectures would rest on %s", w.Ref, o.unverified(rem)))
		}
		return nil
	}
	if rem.Conflict != nil {
		// Known from the images that were read: unread ones cannot undo it.
		report.ConflictsText(o.streams.Out, w.Ref.String(), []remedy.Conflict{*rem.Conflict})
		return &FindingsError{Count: 1}
	}
	o.unread = report.Unread(images.All())
	if len(rem.Unverified) > 0 {
		if !o.allowUnverified {
			if o.unread != nil {
				fmt.Fprintf(o.streams.ErrOut, "%s:\n", o.unread.Headline())
				report.UnreadText(o.streams.ErrOut, o.unread)
			}
			return o.incompleteError(rem, fmt.Sprintf("no patch for %s: its allowed architectures would rest on %s", w.Ref, o.unverified(rem)))
		}
		fmt.Fprintf(o.streams.ErrOut, "warning: --allow-unverified: the allowed architectures do not take into account %s\n", o.unverified(rem))
	}
	if len(rem.AllowedArchitectures) == 0 {
		return o.incompleteError(rem, fmt.Sprintf("no image of %s could be read: no architecture to allow (give --arch to state it)", w.Ref))
	}
	fmt.Fprintf(o.streams.ErrOut, "%s: allowed architectures %s\n", w.Ref, strings.Join(rem.AllowedArchitectures, ", "))
	if rem.PatchError != "" {
		return errors.New(rem.PatchError)
	}
	res := rem.Patch.Result
	for _, n := range res.Notes {
		fmt.Fprintf(o.streams.ErrOut, "note: %s\n", n)
	}
	if o.apply {
		managed := (*cluster.Ref)(nil)
		if res.Object.ID() == w.Ref.ID() {
			managed = w.ManagedBy
		}
		return o.applyLive(ctx, applier, rem, res.Original(), managed)
	}
	if !o.formatSet && len(res.Conflicts) == 0 {
		if err := o.withHelm(ctx, rem); err != nil {
			return err
		}
		if rem.Helm != nil {
			for _, n := range rem.Helm.Notes {
				fmt.Fprintf(o.streams.ErrOut, "note: %s\n", n)
			}
			fmt.Fprint(o.streams.Out, o.unverifiedComment(rem))
			return printHelm(o.streams.Out, rem, rem.Helm)
		}
	}
	return o.print(rem, res)
}

// unverified names the containers of rem whose image could not be read,
// with the image and why: "app (example.com/app:1: unreachable)".
func (o *patchOptions) unverified(rem *remedy.Remedy) string {
	var out []string
	for _, name := range rem.Unverified {
		s := name
		for _, c := range rem.Containers {
			if c.Name == name {
				s += " (" + c.Image
				if r := o.unread.Reason(c.Image); r != "" {
					s += ": " + r
				}
				s += ")"
				break
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// incompleteError is the exit-4 error of a patch that would rest on
// unread images.
func (o *patchOptions) incompleteError(rem *remedy.Remedy, detail string) error {
	e := &IncompleteError{Unread: len(rem.Unverified), Images: len(rem.Containers), Detail: detail}
	if o.unread != nil {
		e.Unread, e.Images = o.unread.UnreadImages, o.unread.Images
	}
	return e
}

// isJSON says whether b is a JSON document (a .json manifest edited in
// place stays JSON).
func isJSON(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// unverifiedComment is the comment that heads a patch printed with
// --allow-unverified: which images its allowed architectures ignore.
func (o *patchOptions) unverifiedComment(rem *remedy.Remedy) string {
	if len(rem.Unverified) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# archfit: the allowed architectures (%s) rest on unread images (--allow-unverified):\n", strings.Join(rem.AllowedArchitectures, ", "))
	seen := map[string]bool{}
	for _, c := range rem.Containers {
		if !c.Unknown || seen[c.Image] {
			continue
		}
		seen[c.Image] = true
		reason := o.unread.Reason(c.Image)
		if reason == "" {
			reason = "not inspected"
		}
		fmt.Fprintf(&b, "# unverified: %s (%s)\n", c.Image, reason)
	}
	return b.String()
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
func (o *patchOptions) print(rem *remedy.Remedy, res *remedy.Result) error {
	if len(res.Conflicts) > 0 {
		report.ConflictsText(o.streams.Out, res.Object.String(), res.Conflicts)
		return &FindingsError{Count: len(res.Conflicts)}
	}
	var srcPath string
	if o.fmt == remedy.FormatYAML && len(o.files) > 0 {
		ns := fileNamespace(o.configFlags)
		src, err := remedy.FindSource(o.files, o.recursive, remedy.SourceFile{Path: cluster.StdinName, Data: o.stdin}, res.Object, ns)
		if err != nil {
			return err
		}
		if src != nil {
			srcPath = src.Path
			if res, err = rem.Repatch(res.Original(), remedy.FromSource(src)); err != nil {
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
	if n := res.EditNote(); n != "" {
		fmt.Fprintf(o.streams.ErrOut, "note: %s: %s\n", srcPath, n)
	}
	// Recreate and Immutable are explained by res.Notes, printed already.
	if !res.Changed {
		fmt.Fprintf(o.streams.ErrOut, "%s is already kept on %s: nothing to patch\n", res.Object, strings.Join(rem.AllowedArchitectures, ", "))
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
	switch o.fmt {
	case remedy.FormatKubectl, remedy.FormatKustomize, remedy.FormatYAML:
		// Formats with comments carry the warning with the patch; JSON
		// has none (the warning went to stderr), nor has a .json source
		// edited by the yaml format.
		if c := o.unverifiedComment(rem); c != "" && !isJSON(out) {
			out = append([]byte(c), out...)
		}
	}
	_, err = o.streams.Out.Write(out)
	return err
}

// applyLive re-reads the object, recomputes the patch against what is live
// now, and applies it after a server-side dry run.
func (o *patchOptions) applyLive(ctx context.Context, a *apply.Applier, rem *remedy.Remedy, obj *unstructured.Unstructured, operator *cluster.Ref) error {
	allowed := rem.AllowedArchitectures
	ref := object.Ref{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
	live, err := a.Get(ctx, ref)
	if err != nil {
		return err
	}
	res, err := rem.Repatch(live)
	if err != nil {
		return err
	}
	if len(res.Conflicts) > 0 {
		report.ConflictsText(o.streams.Out, res.Object.String(), res.Conflicts)
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
	case errors.As(err, &managed) && managed.Owners[0].Tool == apply.Helm:
		// The fix belongs in the release's values: find the key.
		if herr := o.withHelm(ctx, rem); herr != nil || rem.Helm == nil {
			return o.refuseManaged(res, managed)
		}
		fmt.Fprintf(o.streams.ErrOut, "%s is managed by Helm (%s): not applied; change the release's values instead:\n", res.Object, strings.Join(managed.Owners[0].Evidence, ", "))
		if err := printHelm(o.streams.Out, rem, rem.Helm); err != nil {
			return err
		}
		return managed
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

// inspect inspects the workload's images (verified, with each container's
// command, args and PATH), with the workload's own pull secrets on a live
// cluster.
func (o *patchOptions) inspect(ctx context.Context, w *cluster.Workload, sel *cluster.Snapshot) (*image.Set, error) {
	var reqs []image.Request
	for _, c := range w.Containers {
		if c.Role != cluster.RoleEphemeral && c.Image != "" {
			reqs = append(reqs, image.ForContainer(w.ContainerSpec(c.Name, c.Image), true))
		}
	}
	reqs = image.Requests(reqs)
	if len(reqs) == 0 {
		return image.NewSet(nil, nil), nil
	}
	if len(o.files) == 0 && o.helmChart == "" && !o.images.offline() {
		// Live: the workload's own pull secrets open its private registry.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace}, Spec: w.Template.Spec}
		var err error
		if o.images.pullSecrets, err = cluster.ReadPullSecrets(ctx, o.configFlags, []*corev1.Pod{pod}, true, o.streams.ErrOut); err != nil {
			return nil, err
		}
		if err := o.images.withCredentials(reqs, o.streams.ErrOut); err != nil {
			return nil, err
		}
	}
	res, err := o.images.resolver(o.streams.ErrOut, true, sel.NodePlatforms()...)
	if err != nil {
		return nil, err
	}
	reps := res.InspectAll(ctx, reqs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, r := range reps {
		if r != nil && r.Error != nil {
			fmt.Fprintf(o.streams.ErrOut, "warning: cannot read %s: %s: %s\n", r.Reference, r.Error.Reason, r.Error.Detail)
		}
	}
	return image.NewSet(reqs, reps), nil
}
