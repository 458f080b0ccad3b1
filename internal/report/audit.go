package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/remedy"
)

// AuditText returns the Document.Text of `archfit audit`: pools, readiness,
// blockers and the coverage matrix of r, its remedies, then the findings.
func AuditText(r *audit.Result) func(io.Writer, *Document) error {
	return func(w io.Writer, d *Document) error {
		if err := auditText(w, r); err != nil {
			return err
		}
		remediesText(w, r.Remedies)
		fmt.Fprintln(w, "\nFindings:")
		if err := FindingsText(w, d.Findings); err != nil {
			return err
		}
		if n := waived(d.Findings); n > 0 {
			fmt.Fprintf(w, "\n%d finding(s) waived (reasons above).\n", n)
		}
		return nil
	}
}

// cellSymbol is the one-character cell of the coverage matrix.
func cellSymbol(c audit.Cell) string {
	s := map[audit.Verdict]string{audit.Runs: "ok", audit.Fails: "FAIL", audit.Unknown: "?"}[c.Verdict]
	if c.Verdict == audit.Runs && c.How != "" {
		s += "*"
	}
	if !c.Admitted {
		s = "(" + s + ")"
	}
	return s
}

// auditText prints the audit for people: pools, readiness, blockers, the
// coverage matrix.
func auditText(w io.Writer, r *audit.Result) error {
	fmt.Fprintln(w, "Node pools:")
	for _, p := range r.Pools {
		extra := fmt.Sprintf("%d node(s)", p.Nodes)
		if p.Assumed {
			extra = "assumed (no nodes in the input; --node-platform)"
		}
		fmt.Fprintf(w, "  %s  %s", p.ID, extra)
		for _, t := range p.Taints {
			fmt.Fprintf(w, "  taint %s=%s:%s", t.Key, t.Value, t.Effect)
		}
		fmt.Fprintln(w)
	}
	rd := r.Readiness
	fmt.Fprintf(w, "\nArm64 readiness: %d of %d workloads (%.0f%%), %d of %d replicas (%.0f%%)",
		rd.ReadyWorkloads, rd.Workloads, 100*rd.WorkloadShare, rd.ReadyReplicas, rd.Replicas, 100*rd.ReplicaShare)
	fmt.Fprintf(w, "; blocked %d, conflicting %d, unknown %d\n", rd.BlockedWorkloads, rd.ConflictWorkloads, rd.UnknownWorkloads)
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w, "\nWaivers not accepted (their findings count):")
		for _, s := range r.Warnings {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if len(r.Blockers) > 0 {
		fmt.Fprintln(w, "\nBlockers (fix the first ones first):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tIMAGE\tRUNS ON\tAS\tWORKLOADS\tREPLICAS\tE.G.")
		for i, b := range r.Blockers {
			var eg []string
			for _, e := range b.Examples {
				eg = append(eg, e.String())
			}
			runs := strings.Join(b.Architectures, ",")
			if runs == "" {
				runs = "nothing"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%d\t%s\n", i+1, b.Image, runs, strings.Join(b.Roles, ","), b.Workloads, b.Replicas, strings.Join(eg, " "))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nCoverage (ok runs, ok* runs with a caveat, FAIL fails, ? unknown; (..) = the pods cannot be scheduled there):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "  WORKLOAD\tCONTAINER\tROLE\tIMAGE")
	for _, p := range r.Pools {
		fmt.Fprintf(tw, "\t%s", p.ID)
	}
	fmt.Fprintln(tw, "\tALLOWED\tBASE")
	for _, wl := range r.Workloads {
		for i, c := range wl.Containers {
			name := ""
			if i == 0 {
				name = wl.Ref.String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s", name, c.Name, c.Role, c.Image)
			for _, cl := range c.Cells {
				fmt.Fprintf(tw, "\t%s", cellSymbol(cl))
			}
			allowed := ""
			if i == 0 {
				allowed = allowedText(wl)
			}
			base := ""
			if c.Base != nil {
				base = c.Base.Name
			}
			fmt.Fprintf(tw, "\t%s\t%s\n", allowed, base)
		}
	}
	tw.Flush()
	var notes []string
	for _, wl := range r.Workloads {
		for _, c := range wl.Containers {
			for _, cl := range c.Cells {
				if cl.How != "" && cl.Admitted {
					notes = append(notes, fmt.Sprintf("  %s %s on %s: %s", wl.Ref, c.Name, cl.Pool, cl.How))
				}
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nHow:")
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	return nil
}

func allowedText(wl *audit.Workload) string {
	switch {
	case wl.Allowed.Conflict != nil:
		return "CONFLICT"
	case len(wl.Allowed.Architectures) == 0:
		return "?"
	case len(wl.Allowed.Unverified) > 0 && len(wl.Allowed.Unverified) >= len(wl.Containers):
		// No image was read: the architectures are only the nodes'.
		return "? (no image read: " + strings.Join(wl.Allowed.Unverified, ",") + ")"
	}
	s := strings.Join(wl.Allowed.Architectures, ",")
	if len(wl.Allowed.Unverified) > 0 {
		s += " (unverified: " + strings.Join(wl.Allowed.Unverified, ",") + ")"
	}
	return s
}

// remediesText prints the interim patches in kubectl form.
func remediesText(w io.Writer, rms []*remedy.Remedy) {
	if len(rms) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRemedies:")
	for _, rm := range rms {
		fmt.Fprintf(w, "  %s: allowed %s", rm.Workload, strings.Join(rm.AllowedArchitectures, ","))
		if len(rm.Unverified) > 0 {
			fmt.Fprintf(w, " (unverified: %s: their images could not be read)", strings.Join(rm.Unverified, ","))
		}
		fmt.Fprintln(w)
		if rm.PatchError != "" {
			fmt.Fprintf(w, "    patch: %s\n", rm.PatchError)
		} else if rm.Patch != nil && rm.Patch.Changed {
			if b, err := rm.Patch.Render(remedy.FormatKubectl); err == nil {
				for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
					fmt.Fprintf(w, "    %s\n", l)
				}
			}
		} else if rm.Patch != nil && len(rm.Patch.Conflicts) > 0 {
			fmt.Fprintf(w, "    no patch: %s\n", rm.Patch.Conflicts[0].Message)
		} else if rm.Patch != nil {
			fmt.Fprintln(w, "    already constrained: no patch needed")
		}
		for _, b := range rm.Build {
			fmt.Fprintf(w, "    build: %s misses %s\n", b.Image, strings.Join(b.Missing, ", "))
			DockerfileChecksText(w, "      ", b.Dockerfiles)
		}
	}
}

// waived counts waived findings.
func waived(fs []finding.Finding) int {
	n := 0
	for _, f := range fs {
		if f.Waived != "" {
			n++
		}
	}
	return n
}
