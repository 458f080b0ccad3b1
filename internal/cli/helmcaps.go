package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	renderer "github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/render/discover"
	"github.com/archfit/archfit/internal/report"
)

// namedCluster tells whether the user named a cluster with kubectl's
// flags (--kubeconfig, --context, --cluster, --server). A kubeconfig that
// is merely there ($KUBECONFIG, ~/.kube/config) does not count: a chart
// render is offline unless the user asks for a cluster.
func (o *fleetOptions) namedCluster() bool {
	f := o.configFlags
	for _, s := range []*string{f.KubeConfig, f.Context, f.ClusterName, f.APIServer} {
		if s != nil && *s != "" {
			return true
		}
	}
	return false
}

// chartCapabilities are what --helm-chart renders for: the named
// cluster's version and API versions (read with its discovery), else
// renderer.DefaultKubeVersion and Helm's default API versions;
// --kube-version replaces the version, --api-versions are added.
func (o *fleetOptions) chartCapabilities(ctx context.Context) (renderer.Capabilities, error) {
	var caps renderer.Capabilities
	if o.namedCluster() {
		cfg, err := o.configFlags.ToRESTConfig()
		if err != nil {
			return caps, err
		}
		ctx, cancel := context.WithTimeout(ctx, discover.DefaultTimeout)
		defer cancel()
		if caps, err = discover.Capabilities(ctx, cfg); err != nil {
			return caps, err
		}
	}
	if o.kubeVersion != "" {
		caps.KubeVersion, caps.Source = o.kubeVersion, "--kube-version"
	}
	caps.ExtraAPIVersions = o.apiVersions
	return caps, nil
}

func capsSource(c renderer.Capabilities) string {
	if c.Source != "" {
		return c.Source
	}
	return "archfit's default; --kube-version sets another"
}

// withHelmTests lists a chart's helm test hooks apart from the workloads:
// in extra.helmTests, and after the text output. They are not audited:
// `helm install` does not create them and readiness does not count them.
func withHelmTests(doc *report.Document, tests []renderer.TestHook) {
	if len(tests) == 0 {
		return
	}
	doc.Extra["helmTests"] = tests
	text := doc.Text
	doc.Text = func(w io.Writer, d *report.Document) error {
		if text != nil {
			if err := text(w, d); err != nil {
				return err
			}
		}
		fmt.Fprintln(w, "\nHelm test hooks (run by helm test, not installed; not audited, not counted in readiness):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, t := range tests {
			fmt.Fprintf(tw, "  %s/%s/%s\t%s\t%s\n", t.Namespace, t.Kind, t.Name, t.Template, strings.Join(t.Images, " "))
		}
		return tw.Flush()
	}
}
