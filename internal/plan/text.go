package plan

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the plan for people: each phase with its steps, gate and
// rollback; commands indented so they copy cleanly.
func WriteText(w io.Writer, p *Plan) error {
	if len(p.ArmPools) > 0 {
		fmt.Fprintf(w, "Arm pools: %s\n", strings.Join(p.ArmPools, ", "))
	} else {
		fmt.Fprintln(w, "Arm pools: none in the input (commands select kubernetes.io/arch=arm64)")
	}
	for _, ph := range p.Phases {
		fmt.Fprintf(w, "\nPhase %d: %s\n  %s\n", ph.Number, ph.Name, ph.Goal)
		steps(w, "", ph.Steps)
		for _, n := range ph.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		steps(w, "Gate: ", ph.Gate)
		steps(w, "Rollback: ", ph.Rollback)
	}
	var notReady []Candidate
	for _, c := range p.Candidates {
		if !c.Ready {
			notReady = append(notReady, c)
		}
	}
	if len(notReady) > 0 {
		fmt.Fprintln(w, "\nNot tolerated yet:")
		for _, c := range notReady {
			fmt.Fprintf(w, "  %s: %s\n", c.Workload, c.Why)
		}
	}
	return nil
}

func steps(w io.Writer, prefix string, ss []Step) {
	for _, s := range ss {
		fmt.Fprintf(w, "  %s%s\n", prefix, s.Title)
		if s.Text != "" {
			for _, l := range strings.Split(s.Text, "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
}

// WriteMarkdown prints the plan as a document for a migration review.
func WriteMarkdown(w io.Writer, p *Plan) error {
	fmt.Fprintln(w, "## archfit rollout plan")
	for _, ph := range p.Phases {
		fmt.Fprintf(w, "\n### Phase %d: %s\n\n%s\n", ph.Number, ph.Name, ph.Goal)
		mdSteps(w, "", ph.Steps)
		for _, n := range ph.Notes {
			fmt.Fprintf(w, "\n> %s\n", n)
		}
		mdSteps(w, "Gate: ", ph.Gate)
		mdSteps(w, "Rollback: ", ph.Rollback)
	}
	return nil
}

func mdSteps(w io.Writer, prefix string, ss []Step) {
	for _, s := range ss {
		if prefix != "" {
			fmt.Fprintf(w, "\n- **%s** %s\n", strings.TrimSpace(prefix), s.Title)
		} else {
			fmt.Fprintf(w, "\n- %s\n", s.Title)
		}
		if s.Text != "" {
			fmt.Fprintf(w, "\n```%s\n%s\n```\n", s.Lang, s.Text)
		}
	}
}
