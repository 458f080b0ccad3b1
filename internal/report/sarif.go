package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/archfit/archfit/internal/finding"
)

// SARIF renders findings as SARIF 2.1.0 for code-scanning tools. Rules come
// from the same embedded table as every other format.
func SARIF(w io.Writer, d *Document) error {
	d.normalize()
	type msg struct {
		Text string `json:"text"`
	}
	type config struct {
		Level string `json:"level"`
	}
	type rule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     msg               `json:"shortDescription"`
		FullDescription      msg               `json:"fullDescription"`
		Help                 msg               `json:"help"`
		DefaultConfiguration config            `json:"defaultConfiguration"`
		Properties           map[string]string `json:"properties"`
	}
	type logicalLocation struct {
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
	type artifactLocation struct {
		URI string `json:"uri"`
	}
	type region struct {
		StartLine int `json:"startLine"`
	}
	type physicalLocation struct {
		ArtifactLocation artifactLocation `json:"artifactLocation"`
		Region           *region          `json:"region,omitempty"`
	}
	type location struct {
		PhysicalLocation *physicalLocation `json:"physicalLocation,omitempty"`
		LogicalLocations []logicalLocation `json:"logicalLocations,omitempty"`
	}
	type result struct {
		RuleID     string         `json:"ruleId"`
		Level      string         `json:"level"`
		Message    msg            `json:"message"`
		Locations  []location     `json:"locations,omitempty"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	var rules []rule
	for _, r := range finding.Rules() {
		rules = append(rules, rule{ID: r.Code, Name: r.Code, ShortDescription: msg{r.Title}, FullDescription: msg{r.Explanation},
			Help: msg{r.Remediation}, DefaultConfiguration: config{sarifLevel(r.Severity)}, Properties: map[string]string{"severity": string(r.Severity)}})
	}
	results := []result{}
	for _, f := range d.Findings {
		text := f.Message
		if f.Fix != "" {
			text += "\nFix:\n" + f.Fix
		}
		res := result{RuleID: f.Code, Level: sarifLevel(f.Severity), Message: msg{text},
			Properties: map[string]any{"evidence": f.Evidence, "image": f.Image, "container": f.Container, "node": f.Node}}
		var loc location
		if f.File != "" {
			loc.PhysicalLocation = &physicalLocation{ArtifactLocation: artifactLocation{URI: artifactURI(f.File)}}
			if f.Line > 0 {
				loc.PhysicalLocation.Region = &region{StartLine: f.Line}
			}
		}
		if f.Fix != "" {
			res.Properties["fix"] = f.Fix
		}
		if f.Workload != nil {
			loc.LogicalLocations = []logicalLocation{{FullyQualifiedName: f.Workload.String(), Kind: "resource"}}
		}
		if loc.PhysicalLocation != nil || loc.LogicalLocations != nil {
			res.Locations = []location{loc}
		}
		results = append(results, res)
	}
	run := map[string]any{
		"tool": map[string]any{"driver": map[string]any{
			"name": "archfit", "informationUri": "https://github.com/archfit/archfit", "rules": rules,
		}},
		"results": results,
	}
	if inc := d.Incomplete; inc != nil {
		// The run worked but could not look at everything: a tool
		// execution notification per reason, as SARIF defines for it.
		var notes []map[string]any
		for _, g := range inc.ByReason {
			notes = append(notes, map[string]any{"level": "warning",
				"message":    msg{fmt.Sprintf("%s: %d image(s) could not be read (%s): %s. %s", inc.Headline(), len(g.Images), reasonTitle(g), strings.Join(g.Images, ", "), g.Advice)},
				"properties": map[string]any{"reason": g.Reason, "images": g.Images}})
		}
		run["invocations"] = []any{map[string]any{"executionSuccessful": true, "toolExecutionNotifications": notes}}
		run["properties"] = map[string]any{"incomplete": inc}
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs":    []any{run},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func sarifLevel(s finding.Severity) string {
	switch s {
	case finding.Error:
		return "error"
	case finding.Info:
		return "note"
	}
	return "warning"
}

// artifactURI is a path as a SARIF relative URI: forward slashes, no
// leading "./" (code scanning resolves it against the repository root).
// An absolute path is made relative to the current directory when it is
// under it, else written as a file: URI.
func artifactURI(path string) string {
	if filepath.IsAbs(path) {
		wd, err := os.Getwd()
		rel, rerr := filepath.Rel(wd, path)
		if err != nil || rerr != nil || !filepath.IsLocal(rel) {
			p := filepath.ToSlash(path)
			if !strings.HasPrefix(p, "/") {
				p = "/" + p // C:/x
			}
			return (&url.URL{Scheme: "file", Path: p}).String()
		}
		path = rel
	}
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(path)), "./")
}
