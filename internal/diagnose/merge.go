package diagnose

import (
	"fmt"

	"github.com/archfit/archfit/internal/finding"
)

// maxEvidence caps the evidence kept for one merged finding.
const maxEvidence = 12

// merge folds the findings of many pods into one per workload, container,
// image and code: the first pod names it, evidence is the union (each
// distinct string once), confidence the highest seen, missing what was
// missing for the most confident.
func merge(fs []finding.Finding) []finding.Finding {
	type key struct{ wl, container, image, code string }
	idx := map[key]int{}
	pods := map[key]map[string]bool{}
	var out []finding.Finding
	for _, f := range fs {
		k := key{f.Workload.String(), f.Container, f.Image, f.Code}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			pods[k] = map[string]bool{}
			if f.Pod != "" {
				pods[k][f.Pod] = true
			}
			out = append(out, f)
			continue
		}
		g := &out[i]
		if f.Pod != "" {
			pods[k][f.Pod] = true
		}
		for _, e := range f.Evidence {
			if len(g.Evidence) >= maxEvidence {
				break
			}
			if !contains(g.Evidence, e) {
				g.Evidence = append(g.Evidence, e)
			}
		}
		if f.Confidence.Rank() > g.Confidence.Rank() {
			g.Confidence, g.Missing = f.Confidence, f.Missing
		}
	}
	for k, i := range idx {
		if n := len(pods[k]); n > 1 {
			out[i].Message += fmt.Sprintf(" (%d pods)", n)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
