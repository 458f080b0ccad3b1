package render

import (
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
)

// DefaultKubeVersion is the Kubernetes version a chart is rendered for
// when none is given. Helm's own builds take theirs from the client-go
// they are built with (client-go v0.N is Kubernetes v1.N.0); this is the
// same rule applied to the client-go archfit is built with (a test holds
// it to go.mod). Helm's library left alone says v1.20.0, which charts
// that need a current Kubernetes refuse.
const DefaultKubeVersion = "v1.37.0"

// maxAPIVersions bounds the API versions a render is given (from a flag
// or a cluster's discovery): a large cluster serves a few thousand
// group/version/kind names.
const maxAPIVersions = 50000

// Capabilities are what .Capabilities holds for the templates.
type Capabilities struct {
	// KubeVersion is the Kubernetes version (v1.37.2); "" means
	// DefaultKubeVersion.
	KubeVersion string
	// KubeMajor and KubeMinor, when set, are a cluster's own (its
	// /version): then KubeVersion is taken as it is, as helm install
	// takes the cluster's (v1.31.4-eks-2d5f260, minor "31+"). Otherwise
	// KubeVersion is parsed as helm template --kube-version parses it.
	KubeMajor, KubeMinor string
	// APIVersions replace Helm's default set (the group/versions and
	// group/version/kinds of the client-go archfit is built with) when
	// not nil: a cluster's served set.
	APIVersions []string
	// ExtraAPIVersions are added to them, as helm template
	// --api-versions adds to its default set.
	ExtraAPIVersions []string
	// Source says where KubeVersion comes from, for messages ("the
	// default", "--kube-version", "the cluster at https://...").
	Source string
}

// WithCapabilities sets the Kubernetes version and API versions a chart
// is rendered for.
func WithCapabilities(c Capabilities) Option {
	return func(o *options) { o.caps = c }
}

// ParseKubeVersion checks a Kubernetes version as helm template
// --kube-version reads it (1.30, v1.30.2, 1.30.2-gke.100).
func ParseKubeVersion(v string) error {
	_, err := chartutil.ParseKubeVersion(v)
	return err
}

func (c Capabilities) source() string {
	if c.Source != "" {
		return c.Source
	}
	if c.KubeVersion == "" {
		return "archfit's default; --kube-version sets another"
	}
	return "--kube-version"
}

// helm returns Helm's capabilities for c.
func (c Capabilities) helm() (*chartutil.Capabilities, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	v := c.KubeVersion
	if v == "" {
		v = DefaultKubeVersion
	}
	kv, err := chartutil.ParseKubeVersion(v)
	if err != nil {
		return nil, fmt.Errorf("kube version %q: %w", v, err)
	}
	caps.KubeVersion = *kv
	if c.KubeMajor != "" && c.KubeMinor != "" {
		caps.KubeVersion = chartutil.KubeVersion{Version: v, Major: c.KubeMajor, Minor: c.KubeMinor}
	}
	if len(c.APIVersions)+len(c.ExtraAPIVersions) > maxAPIVersions {
		return nil, fmt.Errorf("%d API versions, more than the limit of %d", len(c.APIVersions)+len(c.ExtraAPIVersions), maxAPIVersions)
	}
	base := c.APIVersions
	if base == nil {
		base = chartutil.DefaultVersionSet
	}
	set := make(chartutil.VersionSet, 0, len(base)+len(c.ExtraAPIVersions))
	set = append(set, base...)
	for _, a := range c.ExtraAPIVersions {
		if a = strings.TrimSpace(a); a != "" {
			set = append(set, a)
		}
	}
	caps.APIVersions = set
	return caps, nil
}
