package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/archfit/archfit/internal/finding"
)

// kindTitle is a document kind in words: "DockerfileAnalysis" is
// "dockerfile analysis".
func kindTitle(kind string) string {
	var b strings.Builder
	for i, r := range kind {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

// Markdown renders findings for pasting into an incident ticket.
func Markdown(w io.Writer, d *Document) error {
	d.normalize()
	fmt.Fprintf(w, "## archfit %s\n\n", kindTitle(d.Kind))
	IncompleteMarkdown(w, d.Incomplete)
	if len(d.Findings) == 0 {
		fmt.Fprintln(w, "No findings.")
	} else {
		fmt.Fprintln(w, "| severity | code | workload | container | image | node |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, f := range d.Findings {
			wl := f.Position()
			if f.Workload != nil {
				wl = f.Workload.String()
			}
			fmt.Fprintf(w, "| %s | `%s` | %s | %s | `%s` | %s |\n", f.Severity, f.Code, mdEsc(wl), mdEsc(f.Container), f.Image, mdEsc(nodeCell(f)))
		}
		for _, f := range d.Findings {
			fmt.Fprintf(w, "\n### `%s` %s\n\n%s\n", f.Code, mdEsc(titleOf(f)), f.Message)
			if len(f.Evidence) > 0 {
				fmt.Fprintln(w, "\nEvidence:\n\n```")
				for _, e := range f.Evidence {
					fmt.Fprintln(w, e)
				}
				fmt.Fprintln(w, "```")
			}
			switch r, ok := finding.Lookup(f.Code); {
			case f.Fix != "":
				fmt.Fprintf(w, "\nFix:\n\n```dockerfile\n%s\n```\n", f.Fix)
			case ok:
				fmt.Fprintf(w, "\nFix: %s\n", r.Remediation)
			}
		}
	}
	if len(d.Images) > 0 {
		fmt.Fprintln(w, "\n### Images\n\n| image | kind | runnable platforms | runs on |\n|---|---|---|---|")
		for _, r := range d.Images {
			if r.Error != nil {
				fmt.Fprintf(w, "| `%s` | uninspectable: %s | | |\n", r.Reference, mdEsc(r.Error.Reason))
				continue
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", r.Reference, r.Kind, strings.Join(r.Platforms, ", "), strings.Join(r.Architectures, ", "))
		}
	}
	dockerfileChecksMarkdown(w, d.Remedies)
	return nil
}

func nodeCell(f finding.Finding) string {
	if f.Node == "" || f.NodePlatform == "" {
		return f.Node
	}
	return f.Node + " (" + f.NodePlatform + ")"
}

func titleOf(f finding.Finding) string {
	where := ""
	if f.Workload != nil {
		where = f.Workload.String()
	}
	if f.Container != "" {
		where += " container " + f.Container
	}
	if where == "" {
		where = f.Position()
	}
	return where
}

func mdEsc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
