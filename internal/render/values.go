package render

import (
	"context"
	"fmt"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

// WithValues merges v over a chart's values files and --set expressions,
// as a later `helm upgrade -f` file does: maps merge key by key, anything
// else is replaced. v is not modified.
func WithValues(v map[string]any) Option {
	return func(o *options) { o.values = v }
}

// Values returns the values a chart's templates see as .Values when
// HelmChart renders it with the same arguments: the chart's defaults,
// each enabled subchart's under its alias or name, the values files, the
// --set expressions and WithValues, coalesced as Helm does. The chart is
// checked as HelmChart checks it; no template is run.
func Values(ctx context.Context, chartPath string, valuesFiles []string, set []string, opts ...Option) (map[string]any, error) {
	o := newOptions(opts)
	var vals map[string]any
	_, err := bounded(ctx, o, "the values of chart "+chartPath, false, func() ([]byte, error) {
		if err := checkLinks(chartPath); err != nil {
			return nil, fmt.Errorf("loading chart %s: %w", chartPath, err)
		}
		chrt, err := loader.Load(chartPath)
		if err != nil {
			return nil, fmt.Errorf("loading chart %s: %w", chartPath, err)
		}
		user, err := userValues(valuesFiles, set)
		if err != nil {
			return nil, err
		}
		mergeInto(user, copyValues(o.values))
		missing := missingDependencies(chrt, "")
		if err := chartutil.ProcessDependenciesWithMerge(chrt, user); err != nil {
			return nil, fmt.Errorf("chart %s: processing dependencies: %w", chartPath, err)
		}
		if _, err := checkDependencies(chrt, missing, chartPath); err != nil {
			return nil, fmt.Errorf("chart %s: %w", chartPath, err)
		}
		if err := checkSchemaRefs(chrt); err != nil {
			return nil, fmt.Errorf("chart %s: %w", chartPath, err)
		}
		v, err := chartutil.CoalesceValues(chrt, user)
		if err != nil {
			return nil, fmt.Errorf("chart %s: values: %w", chartPath, err)
		}
		vals = v
		return nil, nil
	})
	return vals, err
}

// copyValues copies the maps and lists of a values tree, so that merging
// into the copy leaves the original as it was.
func copyValues(v map[string]any) map[string]any {
	if v == nil {
		return nil
	}
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = copyValue(x)
	}
	return out
}

func copyValue(x any) any {
	switch t := x.(type) {
	case map[string]any:
		return copyValues(t)
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = copyValue(e)
		}
		return s
	}
	return x
}
