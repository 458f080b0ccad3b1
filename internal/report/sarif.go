package report

import (
	"encoding/json"
	"io"

	"github.com/archfit/archfit/internal/finding"
)

// SARIF renders findings as SARIF 2.1.0 for code-scanning tools. Rules come
// from the same embedded table as every other format.
func SARIF(w io.Writer, d *Document) error {
	d.normalize()
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string            `json:"id"`
		Name             string            `json:"name"`
		ShortDescription msg               `json:"shortDescription"`
		FullDescription  msg               `json:"fullDescription"`
		Help             msg               `json:"help"`
		Properties       map[string]string `json:"properties"`
	}
	type logicalLocation struct {
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
	type location struct {
		LogicalLocations []logicalLocation `json:"logicalLocations"`
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
			Help: msg{r.Remediation}, Properties: map[string]string{"severity": string(r.Severity)}})
	}
	results := []result{}
	for _, f := range d.Findings {
		level := "warning"
		switch f.Severity {
		case finding.Error:
			level = "error"
		case finding.Info:
			level = "note"
		}
		res := result{RuleID: f.Code, Level: level, Message: msg{f.Message},
			Properties: map[string]any{"evidence": f.Evidence, "image": f.Image, "container": f.Container, "node": f.Node}}
		if f.Workload != nil {
			res.Locations = []location{{LogicalLocations: []logicalLocation{{FullyQualifiedName: f.Workload.String(), Kind: "resource"}}}}
		}
		results = append(results, res)
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "archfit", "informationUri": "https://github.com/archfit/archfit", "rules": rules,
			}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
