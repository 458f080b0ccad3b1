package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/remedy"
	renderer "github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/report"
)

// The labels and annotations Helm puts on what it installs.
const (
	helmManagedBy        = "app.kubernetes.io/managed-by"
	helmReleaseName      = "meta.helm.sh/release-name"
	helmReleaseNamespace = "meta.helm.sh/release-namespace"
)

// helmRelease names the Helm release that manages obj (from Helm's
// annotations), or "" when Helm does not manage it.
func helmRelease(obj *unstructured.Unstructured) (name, namespace string) {
	if obj == nil {
		return "", ""
	}
	a := obj.GetAnnotations()
	name, namespace = a[helmReleaseName], a[helmReleaseNamespace]
	if name == "" || obj.GetLabels()[helmManagedBy] != "Helm" {
		return "", ""
	}
	if namespace == "" {
		namespace = obj.GetNamespace()
	}
	return name, namespace
}

// helmFix places the patch in the chart's values: for --helm-chart the
// chart as given, for a live workload that Helm manages the chart and
// values of its release, read from the release's Secret. It returns nil
// (and says why on stderr) when the workload is not Helm's, or the release
// cannot be read: the object patch is printed instead.
func (o *patchOptions) helmFix(ctx context.Context, rem *remedy.Remedy, res *remedy.Result) (*remedy.HelmFix, error) {
	ns := o.namespace()
	if o.helmChart != "" {
		if ns == "" {
			ns = "default"
		}
		vals, err := renderer.Values(ctx, o.helmChart, o.helmValues, o.helmSet)
		if err != nil {
			return nil, err
		}
		c := remedy.HelmChart{Release: o.releaseName, Namespace: ns, Chart: o.helmChart, Values: vals,
			Render: func(ctx context.Context, extra map[string]any) ([]byte, error) {
				return renderer.HelmChart(ctx, o.helmChart, o.helmValues, o.helmSet, o.releaseName, ns, renderer.WithValues(extra))
			}}
		fix, err := rem.HelmValues(ctx, c)
		if err == nil && o.releaseName == renderer.DefaultReleaseName {
			fix.Notes = append(fix.Notes, "the command names the release "+renderer.DefaultReleaseName+": give --release-name, whose value the chart's object names also depend on")
		}
		return fix, err
	}
	if len(o.files) > 0 {
		return nil, nil
	}
	name, relNS := helmRelease(res.Original())
	if name == "" {
		return nil, nil
	}
	rel, err := o.readRelease(ctx, name, relNS)
	if err != nil {
		fmt.Fprintf(o.streams.ErrOut, "note: %s is managed by Helm release %s/%s, whose record cannot be read (%v): archfit cannot tell which values key reaches its pod template; the change belongs in the release's values\n", res.Object, relNS, name, err)
		return nil, nil
	}
	if len(rel.Dependencies) > 0 {
		fmt.Fprintf(o.streams.ErrOut, "note: Helm does not store subcharts in a release: the search renders %s without %s\n", rel.Chart.Name(), strings.Join(rel.Dependencies, ", "))
	}
	dir, err := os.MkdirTemp("", "archfit-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	chartPath, err := rel.WriteChart(dir)
	if err != nil {
		return nil, err
	}
	vals, err := renderer.Values(ctx, chartPath, nil, nil, renderer.WithValues(rel.Config))
	if err != nil {
		return nil, err
	}
	c := remedy.HelmChart{Release: name, Namespace: relNS, Chart: "REPO/" + rel.Chart.Name(), ChartVersion: rel.Chart.Metadata.Version, Values: vals,
		Render: func(ctx context.Context, extra map[string]any) ([]byte, error) {
			v := map[string]any{}
			mergeValues(v, rel.Config)
			mergeValues(v, extra)
			return renderer.HelmChart(ctx, chartPath, nil, nil, name, relNS, renderer.WithValues(v))
		}}
	fix, err := rem.HelmValues(ctx, c)
	if err != nil {
		if errors.Is(err, remedy.ErrNotRendered) {
			fmt.Fprintf(o.streams.ErrOut, "note: the chart of release %s/%s (revision %d) does not render %s: the object patch below is what archfit can give\n", relNS, name, rel.Revision, res.Object)
			return nil, nil
		}
		return nil, err
	}
	fix.Notes = append(fix.Notes, fmt.Sprintf("REPO: the repository %s %s was installed from (Helm does not record it), or its path", rel.Chart.Name(), rel.Chart.Metadata.Version))
	return fix, nil
}

// mergeValues merges src into dst as a values file does (maps key by key),
// copying src's maps so dst never shares them.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			mergeValues(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// maxReleaseSecrets bounds the release records listed: Helm keeps 10
// revisions by default.
const maxReleaseSecrets = 100

// readRelease reads the latest deployed revision of a Helm release from its
// Secrets (the user's own release: only when patch is run on one of its
// workloads).
func (o *patchOptions) readRelease(ctx context.Context, name, namespace string) (*renderer.Release, error) {
	cfg, err := o.configFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	sel := renderer.ReleaseOwnerLabel + "=helm," + renderer.ReleaseNameLabel + "=" + name
	list, err := cs.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: maxReleaseSecrets})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("no permission to list the Secrets of namespace %s", namespace)
		}
		return nil, err
	}
	type rev struct {
		n        int
		deployed bool
		data     []byte
	}
	var revs []rev
	for _, s := range list.Items {
		if string(s.Type) != renderer.ReleaseSecretType {
			continue
		}
		n, err := strconv.Atoi(s.Labels[renderer.ReleaseVersionLabel])
		if err != nil {
			continue
		}
		revs = append(revs, rev{n: n, deployed: s.Labels["status"] == "deployed", data: s.Data["release"]})
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("no Secret of type %s labelled %s in namespace %s", renderer.ReleaseSecretType, sel, namespace)
	}
	// The deployed revision, else the latest.
	sort.Slice(revs, func(i, j int) bool {
		if revs[i].deployed != revs[j].deployed {
			return revs[i].deployed
		}
		return revs[i].n > revs[j].n
	})
	return renderer.DecodeRelease(revs[0].data)
}

