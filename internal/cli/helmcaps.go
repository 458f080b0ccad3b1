package cli

import (
	"context"

	renderer "github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/render/discover"
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
