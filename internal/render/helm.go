package render

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
)

// DefaultReleaseName is the release name `helm template` uses when none is
// given.
const DefaultReleaseName = "release-name"

// SourcePrefix starts the comment before each rendered chart document that
// names the template it came from, as in `helm template` output.
const SourcePrefix = "# Source: "

// HelmChart renders the chart at chartPath (a directory or a packaged .tgz)
// offline, as `helm template` does: values files merged in order, then each
// --set expression, subcharts enabled by their conditions and tags, the
// values schema checked, and the capabilities of WithCapabilities (by
// default DefaultKubeVersion and Helm's default API versions; no cluster,
// so lookup returns nothing). The output is the manifests in Helm's
// install order followed by the hooks, helm test hooks included, each
// document preceded by a "# Source:" comment. NOTES.txt and the crds/
// directory are left out. Workloads whose template names no namespace get
// the release namespace, where helm install would create them (hooks and
// tests too). RenderChart returns the same render with the tests apart.
//
// The chart is not trusted: files that resolve outside it (symbolic links,
// archive entries with .. or absolute names) and schema references to
// other documents are refused, and the render stops at the time and output
// limits (WithTimeout, WithMaxOutput) or when ctx is done.
func HelmChart(ctx context.Context, chartPath string, valuesFiles []string, set []string, releaseName, namespace string, opts ...Option) ([]byte, error) {
	c, err := RenderChart(ctx, chartPath, valuesFiles, set, releaseName, namespace, opts...)
	if err != nil {
		return nil, err
	}
	return append(c.Manifests, c.Tests...), nil
}

// Chart is a rendered chart.
type Chart struct {
	// Manifests are the manifests and the hooks other than helm test
	// hooks, as HelmChart prints them.
	Manifests []byte
	// Tests are the helm test hooks (helm.sh/hook: test, or Helm 2's
	// test-success), in the same form: `helm test` runs them, they are not
	// part of the release's workloads.
	Tests []byte
	// Skipped are the dependencies missing from charts/ that the values
	// disable, rendered without (Helm would refuse the chart).
	Skipped []SkippedDependency
	// KubeVersion and APIVersions are the capabilities the templates saw.
	KubeVersion string
	APIVersions []string
}

// RenderChart renders as HelmChart does and returns the helm test hooks
// apart from the rest.
func RenderChart(ctx context.Context, chartPath string, valuesFiles []string, set []string, releaseName, namespace string, opts ...Option) (*Chart, error) {
	o := newOptions(opts)
	var c *Chart
	_, err := bounded(ctx, o, "chart "+chartPath, true, func() ([]byte, error) {
		var err error
		c, err = helmChart(chartPath, valuesFiles, set, releaseName, namespace, o)
		if err != nil {
			return nil, err
		}
		// bounded checks the size of all of it.
		return append(append([]byte{}, c.Manifests...), c.Tests...), nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func helmChart(chartPath string, valuesFiles []string, set []string, releaseName, namespace string, o options) (*Chart, error) {
	maxOutput := o.maxOutput
	if releaseName == "" {
		releaseName = DefaultReleaseName
	}
	if namespace == "" {
		namespace = "default"
	}
	caps, err := o.caps.helm()
	if err != nil {
		return nil, err
	}
	if err := checkLinks(chartPath); err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", chartPath, err)
	}
	chrt, err := loader.Load(chartPath)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", chartPath, err)
	}
	if t := chrt.Metadata.Type; t != "" && t != "application" {
		return nil, fmt.Errorf("chart %s: a %s chart cannot be installed", chartPath, t)
	}
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s requires kubeVersion %s, incompatible with Kubernetes %s (%s)", chartPath, kv, caps.KubeVersion.String(), o.caps.source())
	}
	vals, err := userValues(valuesFiles, set)
	if err != nil {
		return nil, err
	}
	mergeInto(vals, copyValues(o.values)) // WithValues
	missing := missingDependencies(chrt, "")
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, fmt.Errorf("chart %s: processing dependencies: %w", chartPath, err)
	}
	skipped, err := checkDependencies(chrt, missing, chartPath)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", chartPath, err)
	}
	if err := checkSchemaRefs(chrt); err != nil {
		return nil, fmt.Errorf("chart %s: %w", chartPath, err)
	}
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	renderVals, err := chartutil.ToRenderValues(chrt, vals, opts, caps)
	if err != nil {
		return nil, fmt.Errorf("chart %s: values: %w", chartPath, err)
	}
	files, err := engine.Engine{}.Render(chrt, renderVals)
	if err != nil {
		// Helm's message names the template file and line.
		return nil, fmt.Errorf("rendering chart %s: %w", chartPath, err)
	}
	size := 0
	for name, f := range files {
		if path.Base(name) == "NOTES.txt" {
			delete(files, name)
		}
		size += len(f)
	}
	// Before Helm parses it all.
	if size > maxOutput {
		return nil, fmt.Errorf("rendering chart %s: %w (%d bytes, the limit is %d)", chartPath, ErrOutputTooLarge, size, maxOutput)
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("rendering chart %s: %w", chartPath, err)
	}
	var b, tests bytes.Buffer
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n%s%s\n%s\n", SourcePrefix, m.Name, withNamespace(m.Content, namespace))
	}
	for _, h := range hooks {
		w := &b
		if isTest(h) {
			w = &tests
		}
		fmt.Fprintf(w, "---\n%s%s\n%s\n", SourcePrefix, h.Path, withNamespace(h.Manifest, namespace))
	}
	return &Chart{Manifests: b.Bytes(), Tests: tests.Bytes(), Skipped: skipped,
		KubeVersion: caps.KubeVersion.Version, APIVersions: caps.APIVersions}, nil
}

