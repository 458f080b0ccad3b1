package render

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
)

// SkippedDependency is a dependency the chart lists but charts/ does not
// hold, which the values disable: the chart was rendered without it.
type SkippedDependency struct {
	// Chart is the chart that lists it (a subchart is named by its path,
	// parent.child).
	Chart string `json:"chart"`
	// Name is the dependency's name (its alias, if it has one), Version
	// and Repository what the chart asks for.
	Name       string `json:"name"`
	Version    string `json:"version,omitempty"`
	Repository string `json:"repository,omitempty"`
	// Why says what disables it: its condition or its tags.
	Why string `json:"why"`
}

func (s SkippedDependency) String() string {
	return fmt.Sprintf("chart %s: dependency %s is not in charts/ and %s: rendered without it", s.Chart, s.Name, s.Why)
}

// dependency is what a chart lists about one of its dependencies, copied
// before Helm's processing rewrites the list.
type dependency struct {
	name, alias, version, repository, condition string
	tags                                        []string
	file                                        string // Chart.yaml or requirements.yaml
}

func (d dependency) effectiveName() string {
	if d.alias != "" {
		return d.alias
	}
	return d.name
}

// missingDependencies lists, by chart path ("" for the chart itself,
// "sub." for a subchart, as Helm names value paths), the dependencies the
// charts list (in Chart.yaml, or requirements.yaml for an apiVersion v1
// chart) that charts/ does not hold. As for Helm, a chart of the name is
// there, whatever its version.
func missingDependencies(c *chart.Chart, path string) map[string][]dependency {
	out := map[string][]dependency{}
	var walk func(c *chart.Chart, path string, depth int)
	walk = func(c *chart.Chart, path string, depth int) {
		if depth > maxChartDepth {
			return
		}
		file := "Chart.yaml"
		if c.Metadata.APIVersion == chart.APIVersionV1 {
			file = "requirements.yaml"
		}
		for _, req := range c.Metadata.Dependencies {
			if req == nil {
				continue
			}
			d := dependency{name: req.Name, alias: req.Alias, version: req.Version, repository: req.Repository,
				condition: req.Condition, tags: append([]string{}, req.Tags...), file: file}
			found := false
			for _, sub := range c.Dependencies() {
				found = found || sub.Name() == req.Name
			}
			if !found {
				out[path] = append(out[path], d)
			}
		}
		for _, sub := range c.Dependencies() {
			walk(sub, path+sub.Name()+".", depth+1)
		}
	}
	walk(c, path, 0)
	return out
}

// maxChartDepth bounds the nesting of subcharts walked (Helm's loader
// reads what the archive holds; real charts nest two or three deep).
const maxChartDepth = 32

// checkDependencies runs after Helm has processed the dependencies of c
// (dropped those the values disable): a dependency still listed but not in
// charts/ is needed and missing, an error naming it and the command that
// fetches it. The missing ones that were dropped are returned: the chart
// renders without them (Helm would refuse it, though it does not need
// them).
func checkDependencies(c *chart.Chart, missing map[string][]dependency, dir string) ([]SkippedDependency, error) {
	var needed []string
	var skipped []SkippedDependency
	var walk func(c *chart.Chart, path string, depth int)
	walk = func(c *chart.Chart, path string, depth int) {
		if depth > maxChartDepth {
			return
		}
		have := map[string]bool{}
		for _, sub := range c.Dependencies() {
			have[sub.Name()] = true
		}
		enabled := map[string]bool{}
		for _, req := range c.Metadata.Dependencies {
			if req == nil {
				continue
			}
			enabled[req.Name] = true // Helm has put the alias in Name
			if !have[req.Name] {
				needed = append(needed, describeMissing(c, path, req.Name, missing[path]))
			}
		}
		for _, d := range missing[path] {
			if !enabled[d.effectiveName()] {
				skipped = append(skipped, SkippedDependency{Chart: chartLabel(c, path), Name: d.effectiveName(),
					Version: d.version, Repository: d.repository, Why: disabledBy(d)})
			}
		}
		for _, sub := range c.Dependencies() {
			walk(sub, path+sub.Name()+".", depth+1)
		}
	}
	walk(c, "", 0)
	if len(needed) > 0 {
		return nil, fmt.Errorf("dependencies missing from charts/, which the values enable: %s; `helm dependency build %s` fetches them (it needs the network), or disable them in the values", strings.Join(needed, "; "), dir)
	}
	sort.Slice(skipped, func(i, j int) bool {
		if skipped[i].Chart != skipped[j].Chart {
			return skipped[i].Chart < skipped[j].Chart
		}
		return skipped[i].Name < skipped[j].Name
	})
	return skipped, nil
}

func chartLabel(c *chart.Chart, path string) string {
	if path == "" {
		return c.Name()
	}
	return strings.TrimSuffix(path, ".")
}

// describeMissing names a needed dependency: what lists it, the version
// and repository asked for, what charts/ holds instead, and what enables
// it.
func describeMissing(c *chart.Chart, path, name string, listed []dependency) string {
	for _, d := range listed {
		if d.effectiveName() != name {
			continue
		}
		s := fmt.Sprintf("%s (%s of %s", d.name, d.file, chartLabel(c, path))
		if d.version != "" {
			s += ", version " + d.version
		}
		if d.repository != "" {
			s += " from " + d.repository
		}
		s += ")"
		if d.alias != "" {
			s += " as " + d.alias
		}
		if d.condition != "" {
			s += ", enabled by " + d.condition
		}
		return s
	}
	return fmt.Sprintf("%s (of %s)", name, chartLabel(c, path))
}

// disabledBy says what disabled a dependency: Helm's condition (which
// wins over tags) or its tags.
func disabledBy(d dependency) string {
	switch {
	case d.condition != "" && len(d.tags) > 0:
		return fmt.Sprintf("the values disable it (condition %s, tags %s)", d.condition, strings.Join(d.tags, ", "))
	case d.condition != "":
		return fmt.Sprintf("its condition %s is false", d.condition)
	case len(d.tags) > 0:
		return fmt.Sprintf("its tags %s are false", strings.Join(d.tags, ", "))
	}
	return "the values disable it"
}
