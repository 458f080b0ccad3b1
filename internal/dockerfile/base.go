package dockerfile

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerd/platforms"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// BaseCheck is how one FROM image was judged against the build's target
// platforms (`archfit dockerfile --check-base`).
type BaseCheck struct {
	BaseImage
	// Needs are the platforms this stage is built for: every target for a
	// stage that follows $TARGETPLATFORM, the literal one for a pinned
	// stage, none for a $BUILDPLATFORM stage (it runs on the builder).
	Needs []string `json:"needs,omitempty"`
	// Has are the runnable platforms the image publishes (attestations
	// excluded); Missing are the needed ones it lacks.
	Has     []string `json:"has,omitempty"`
	Missing []string `json:"missing,omitempty"`
	// Digest of what the reference resolved to.
	Digest string `json:"digest,omitempty"`
	// Note says why the image was not judged, or what limits the answer.
	Note string `json:"note,omitempty"`
}

// Needs returns the platforms a stage with this FROM --platform value is
// built for, given the build's targets; nil for a $BUILDPLATFORM stage.
func stageNeeds(flag string, targets []specs.Platform) ([]specs.Platform, string) {
	switch v := strings.TrimSpace(flag); {
	case v == "" || isArgRef(v, "TARGETPLATFORM"):
		return targets, ""
	case isArgRef(v, "BUILDPLATFORM"):
		return nil, "built on the build machine's platform ($BUILDPLATFORM): any platform a builder has is enough"
	case strings.Contains(v, "$"):
		return nil, fmt.Sprintf("--platform=%s is computed by the build: not checked", v)
	default:
		p, err := platform.Parse(v)
		if err != nil {
			return nil, fmt.Sprintf("--platform=%s: %v", v, err)
		}
		return []specs.Platform{p}, ""
	}
}

func isArgRef(v, name string) bool { return v == "$"+name || v == "${"+name+"}" }

// CheckBases judges every base image against the platforms its stage is
// built for. reports holds the inspection of each base image by its Ref
// (as BaseImage.Ref spells it); a base without a report (unresolved ARG)
// is listed with a note. Findings are on the FROM line.
func CheckBases(bases []BaseImage, reports map[string]*image.Report, targets []specs.Platform) ([]BaseCheck, []finding.Finding) {
	checks := make([]BaseCheck, 0, len(bases))
	var fs []finding.Finding
	for _, b := range bases {
		c := BaseCheck{BaseImage: b}
		needs, note := stageNeeds(b.Platform, targets)
		for _, p := range needs {
			c.Needs = append(c.Needs, platform.Normalized(p))
		}
		c.Note = note
		if b.Unresolved {
			c.Note = "the reference depends on an ARG without a default (pass it with --build-arg): not checked"
			f := finding.New(finding.ImageUninspectable, fmt.Sprintf("FROM %s: %s", b.Ref, c.Note))
			f.File, f.Line, f.Image, f.Evidence = b.File, b.Line, b.Ref, []string{b.Ref}
			fs = append(fs, f)
			checks = append(checks, c)
			continue
		}
		rep := reports[b.Ref]
		switch {
		case rep == nil:
			c.Note = "not inspected"
		case rep.Error != nil:
			c.Note = "could not be read: " + rep.Error.Detail
			f := finding.New(finding.ImageUninspectable, fmt.Sprintf("base image %s could not be read, so its platforms are unknown: %s", b.Ref, rep.Error.Detail))
			f.File, f.Line, f.Image, f.Evidence = b.File, b.Line, b.Ref, []string{rep.Error.Detail}
			fs = append(fs, f)
		default:
			c.Digest = rep.Digest
			c.Has = runnable(rep)
			var why []string
			for _, p := range needs {
				if ok, reason := buildKitPick(rep, p); !ok {
					c.Missing = append(c.Missing, platform.Normalized(p))
					why = append(why, reason)
				}
			}
			if len(c.Missing) > 0 {
				fs = append(fs, missingBase(b, rep, c, why))
			}
		}
		checks = append(checks, c)
	}
	return checks, fs
}

