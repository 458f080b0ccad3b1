package image

import (
	"fmt"

	"github.com/archfit/archfit/internal/finding"
)

// Findings turns what is wrong with images themselves (unreadable,
// mislabeled entries) into findings, one per image and problem.
func Findings(reps []*Report) []finding.Finding {
	var out []finding.Finding
	for _, r := range reps {
		if r.Error != nil {
			f := finding.New(finding.ImageUninspectable, fmt.Sprintf("cannot read %s: %s", r.Reference, r.Error.Reason))
			f.Image = r.Reference
			f.Evidence = []string{r.Error.Detail}
			if r.Error.Tried != "" {
				f.Evidence = append(f.Evidence, "tried: "+r.Error.Tried)
			}
			out = append(out, f)
			continue
		}
		for _, p := range r.Problems {
			f := finding.New(p.Code, fmt.Sprintf("%s entry %s: %s", r.Reference, p.Entry, p.Detail))
			f.Image = r.Reference
			f.ImagePlatforms = r.Platforms
			f.Evidence = []string{p.Detail}
			out = append(out, f)
		}
	}
	return out
}
