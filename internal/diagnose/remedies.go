package diagnose

import (
	"sort"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/remedy"
)

// archCodes are the codes an affinity patch and a multi-arch build fix.
var archCodes = map[string]bool{
	finding.WrongArchBinary:        true,
	finding.MissingPlatform:        true,
	finding.MislabeledPlatform:     true,
	finding.ArchConstraintConflict: true,
	finding.SingleArchAtRisk:       true,
}

// Remedies computes the remedy (remedy.ForWorkload, as every command does)
// of every workload with an architecture finding. Workloads whose findings
// are not about architecture (pull auth, scripts, CPU level) get none: an
// affinity patch would not help them.
func Remedies(snap *cluster.Snapshot, images *Images, fs []finding.Finding) []*remedy.Remedy {
	want := map[object.Ref]bool{}
	failed := map[object.Ref]map[string]bool{}
	for _, f := range fs {
		if f.Workload == nil || !archCodes[f.Code] {
			continue
		}
		ref := f.Workload.ID()
		want[ref] = true
		if f.Code == finding.WrongArchBinary || f.Code == finding.MissingPlatform {
			if failed[ref] == nil {
				failed[ref] = map[string]bool{}
			}
			failed[ref][f.Container] = true
		}
	}
	var out []*remedy.Remedy
	for _, w := range snap.Workloads {
		if !want[w.Ref.ID()] {
			continue
		}
		out = append(out, remedy.ForWorkload(remedy.Input{
			Workload: w, Nodes: snap.Nodes, Images: images, Verify: true,
			ArchFailures: failed[w.Ref.ID()], Lookup: snap.Object,
		}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload.String() < out[j].Workload.String() })
	return out
}