// runnable lists the image's runnable platforms, normalized and sorted.
func runnable(rep *image.Report) []string {
	var out []string
	for _, s := range rep.Platforms {
		p, err := platform.Parse(s)
		if err != nil || platform.IsUnknown(&p) {
			continue
		}
		if n := platform.Normalized(p); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// buildKitPick reports whether a build for target gets a base image of
// target's own architecture from rep, and if not, what BuildKit does
// instead. BuildKit resolves a FROM image for the stage's platform with
// containerd's platforms.Only(target): an index entry of the exact platform
// first, then what the target can also run (386 for amd64, 32-bit arm for
// arm64); a single manifest is taken for every target whatever it is.
func buildKitPick(rep *image.Report, target specs.Platform) (bool, string) {
	want := platform.Arch(target)
	if rep.Kind != image.KindIndex {
		var e *image.Entry
		if len(rep.Entries) > 0 {
			e = &rep.Entries[0]
		}
		if e == nil || e.EffectivePlatform() == nil {
			return false, "a single manifest with no platform: BuildKit uses it for every target"
		}
		got := *e.EffectivePlatform()
		if platform.Arch(got) == want {
			return entryGenuine(e, want)
		}
		return false, fmt.Sprintf("a single %s manifest, not an index: BuildKit uses it for the %s build too, so that image holds %s files (recent BuildKit only warns: InvalidBaseImagePlatform)",
			platform.String(&got), platform.Normalized(target), platform.Arch(got))
	}
	m := platforms.Only(target)
	var best *image.Entry
	for i := range rep.Entries {
		e := &rep.Entries[i]
		p := e.EffectivePlatform()
		if e.Attestation || e.SkipReason != "" || p == nil || platform.IsUnknown(p) || !m.Match(*p) {
			continue
		}
		if best == nil || m.Less(*p, *best.EffectivePlatform()) {
			best = e
		}
	}
	if best == nil {
		return false, fmt.Sprintf("the index has no entry for %s: BuildKit fails that platform's build (no match for platform in manifest)", platform.Normalized(target))
	}
	got := *best.EffectivePlatform()
	if platform.Arch(got) != want {
		what := platform.Arch(got) + " files"
		switch platform.Arch(got) {
		case "arm":
			what = "32-bit arm files, which 64-bit-only Arm CPUs cannot run at all"
		case "386":
			what = "32-bit x86 files"
		}
		return false, fmt.Sprintf("the index has no %s entry: BuildKit falls back to %s, so the %s image holds %s",
			platform.Normalized(target), platform.String(&got), platform.Normalized(target), what)
	}
	return entryGenuine(best, want)
}

// entryGenuine: the entry BuildKit picks by its label must really be that
// architecture (verification, or the config's own platform).
func entryGenuine(e *image.Entry, arch string) (bool, string) {
	if ok, why := e.Runs(arch); !ok || e.Mismatch != "" {
		if why == "" {
			why = e.Mismatch
		}
		return false, fmt.Sprintf("BuildKit picks entry %s by its %s label, but %s", short(e.Digest), arch, why)
	}
	return true, ""
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func missingBase(b BaseImage, rep *image.Report, c BaseCheck, why []string) finding.Finding {
	has := "no runnable platform"
	if len(c.Has) > 0 {
		has = strings.Join(c.Has, ", ")
	}
	stage := ""
	if b.Stage != "" {
		stage = fmt.Sprintf(" (stage %s)", b.Stage)
	}
	msg := fmt.Sprintf("base image %s%s is not published for %s (it has %s): %s",
		b.Ref, stage, strings.Join(c.Missing, ", "), has, strings.Join(why, "; "))
	f := finding.New(finding.BaseImageMissingPlatform, msg)
	f.File, f.Line, f.Image = b.File, b.Line, b.Ref
	f.ImagePlatforms = c.Has
	f.Evidence = []string{b.Ref + "@" + rep.Digest, "platforms: " + has}
	if len(rep.Alternatives) > 0 {
		f.Fix = fromLine(b, rep.Alternatives[0].Reference)
	} else {
		f.Fix = fmt.Sprintf("# use a tag of %s published for %s (--suggest-tags N looks for one), or build the base for every target platform",
			repository(b.Ref), strings.Join(c.Needs, " and "))
	}
	return f
}

// fromLine is the FROM instruction of b with ref as its image.
func fromLine(b BaseImage, ref string) string {
	l := "FROM "
	if b.Platform != "" {
		l += "--platform=" + b.Platform + " "
	}
	l += ref
	if b.Stage != "" {
		l += " AS " + b.Stage
	}
	return l
}

// repository is ref without its tag or digest.
func repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}