func (o *patchOptions) namespace() string {
	if o.configFlags.Namespace != nil {
		return *o.configFlags.Namespace
	}
	return ""
}

// printHelm prints the values override (a values file, with the helm
// command in its comments) or the post-renderer files.
func printHelm(w io.Writer, rem *remedy.Remedy, fix *remedy.HelmFix) error {
	allowed := strings.Join(rem.AllowedArchitectures, ", ")
	if fix.Values == nil && fix.PostRenderer == nil {
		fmt.Fprintf(w, "# %s: nothing to change in release %s\n", rem.Patch.Object, fix.Release)
		return nil
	}
	if fix.Values != nil {
		b, err := fix.ValuesYAML()
		if err != nil {
			return err
		}
		keys := make([]string, len(fix.Keys))
		for i, k := range fix.Keys {
			keys[i] = k.Path
		}
		fmt.Fprintf(w, "# values for Helm release %s that keep %s on %s\n", fix.Release, rem.Patch.Object, allowed)
		fmt.Fprintf(w, "# found by rendering the chart: %s; rendered with these values, the pod template admits only %s\n", strings.Join(keys, ", "), allowed)
		fmt.Fprintf(w, "# save as %s, then:\n#   %s\n%s", fix.ValuesFile, fix.Command, b)
		return nil
	}
	// A shell script that writes the files: it can be read, saved or
	// piped to sh; the helm command stays a comment.
	pr := fix.PostRenderer
	fmt.Fprintf(w, "# no values key of the chart keeps %s on %s: a kustomize post-renderer patch instead.\n", rem.Patch.Object, allowed)
	fmt.Fprintf(w, "# Run in an empty directory (or pipe to sh) to write the files, then, from it:\n#   %s\n", fix.Command)
	for _, f := range []struct{ name, data string }{{"kustomization.yaml", pr.Kustomization}, {pr.PatchFile, pr.Patch}, {pr.ScriptFile, pr.Script}} {
		fmt.Fprintf(w, "cat > %s <<'%s'\n%s%s\n", f.name, heredoc, f.data, heredoc)
	}
	fmt.Fprintf(w, "chmod +x %s\n", pr.ScriptFile)
	return nil
}

// heredoc ends each file: YAML that archfit writes never has it alone on a
// line.
const heredoc = "ARCHFIT_EOF"

// patchDocument is patch's -o json/yaml document: the workload's remedy,
// with where its fix belongs in a Helm chart.
func patchDocument(rem *remedy.Remedy, nodes []*cluster.Node) *report.Document {
	return &report.Document{Kind: "Patch", Remedies: []*remedy.Remedy{rem}, Nodes: report.Nodes(nodes)}
}

// withHelm sets rem.Helm for a Helm-managed workload whose patch was
// computed.
func (o *patchOptions) withHelm(ctx context.Context, rem *remedy.Remedy) error {
	if rem.Patch == nil || rem.Patch.Result == nil || len(rem.Patch.Conflicts) > 0 {
		return nil
	}
	fix, err := o.helmFix(ctx, rem, rem.Patch.Result)
	if err != nil {
		return err
	}
	rem.Helm = fix
	return nil
}
