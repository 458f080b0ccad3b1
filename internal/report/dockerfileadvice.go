package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/archfit/archfit/internal/remedy"
)

// DockerfileChecksText prints what blocks the build in the Dockerfiles of
// a build advice (--dockerfile), each line prefixed by indent.
func DockerfileChecksText(w io.Writer, indent string, cs []remedy.DockerfileCheck) {
	for _, c := range cs {
		fmt.Fprintf(w, "%sDockerfile: %s\n", indent, c.Summary)
		for _, f := range c.Findings {
			fmt.Fprintf(w, "%s  %s: %s [%s] %s\n", indent, f.Position(), f.Severity, f.Code, strings.Join(f.Evidence, " "))
			fmt.Fprintf(w, "%s    %s\n", indent, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(w, "%s    fix:\n", indent)
				for _, l := range strings.Split(f.Fix, "\n") {
					fmt.Fprintf(w, "%s      %s\n", indent, l)
				}
			}
		}
	}
}

// dockerfileChecksMarkdown renders, once per image and Dockerfile, what
// blocks the build of the images the remedies advise rebuilding, with the
// workloads that run them.
func dockerfileChecksMarkdown(w io.Writer, rems []*remedy.Remedy) {
	type key struct{ image, file string }
	var order []key
	checks := map[key]remedy.DockerfileCheck{}
	workloads := map[key][]string{}
	for _, r := range rems {
		for _, b := range r.Build {
			for _, c := range b.Dockerfiles {
				k := key{b.Image, c.File}
				if _, ok := checks[k]; !ok {
					order = append(order, k)
					checks[k] = c
				}
				if wl := r.Workload.String(); !slices.Contains(workloads[k], wl) {
					workloads[k] = append(workloads[k], wl)
				}
			}
		}
	}
	if len(order) == 0 {
		return
	}
	fmt.Fprintln(w, "\n### For good: what in the Dockerfiles blocks the multi-arch build")
	for _, k := range order {
		c := checks[k]
		fmt.Fprintf(w, "\n#### `%s` built by `%s`\n\nWorkloads: %s\n\n%s\n", k.image, k.file, mdEsc(strings.Join(workloads[k], ", ")), mdEsc(c.Summary))
		if len(c.Findings) == 0 {
			continue
		}
		fmt.Fprintln(w, "\n| line | severity | code | text |\n|---|---|---|---|")
		for _, f := range c.Findings {
			fmt.Fprintf(w, "| %s | %s | `%s` | `%s` |\n", f.Position(), f.Severity, f.Code, mdCode(strings.Join(f.Evidence, " ")))
		}
		for _, f := range c.Findings {
			fmt.Fprintf(w, "\n`%s` at %s: %s\n", f.Code, f.Position(), mdEsc(f.Message))
			if f.Fix != "" {
				fmt.Fprintf(w, "\n```dockerfile\n%s\n```\n", f.Fix)
			}
		}
	}
}

// mdCode keeps text inside a markdown table's code span.
func mdCode(s string) string {
	return strings.NewReplacer("`", "'", "|", "\\|", "\n", " ").Replace(s)
}
