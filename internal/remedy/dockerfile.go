package remedy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/archfit/archfit/internal/finding"
)

// DockerfileCheck is what the static analysis of `archfit dockerfile`
// found in one Dockerfile the user said builds the image (--dockerfile):
// what in it keeps the multi-arch build from working, with the fix lines.
type DockerfileCheck struct {
	File     string            `json:"file"`
	Findings []finding.Finding `json:"findings"`
	// Summary says what to do: fix the findings, or, with none, build and
	// push (the buildx command for this file and image).
	Summary string `json:"summary"`
}

// DockerfileSource is one analyzed --dockerfile value: the image it
// builds (Image, as the user wrote it; "" when the user did not say) and
// each Dockerfile its path held with its findings.
type DockerfileSource struct {
	Image string
	Path  string
	Files []DockerfileFile
}

// DockerfileFile is one analyzed Dockerfile.
type DockerfileFile struct {
	Path     string
	Findings []finding.Finding
}

// AttachDockerfiles puts each source's findings into the build advice of
// the image it builds: a source with an Image into the advice of every
// image of that repository (tag and digest ignored); one without into all
// the advice when exactly one image needs a rebuild. Advice that is not
// Needed gets nothing. It returns a warning for each source it could not
// place.
func AttachDockerfiles(advice []*BuildAdvice, sources []DockerfileSource) (warnings []string) {
	var needed []*BuildAdvice
	var repos []string
	for _, a := range advice {
		if a == nil || !a.Needed {
			continue
		}
		needed = append(needed, a)
		if r := repoOf(a.Image); !slices.Contains(repos, r) {
			repos = append(repos, r)
		}
	}
	slices.Sort(repos)
	for _, s := range sources {
		var to []*BuildAdvice
		if s.Image == "" {
			switch len(repos) {
			case 0:
				warnings = append(warnings, fmt.Sprintf("--dockerfile %s: no image needs a rebuild, so no build advice shows its findings (archfit dockerfile %s does)", s.Path, s.Path))
				continue
			case 1:
				to = needed
			default:
				warnings = append(warnings, fmt.Sprintf("--dockerfile %s: %d images need a rebuild (%s): say which one it builds with --dockerfile IMAGE=%s", s.Path, len(repos), strings.Join(repos, ", "), s.Path))
				continue
			}
		} else {
			want := repoOf(s.Image)
			for _, a := range needed {
				if repoOf(a.Image) == want {
					to = append(to, a)
				}
			}
			if len(to) == 0 {
				warnings = append(warnings, fmt.Sprintf("--dockerfile %s=%s: no image of repository %s needs a rebuild here", s.Image, s.Path, want))
				continue
			}
		}
		for _, a := range to {
			for _, f := range s.Files {
				a.Dockerfiles = append(a.Dockerfiles, check(a, f))
			}
		}
	}
	return warnings
}

func check(a *BuildAdvice, f DockerfileFile) DockerfileCheck {
	c := DockerfileCheck{File: f.Path, Findings: slices.Clone(f.Findings)}
	if c.Findings == nil {
		c.Findings = []finding.Finding{}
	}
	plat := strings.Join(a.platforms, ",")
	if plat == "" {
		plat = "linux/amd64,linux/arm64"
	}
	build := fmt.Sprintf("docker buildx build --platform %s -f %s -t %s --push .", plat, shellQuote(f.Path), shellQuote(a.Image))
	if len(c.Findings) == 0 {
		c.Summary = fmt.Sprintf("no finding: nothing in %s keeps it from building %s; build and push with `%s`", f.Path, plat, build)
	} else {
		c.Summary = fmt.Sprintf("%d finding(s) in %s block the multi-arch build: apply each fix, then build and push with `%s`", len(c.Findings), f.Path, build)
	}
	return c
}

// repoOf is the repository of an image reference (index.docker.io/library/
// for Docker Hub short names), or the reference itself when it does not
// parse.
func repoOf(ref string) string {
	if r, err := name.ParseReference(ref); err == nil {
		return r.Context().Name()
	}
	if r, err := name.NewRepository(ref); err == nil {
		return r.Name()
	}
	return ref
}

// ValidImageKey says whether s names an image repository or reference, as
// --dockerfile IMAGE=PATH takes.
func ValidImageKey(s string) error {
	if _, err := name.ParseReference(s); err != nil {
		return fmt.Errorf("%q is not an image reference or repository: %w", s, err)
	}
	return nil
}
