// Package remedy computes what to do about a workload that breaks on a mixed
// amd64/arm64 cluster: the architectures it may run on, the interim node
// affinity patch of its owning object, and the permanent multi-arch build
// advice per image. Everything here is pure: no network, no cluster.
package remedy

import (
	"fmt"

	"slices"
	"strings"

	"github.com/archfit/archfit/internal/cluster"
)

// CodeArchConstraintConflict is the finding code (DESIGN.md) for a workload
// whose constraints or images admit no architecture that exists.
const CodeArchConstraintConflict = "arch-constraint-conflict"

// Role of a container in a pod template: archfit's one role type.
// Ephemeral containers are not part of a template (they are added to
// running pods by `kubectl debug`), so they never restrict the template.
type Role = cluster.Role

// Container is one container of a pod template and what its image can run.
type Container struct {
	Name  string `json:"name"`
	Role  Role   `json:"role"`
	Image string `json:"image,omitempty"`
	// Architectures are the canonical architectures the image can really run
	// (verified entries, attestations excluded). Empty with Unknown false
	// means it runs nowhere.
	Architectures []string `json:"architectures"`
	// Unknown is set when the image could not be inspected: it does not
	// restrict the result, but is listed in Allowed.Unverified.
	Unknown bool `json:"unknown,omitempty"`
}

// Allowed is the set of architectures every container of a pod template can
// run and that some node has.
type Allowed struct {
	// Architectures, sorted; empty when Conflict is set.
	Architectures []string `json:"architectures"`
	// Unverified names the containers whose image could not be inspected and
	// so were not taken into account.
	Unverified []string  `json:"unverified,omitempty"`
	Conflict   *Conflict `json:"conflict,omitempty"`
}

// Conflict explains why no architecture (or no patch) is possible. Code is
// always CodeArchConstraintConflict.
type Conflict struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Path is the JSON pointer of the offending nodeSelector or
	// nodeSelectorTerm, for conflicts found in the workload's constraints.
	Path string `json:"path,omitempty"`
	// Pinned are the architectures the offending constraint admits.
	Pinned []string `json:"pinned,omitempty"`
	// Containers are the restricting containers, for conflicts between images.
	Containers []Exclusion `json:"containers,omitempty"`
}

// Exclusion says which architectures a container rules out.
type Exclusion struct {
	Name     string   `json:"name"`
	Role     Role     `json:"role"`
	Image    string   `json:"image,omitempty"`
	Runs     []string `json:"runs"`
	Excludes []string `json:"excludes"`
}

// AllowedArchitectures intersects the architectures of all containers of a
// pod template (init, native sidecars and main; ephemeral ones are ignored)
// with the architectures of the cluster's nodes. nodeArchs empty means the
// nodes are not known (file input without nodes): then only the images
// restrict.
func AllowedArchitectures(containers []Container, nodeArchs []string) Allowed {
	var res Allowed
	var set []string // nil: unrestricted so far
	universe := sortedSet(nodeArchs)
	for _, c := range containers {
		if c.Role == cluster.RoleEphemeral {
			continue
		}
		if c.Unknown {
			res.Unverified = append(res.Unverified, c.Name)
			continue
		}
		archs := sortedSet(c.Architectures)
		universe = union(universe, archs)
		if set == nil {
			set = archs
		} else {
			set = intersect(set, archs)
		}
	}
	if len(nodeArchs) > 0 {
		if set == nil {
			set = sortedSet(nodeArchs)
		} else {
			set = intersect(set, sortedSet(nodeArchs))
		}
	}
	if len(set) > 0 {
		res.Architectures = set
		return res
	}
	if set == nil {
		// Nothing known at all: no container verified and no node given.
		return res
	}

	// Empty intersection: say who excludes what.
	c := &Conflict{Code: CodeArchConstraintConflict}
	for _, ct := range containers {
		if ct.Role == cluster.RoleEphemeral || ct.Unknown {
			continue
		}
		runs := sortedSet(ct.Architectures)
		ex := difference(universe, runs)
		if len(ex) == 0 {
			continue
		}
		c.Containers = append(c.Containers, Exclusion{
			Name: ct.Name, Role: ct.Role, Image: ct.Image,
			Runs: runs, Excludes: ex,
		})
	}
	imageSet := imagesIntersection(containers)
	var parts []string
	for _, e := range c.Containers {
		runs := "no architecture"
		if len(e.Runs) > 0 {
			runs = "only " + strings.Join(e.Runs, ", ")
		}
		parts = append(parts, fmt.Sprintf("%s container %q (%s) runs %s", e.Role, e.Name, e.Image, runs))
	}
	switch {
	case len(imageSet) > 0 && len(nodeArchs) > 0:
		c.Message = fmt.Sprintf("every container runs on %s, but the cluster has only %s nodes",
			strings.Join(imageSet, ", "), strings.Join(sortedSet(nodeArchs), ", "))
	default:
		c.Message = "no architecture runs all containers: " + strings.Join(parts, "; ")
		if len(nodeArchs) > 0 {
			c.Message += "; nodes are " + strings.Join(sortedSet(nodeArchs), ", ")
		}
	}
	res.Conflict = c
	return res
}

func imagesIntersection(containers []Container) []string {
	var set []string
	for _, c := range containers {
		if c.Role == cluster.RoleEphemeral || c.Unknown {
			continue
		}
		if set == nil {
			set = sortedSet(c.Architectures)
		} else {
			set = intersect(set, sortedSet(c.Architectures))
		}
	}
	return set
}

// sortedSet returns a sorted, deduplicated, non-nil copy.
func sortedSet(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func intersect(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func union(a, b []string) []string {
	return sortedSet(append(slices.Clone(a), b...))
}

func difference(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
