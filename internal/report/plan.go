package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/archfit/archfit/internal/plan"
)

// PlanText prints the plan for people: each phase with its steps, gate and
// rollback; commands indented so they copy cleanly.
func PlanText(w io.Writer, p *plan.Plan) error {
	if len(p.ArmPools) > 0 {
		fmt.Fprintf(w, "Arm pools: %s\n", strings.Join(p.ArmPools, ", "))
	} else {
		fmt.Fprintln(w, "Arm pools: none in the input (commands select kubernetes.io/arch=arm64)")
	}
	for _, ph := range p.Phases {
		fmt.Fprintf(w, "\nPhase %d: %s\n  %s\n", ph.Number, ph.Name, ph.Goal)
		planSteps(w, "", ph.Steps)
		for _, n := range ph.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		planSteps(w, "Gate: ", ph.Gate)
		planSteps(w, "Rollback: ", ph.Rollback)
	}
	var notReady []plan.Candidate
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

func planSteps(w io.Writer, prefix string, ss []plan.Step) {
	for _, s := range ss {
		fmt.Fprintf(w, "  %s%s\n", prefix, s.Title)
		if s.Text != "" {
			for _, l := range strings.Split(s.Text, "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
}

// PlanMarkdown prints the plan as a document for a migration review.
func PlanMarkdown(w io.Writer, p *plan.Plan) error {
	fmt.Fprintln(w, "## archfit rollout plan")
	for _, ph := range p.Phases {
		fmt.Fprintf(w, "\n### Phase %d: %s\n\n%s\n", ph.Number, ph.Name, ph.Goal)
		planMarkdownSteps(w, "", ph.Steps)
		for _, n := range ph.Notes {
			fmt.Fprintf(w, "\n> %s\n", n)
		}
		planMarkdownSteps(w, "Gate: ", ph.Gate)
		planMarkdownSteps(w, "Rollback: ", ph.Rollback)
	}
	return nil
}

func planMarkdownSteps(w io.Writer, prefix string, ss []plan.Step) {
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

// PlanSections is the plan as sections of the HTML audit page.
func PlanSections(p *plan.Plan) []HTMLSection {
	var out []HTMLSection
	for _, ph := range p.Phases {
		s := HTMLSection{Title: fmt.Sprintf("Plan, phase %d: %s", ph.Number, ph.Name), Intro: ph.Goal}
		add := func(prefix string, steps []plan.Step) {
			for _, st := range steps {
				s.Items = append(s.Items, HTMLItem{Title: prefix + st.Title, Code: st.Text})
			}
		}
		add("", ph.Steps)
		for _, n := range ph.Notes {
			s.Items = append(s.Items, HTMLItem{Text: n})
		}
		add("Gate: ", ph.Gate)
		add("Rollback: ", ph.Rollback)
		out = append(out, s)
	}
	return out
}
