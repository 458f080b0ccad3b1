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
	if held := notReady(p); len(held) > 0 {
		fmt.Fprintln(w, "\nNot tolerated yet:")
		for _, c := range held {
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

// PlanMarkdown prints the plan as a document for a migration review,
// headed by the images that could not be read (inc, nil when none).
func PlanMarkdown(w io.Writer, p *plan.Plan, inc *Incomplete) error {
	fmt.Fprintln(w, "## archfit rollout plan")
	if inc != nil {
		fmt.Fprintln(w)
		IncompleteMarkdown(w, inc)
	}
	for _, ph := range p.Phases {
		fmt.Fprintf(w, "\n### Phase %d: %s\n\n%s\n", ph.Number, ph.Name, ph.Goal)
		planMarkdownSteps(w, "", ph.Steps)
		for _, n := range ph.Notes {
			fmt.Fprintf(w, "\n> %s\n", n)
		}
		planMarkdownSteps(w, "Gate: ", ph.Gate)
		planMarkdownSteps(w, "Rollback: ", ph.Rollback)
	}
	if held := notReady(p); len(held) > 0 {
		fmt.Fprintln(w, "\n### Not tolerated yet\n\n| workload | state | why |\n|---|---|---|")
		for _, c := range held {
			fmt.Fprintf(w, "| %s | %s | %s |\n", mdEsc(c.Workload), c.State, mdEsc(c.Why))
		}
	}
	return nil
}

// notReady are the candidates that do not get the toleration now.
func notReady(p *plan.Plan) []plan.Candidate {
	var out []plan.Candidate
	for _, c := range p.Candidates {
		if !c.Ready {
			out = append(out, c)
		}
	}
	return out
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
	if held := notReady(p); len(held) > 0 {
		s := HTMLSection{Title: "Not tolerated yet"}
		for _, c := range held {
			s.Items = append(s.Items, HTMLItem{Title: c.Workload + " (" + c.State + ")", Text: c.Why})
		}
		out = append(out, s)
	}
	return out
}
