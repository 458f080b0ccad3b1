package render

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
)

// Helm v3 keeps each revision of a release in a Secret of this type named
// sh.helm.release.v1.NAME.vREVISION, labelled with ReleaseOwnerLabel,
// ReleaseNameLabel and ReleaseVersionLabel.
const (
	ReleaseSecretType   = "helm.sh/release.v1"
	ReleaseOwnerLabel   = "owner" // "helm"
	ReleaseNameLabel    = "name"
	ReleaseVersionLabel = "version"
)

// MaxReleaseBytes bounds a release record once decompressed: Kubernetes
// keeps a Secret under 1 MiB, but gzip packs far more than that into it.
const MaxReleaseBytes = 32 << 20

// ErrReleaseTooLarge: a release record decompresses to more than
// MaxReleaseBytes.
var ErrReleaseTooLarge = errors.New("helm release record is too large")

// Release is what archfit reads of a stored Helm release: the chart it was
// installed from (templates, default values, files; not its subcharts,
// which Helm does not store) and the values the user gave.
type Release struct {
	Name      string
	Namespace string
	Revision  int
	Chart     *chart.Chart
	// Config are the user-supplied values (helm get values).
	Config map[string]any
	// Dependencies lists the subcharts the chart declares and the record
	// does not hold.
	Dependencies []string
}

// DecodeRelease decodes the "release" field of a Helm release Secret:
// base64 of the gzipped JSON of the release (or of the bare JSON, as Helm
// stored it before it compressed). The decompressed size is bounded by
// MaxReleaseBytes before the JSON is parsed.
func DecodeRelease(data []byte) (*Release, error) {
	b := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(b, data)
	if err != nil {
		return nil, fmt.Errorf("decoding helm release: %w", err)
	}
	b = b[:n]
	if len(b) > 3 && bytes.Equal(b[:3], []byte{0x1f, 0x8b, 0x08}) {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("decoding helm release: %w", err)
		}
		defer zr.Close()
		if b, err = io.ReadAll(io.LimitReader(zr, MaxReleaseBytes+1)); err != nil {
			return nil, fmt.Errorf("decoding helm release: %w", err)
		}
	}
	if len(b) > MaxReleaseBytes {
		return nil, fmt.Errorf("decoding helm release: %w (over %d MiB)", ErrReleaseTooLarge, MaxReleaseBytes>>20)
	}
	var rls release.Release
	if err := json.Unmarshal(b, &rls); err != nil {
		return nil, fmt.Errorf("decoding helm release: %w", err)
	}
	if rls.Chart == nil || rls.Chart.Metadata == nil {
		return nil, errors.New("decoding helm release: it holds no chart")
	}
	r := &Release{Name: rls.Name, Namespace: rls.Namespace, Revision: rls.Version, Chart: rls.Chart, Config: rls.Config}
	for _, d := range rls.Chart.Metadata.Dependencies {
		if d != nil {
			r.Dependencies = append(r.Dependencies, d.Name)
		}
	}
	return r, nil
}

// WriteChart packages the release's chart as NAME-VERSION.tgz in dir, for
// HelmChart to render like any chart given on the command line (and
// through the same checks). Helm stores no subcharts in a release, so the
// declared dependencies are dropped: their templates are not rendered and
// their default values are missing.
func (r *Release) WriteChart(dir string) (string, error) {
	c := *r.Chart
	md := *c.Metadata
	md.Dependencies = nil
	c.Metadata = &md
	c.Lock = nil
	// Save writes values.yaml from Raw, which the record does not keep.
	vals, err := yaml.Marshal(c.Values)
	if err != nil {
		return "", fmt.Errorf("writing the chart of release %s: %w", r.Name, err)
	}
	c.Raw = []*chart.File{{Name: chartutil.ValuesfileName, Data: vals}}
	p, err := chartutil.Save(&c, dir)
	if err != nil {
		return "", fmt.Errorf("writing the chart of release %s: %w", r.Name, err)
	}
	return p, nil
}
