package diagnose

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
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

// Remedy is what to do about one workload: today (keep it on the
// architectures all its containers run, with a patch of its owning object)
// and for good (multi-arch builds of the images that lack platforms).
type Remedy struct {
	Workload             finding.WorkloadRef `json:"workload"`
	AllowedArchitectures []string            `json:"allowedArchitectures"`
	// Unverified names containers whose image was not inspected.
	Unverified []string             `json:"unverified,omitempty"`
	Conflict   *remedy.Conflict     `json:"conflict,omitempty"`
	Patch      *Patch               `json:"patch,omitempty"`
	Build      []remedy.BuildAdvice `json:"build"`
	// Notes say why a part is missing (object not in the source, ...).
	Notes []string `json:"notes,omitempty"`
}

// Patch is the interim node-affinity patch in the forms people paste.
type Patch struct {
	*remedy.Result
	Kubectl string `json:"kubectl,omitempty"`
}

// Remedies computes a Remedy for every workload with an architecture
// finding. Workloads whose findings are not about architecture (pull auth,
// scripts, CPU level) get none: an affinity patch would not help them.
func Remedies(snap *cluster.Snapshot, images *Images, fs []finding.Finding) []Remedy {
	want := map[finding.WorkloadRef]bool{}
	for _, f := range fs {
		if f.Workload != nil && archCodes[f.Code] {
			want[*f.Workload] = true
		}
	}
	nodeArchs := clusterArchs(snap)
	var out []Remedy
	for _, w := range snap.Workloads {
		ref := finding.WorkloadRef{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
		if !want[ref] {
			continue
		}
		out = append(out, remedyFor(snap, w, ref, images, nodeArchs, fs))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload.String() < out[j].Workload.String() })
	return out
}

func remedyFor(snap *cluster.Snapshot, w *cluster.Workload, ref finding.WorkloadRef, images *Images, nodeArchs []string, fs []finding.Finding) Remedy {
	rem := Remedy{Workload: ref}
	failedArch := map[string]bool{}
	for _, f := range fs {
		if f.Workload != nil && *f.Workload == ref && (f.Code == finding.WrongArchBinary || f.Code == finding.MissingPlatform) {
			failedArch[f.Container] = true
		}
	}
	var cs []remedy.Container
	seenImg := map[string]bool{}
	for _, ct := range w.Containers {
		if ct.Role == cluster.RoleEphemeral {
			continue
		}
		c := remedy.Container{Name: ct.Name, Role: remedy.Role(ct.Role), Image: ct.Image}
		r := images.Report(ct.Image, override(specContainer(&w.Template.Spec, ct.Name)))
		if r == nil || r.Error != nil {
			// Not inspected: the pods are the evidence. Where the container
			// failed with an architecture error and ran fine elsewhere, it
			// runs where it ran.
			if ok := observedArchs(w, ct.Name, ct.Image, failedArch[ct.Name]); len(ok) > 0 {
				c.Architectures = ok
				rem.Notes = append(rem.Notes, fmt.Sprintf("%s was not inspected: taken to run on %s, where its pods run", ct.Image, strings.Join(ok, ", ")))
			} else {
				c.Unknown = true
			}
		} else {
			c.Architectures = r.Architectures
			if !seenImg[ct.Image] {
				seenImg[ct.Image] = true
				if b := remedy.Build(*r, remedy.ForArchitectures(buildArchs(nodeArchs)...)); b.Needed {
					rem.Build = append(rem.Build, b)
				}
			}
		}
		cs = append(cs, c)
	}
	allowed := remedy.AllowedArchitectures(cs, nodeArchs)
	rem.AllowedArchitectures = allowed.Architectures
	rem.Unverified = allowed.Unverified
	rem.Conflict = allowed.Conflict
	switch {
	case allowed.Conflict != nil || len(allowed.Architectures) == 0:
	case w.Original == nil:
		rem.Notes = append(rem.Notes, "no patch: "+w.Kind+" "+w.Name+" itself is not in the source ("+w.Inferred+")")
	default:
		var opts []remedy.Option
		for _, a := range allowed.Architectures {
			opts = append(opts, remedy.WithTaints(a, archTaints(snap, a)...))
		}
		res, err := remedy.Patch(w.Original, allowed.Architectures, opts...)
		var redirect *remedy.RedirectError
		switch {
		case errors.As(err, &redirect):
			rem.Notes = append(rem.Notes, "no patch: "+err.Error())
		case err != nil:
			rem.Notes = append(rem.Notes, "no patch: "+err.Error())
		default:
			p := &Patch{Result: res}
			if len(res.Conflicts) > 0 {
				c := res.Conflicts[0]
				rem.Conflict = &c
			} else if b, err := res.Render(remedy.FormatKubectl); err == nil {
				p.Kubectl = string(b)
			}
			rem.Patch = p
		}
	}
	if w.ManagedBy != nil {
		rem.Notes = append(rem.Notes, "managed by "+w.ManagedBy.String()+": it may revert a patch of "+w.Kind+" "+w.Name+"; change it there")
	}
	return rem
}

// buildArchs are the architectures a permanent build should cover: the
// cluster's, and at least amd64 and arm64 (the point of a mixed cluster).
func buildArchs(nodeArchs []string) []string {
	out := slices.Clone(nodeArchs)
	for _, a := range []string{"amd64", "arm64"} {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// observedArchs are the node archs where the container runs ready in the
// workload's pods, when it failed with an arch error elsewhere; nil when
// there is no such contrast.
func observedArchs(w *cluster.Workload, name, img string, failed bool) []string {
	if !failed {
		return nil
	}
	var ok []string
	for _, p := range w.Pods {
		if p.Node == nil {
			continue
		}
		cs, found := p.Container(name)
		if found && cs.Image == img && cs.Running != nil && cs.Ready && !slices.Contains(ok, p.Node.Arch()) {
			ok = append(ok, p.Node.Arch())
		}
	}
	sort.Strings(ok)
	return ok
}
