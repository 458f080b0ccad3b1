package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/archfit/archfit/internal/remedy"
)

// ConflictsText explains why no patch is possible (patch prints it for
// an arch-constraint-conflict).
func ConflictsText(w io.Writer, what string, cs []remedy.Conflict) {
	fmt.Fprintf(w, "%s: %s: no patch is possible\n", what, remedy.CodeArchConstraintConflict)
	for _, c := range cs {
		fmt.Fprintf(w, "  %s\n", c.Message)
		if c.Path != "" {
			fmt.Fprintf(w, "    at %s", c.Path)
			if len(c.Pinned) > 0 {
				fmt.Fprintf(w, ", which admits only %s", strings.Join(c.Pinned, ", "))
			}
			fmt.Fprintln(w)
		}
		for _, e := range c.Containers {
			runs := "nothing"
			if len(e.Runs) > 0 {
				runs = strings.Join(e.Runs, ", ")
			}
			fmt.Fprintf(w, "    %s container %s (%s) runs %s: excludes %s\n", e.Role, e.Name, e.Image, runs, strings.Join(e.Excludes, ", "))
		}
	}
	fmt.Fprintln(w, "  fix the images (see `archfit diagnose` for the build advice) or the workload's own arch constraint; archfit never overwrites a pin")
}
