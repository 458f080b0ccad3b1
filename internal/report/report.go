// Package report is the last stage: it renders archfit's results, one
// Document in many formats (text for people, json/yaml for scripts, markdown
// for tickets, sarif for code scanning, html for the audit). It reads the
// judges' types; they never print. Formatters write to an injected io.Writer.
package report

import (
	"fmt"
	"io"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/remedy"
)

// Document is the top-level result of a command. Its JSON shape is a
// contract (DESIGN.md): fields may be added, never renamed.
type Document struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"` // Inspection, Diagnosis, Audit, Plan
	Findings   []finding.Finding `json:"findings"`
	Remedies   []*remedy.Remedy  `json:"remedies"`
	Images     []*image.Report   `json:"images"`
	Nodes      []Node            `json:"nodes"`
	// Incomplete says which images could not be read (nil when all were):
	// an answer that needs them is unknown. normalize fills it from Images.
	Incomplete *Incomplete `json:"incomplete,omitempty"`
	// Sections lets commands add their own blocks (coverage, plan, stats).
	Extra map[string]any `json:"extra,omitempty"`
	// Text renders command-specific human output; nil uses the default.
	Text func(w io.Writer, d *Document) error `json:"-"`
}

// Node is one cluster node as every command reports it.
type Node struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
	// Runtime is the node's containerRuntimeVersion; Matchers the index
	// entry choices archfit models for it.
	Runtime  string   `json:"runtime,omitempty"`
	Matchers []string `json:"matchers,omitempty"`
	Pool     string   `json:"pool,omitempty"`
	Taints   []string `json:"taints,omitempty"`
	// Unschedulable: cordoned.
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// Nodes summarizes a snapshot's nodes.
func Nodes(ns []*cluster.Node) []Node {
	out := make([]Node, 0, len(ns))
	for _, n := range ns {
		ni := Node{Name: n.Name, Platform: platform.String(&n.Platform), Pool: n.Pool, Unschedulable: n.Unschedulable}
		if n.Runtime.Name != "" {
			ni.Runtime = n.Runtime.Name + "://" + n.Runtime.Version
		}
		for _, m := range n.Runtime.Matchers {
			ni.Matchers = append(ni.Matchers, string(m))
		}
		for _, t := range n.Taints {
			ni.Taints = append(ni.Taints, t.ToString())
		}
		out = append(out, ni)
	}
	return out
}

// Formats lists the output formats every command supports.
var Formats = []string{"text", "json", "yaml", "markdown", "sarif"}

// Formatter writes a Document in one format.
type Formatter func(io.Writer, *Document) error

// For returns the formatter for a format name.
func For(format string) (Formatter, error) {
	switch format {
	case "text", "":
		return Text, nil
	case "json":
		return JSON, nil
	case "yaml":
		return YAML, nil
	case "markdown", "md":
		return Markdown, nil
	case "sarif":
		return SARIF, nil
	}
	return nil, fmt.Errorf("unknown output format %q: want one of text, json, yaml, markdown, sarif", format)
}

func (d *Document) normalize() {
	if d.APIVersion == "" {
		d.APIVersion = "archfit.io/v1alpha1"
	}
	if d.Findings == nil {
		d.Findings = []finding.Finding{}
	}
	if d.Remedies == nil {
		d.Remedies = []*remedy.Remedy{}
	}
	if d.Images == nil {
		d.Images = []*image.Report{}
	}
	if d.Nodes == nil {
		d.Nodes = []Node{}
	}
	if d.Incomplete == nil {
		d.Incomplete = Unread(d.Images)
	}
	SortFindings(d.Findings)
}

// SortFindings orders by severity (worst first), workload, container,
// file and line, code.
func SortFindings(fs []finding.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity.Rank() != b.Severity.Rank() {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		wa, wb := "", ""
		if a.Workload != nil {
			wa = a.Workload.String()
		}
		if b.Workload != nil {
			wb = b.Workload.String()
		}
		if wa != wb {
			return wa < wb
		}
		if a.Container != b.Container {
			return a.Container < b.Container
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Code < b.Code
	})
}

// JSON writes the document as indented JSON, streamed (jsonStream): the
// same bytes as json.Encoder with two-space indentation.
func JSON(w io.Writer, d *Document) error {
	d.normalize()
	return jsonStream(w, d)
}

// YAML writes the document as YAML (same field names as JSON).
func YAML(w io.Writer, d *Document) error {
	d.normalize()
	b, err := yaml.Marshal(d)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