// isTest tells a helm test hook: `helm install` leaves it alone, `helm
// test` runs it.
func isTest(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// workloadKinds are the namespaced kinds archfit reads from a render.
var workloadKinds = map[string]bool{"Pod": true, "Deployment": true, "ReplicaSet": true, "StatefulSet": true,
	"DaemonSet": true, "Job": true, "CronJob": true, "PodTemplate": true, "Rollout": true}

// withNamespace gives a workload document that names no namespace the
// release namespace, as helm install does when it creates it; everything
// else (cluster-scoped kinds, documents that do not parse, documents with a
// namespace) is returned unchanged.
func withNamespace(doc, namespace string) string {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
		return doc
	}
	root := n.Content[0]
	kind, meta := "", (*yaml.Node)(nil)
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "kind":
			kind = root.Content[i+1].Value
		case "metadata":
			meta = root.Content[i+1]
		}
	}
	if !workloadKinds[kind] || meta == nil || meta.Kind != yaml.MappingNode {
		return doc
	}
	for i := 0; i+1 < len(meta.Content); i += 2 {
		if meta.Content[i].Value == "namespace" {
			return doc
		}
	}
	meta.Content = append(meta.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Value: "namespace"},
		&yaml.Node{Kind: yaml.ScalarNode, Value: namespace})
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return doc
	}
	return strings.TrimRight(out.String(), "\n")
}

// userValues merges the values files in order (a later file wins, maps
// merge key by key) and then applies each --set expression.
func userValues(files, set []string) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading values: %w", err)
		}
		v, err := chartutil.ReadValues(data)
		if err != nil {
			return nil, fmt.Errorf("reading values %s: %w", f, err)
		}
		mergeInto(vals, v)
	}
	for _, s := range set {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return vals, nil
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		sm, ok := v.(map[string]any)
		if dm, ok2 := dst[k].(map[string]any); ok && ok2 {
			mergeInto(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// SourceAt names the template that produced line (1-based) of HelmChart's
// output: the last "# Source:" comment at or before it, or "" when none.
func SourceAt(rendered []byte, line int) string {
	src := ""
	for i, l := range bytes.Split(rendered, []byte("\n")) {
		if i >= line {
			break
		}
		if s, ok := bytes.CutPrefix(l, []byte(SourcePrefix)); ok {
			src = string(s)
		}
	}
	return src
}
