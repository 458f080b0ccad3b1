package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/registry"
)

// What a report says in sum: runnable platforms and what each node pulls.

// runnable reports whether an entry is a real image a node could run.
func (e *Entry) runnable() bool { return !e.Attestation && e.SkipReason == "" }

// EffectivePlatform is the platform a runtime matches the entry by: the
// index's, or its config's when the index declares none.
func (e *Entry) EffectivePlatform() *specs.Platform {
	if e.Platform != nil {
		return e.Platform
	}
	return e.ConfigPlatform
}

// Runs reports whether the entry's content really runs on a node of arch,
// and why not. 386 runs on amd64 and 32-bit arm on arm64 (where the CPU has
// AArch32), which is what the runtimes' fallbacks rely on.
func (e *Entry) Runs(arch string) (bool, string) {
	if ep := e.Entrypoint; ep != nil && ep.Arch != "" && (ep.Verdict == VerdictOK || ep.Verdict == VerdictWrongArch) {
		if !compatible(ep.Arch, arch) {
			return false, fmt.Sprintf("entrypoint %s is %s", ep.Path, ep.Arch)
		}
		return true, ""
	}
	if e.ConfigPlatform != nil && !compatible(platform.Arch(*e.ConfigPlatform), arch) {
		return false, fmt.Sprintf("config says %s", platform.String(e.ConfigPlatform))
	}
	return true, ""
}

func compatible(binArch, nodeArch string) bool {
	return binArch == nodeArch || nodeArch == "amd64" && binArch == "386" || nodeArch == "arm64" && binArch == "arm"
}

func summarize(rep *Report) {
	seenP, seenA := map[string]bool{}, map[string]bool{}
	for i := range rep.Entries {
		e := &rep.Entries[i]
		if !e.runnable() {
			continue
		}
		p := e.EffectivePlatform()
		if p == nil {
			continue
		}
		if s := platform.String(p); !seenP[s] {
			seenP[s] = true
			rep.Platforms = append(rep.Platforms, s)
		}
		arch := platform.Arch(*p)
		if ok, _ := e.Runs(arch); ok && !seenA[arch] {
			seenA[arch] = true
			rep.Architectures = append(rep.Architectures, arch)
		}
		if e.Mismatch != "" {
			rep.Problems = append(rep.Problems, Problem{Code: "mislabeled-platform", Entry: e.Digest, Detail: e.Mismatch})
		}
		if ep := e.Entrypoint; ep != nil {
			switch ep.Verdict {
			case VerdictNotExecutable, VerdictMissingInterp:
				rep.Problems = append(rep.Problems, Problem{Code: "not-an-executable", Entry: e.Digest, Detail: ep.Detail})
			}
			if lvl := ep.GoSettings["GOAMD64"]; lvl != "" && lvl != "v1" {
				rep.Problems = append(rep.Problems, Problem{Code: "cpu-level-unsupported", Entry: e.Digest,
					Detail: fmt.Sprintf("Go binary built with GOAMD64=%s: fails on amd64 CPUs below x86-64-%s", lvl, lvl)})
			}
		}
	}
	sort.Strings(rep.Architectures)
	rep.EffectivelySingleArch = rep.Kind == KindIndex && len(rep.Platforms) == 1
	if rep.EffectivelySingleArch {
		rep.Notes = append(rep.Notes, fmt.Sprintf("index with one runnable platform (%s): effectively single-arch", rep.Platforms[0]))
	}
}

// pulls computes what each node type would pull, under each runtime, then
// under each rules variant (platform.Variants) where it chooses differently
// from its base.
func (r *Resolver) pulls(rep *Report, top doc, w *walk) {
	if rep.Error != nil || len(rep.Entries) == 0 {
		return
	}
	var idx platform.Index
	if rep.Kind == KindIndex {
		idx = r.runtimeIndex(rep, top, w)
	}
	for _, node := range r.nodes {
		first := len(rep.Pulls)
		for _, rt := range platform.Runtimes {
			if p, ok := pullOne(rep, idx, node, rt); ok {
				rep.Pulls = append(rep.Pulls, p)
			}
		}
		if rep.Kind != KindIndex {
			continue
		}
		base := rep.Pulls[first:]
		for _, rt := range platform.Variants {
			p, ok := pullOne(rep, idx, node, rt)
			if !ok {
				continue
			}
			same := false
			for _, b := range base {
				if b.Runtime == rt.Base() && b.Digest == p.Digest && b.Error == p.Error {
					same = true
				}
			}
			if !same {
				rep.Pulls = append(rep.Pulls, p)
			}
		}
	}
}

// PullRuntime is the matcher under which rep lists the pulls of a node of
// platform node running rt: rt, or its base when rep lists no pull for the
// variant rt (it chooses as its base does).
func PullRuntime(rep *Report, node string, rt platform.Runtime) platform.Runtime {
	if rt == rt.Base() {
		return rt
	}
	for _, p := range rep.Pulls {
		if p.Node == node && p.Runtime == rt {
			return rt
		}
	}
	return rt.Base()
}

// pullOne is what a node of platform node pulls under rt; false when the
// chosen entry is not among the report's.
func pullOne(rep *Report, idx platform.Index, node specs.Platform, rt platform.Runtime) (Pull, bool) {
	nodeArch := platform.Arch(node)
	p := Pull{Node: platform.String(&node), Runtime: rt}
	var chosen *Entry
	if rep.Kind == KindIndex {
		d, err := platform.Choose(rt, node, idx)
		if err != nil {
			p.Error = err.Error()
			var nm *platform.NoMatchError
			if rt.Base() != platform.CRIO && !(errors.As(err, &nm) && nm.AfterPull) {
				// A failed download; a failed image.Config after a
				// successful one is reported as is.
				p.Error = fmt.Sprintf("failed to pull and unpack image %q: %s", rep.Reference, err)
			}
			f := false
			p.Runs = &f
			return p, true
		}
		for i := range rep.Entries {
			if rep.Entries[i].Digest == d.Digest.String() {
				chosen = &rep.Entries[i]
				break
			}
		}
	} else {
		chosen = &rep.Entries[0]
		p.Reason = "single manifest: pulled whatever its platform, fails only at exec"
	}
	if chosen == nil {
		return p, false
	}
	p.Digest = chosen.Digest
	p.Platform = platform.String(chosen.EffectivePlatform())
	runs, why := chosen.Runs(nodeArch)
	if runs && chosen.EffectivePlatform() != nil {
		if a := platform.Arch(*chosen.EffectivePlatform()); a == "arm" && nodeArch == "arm64" {
			why = "32-bit arm entry: runs only where the CPU and kernel support AArch32 (not Graviton4, not AmpereOne)"
		}
	}
	p.Runs = &runs
	if why != "" {
		if p.Reason != "" {
			p.Reason += "; "
		}
		p.Reason += why
	}
	return p, true
}

// runtimeIndex is the index as a runtime sees it: the top index's entries
// as declared, the entries of the nested indexes walked, and what was read
// of entries' configs (the platform of entries that declare none, and the
// config digest a runtime reports as the image ID).
func (r *Resolver) runtimeIndex(rep *Report, top doc, w *walk) platform.Index {
	idx := platform.Index{Ref: rep.Reference, Digest: digest.Digest(top.desc.Digest), MediaType: top.desc.MediaType, Raw: top.raw,
		ConfigPlatform: map[digest.Digest]specs.Platform{}, ConfigDigest: map[digest.Digest]digest.Digest{},
		Children: map[digest.Digest][]specs.Descriptor{}}
	if w != nil {
		for d, ch := range w.children {
			if d == idx.Digest {
				idx.Manifests = ch
			} else {
				idx.Children[d] = ch
			}
		}
	}
	for _, e := range rep.Entries {
		d := digest.Digest(e.Digest)
		if e.Platform == nil && e.ConfigPlatform != nil {
			idx.ConfigPlatform[d] = *e.ConfigPlatform
		}
		if e.ConfigDigest != "" {
			idx.ConfigDigest[d] = digest.Digest(e.ConfigDigest)
		}
	}
	return idx
}

func short(d string) string {
	if _, h, ok := strings.Cut(d, ":"); ok && len(h) > 12 {
		return h[:12]
	}
	return d
}

// failure classifies why an image could not be inspected.
// Distinct counts the distinct references among reps (a reference is
// inspected once per command/args its containers run it with).
func Distinct(reps []*Report) int {
	seen := map[string]bool{}
	for _, r := range reps {
		if r != nil {
			seen[r.Reference] = true
		}
	}
	return len(seen)
}

func failure(err error, ref name.Reference, tried string) *Failure {
	f := &Failure{Detail: err.Error(), Tried: tried}
	var he *registry.HTTPError
	var ae *AmbiguousError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &he):
		f.Reason, f.Status = he.Reason(), he.StatusCode
	case errors.As(err, &ae):
		f.Reason = "ambiguous"
	case errors.Is(err, registry.ErrTooLarge), errors.Is(err, registry.ErrDigestMismatch), errors.Is(err, registry.ErrUnsupportedDigest):
		f.Reason = "invalid"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		f.Reason = "timeout"
	case errors.As(err, &ne), errors.As(err, &ue):
		f.Reason = "unreachable"
	default:
		f.Reason = "error"
	}
	return f
}

// PullsFor is what exactly these nodes pull, under every path their
// runtime version may take (the default first), each with the runtime as
// the user gave it. The report must have been resolved for the nodes'
// platforms (WithNodes).
func (r *Report) PullsFor(nodes []platform.NodeSpec) []Pull {
	var out []Pull
	for _, n := range nodes {
		node := platform.String(&n.Platform)
		for _, rt := range n.RuntimeInfo.Matchers {
			want := PullRuntime(r, node, rt)
			for _, p := range r.Pulls {
				if p.Node == node && p.Runtime == want {
					p.Runtime = rt
					p.NodeRuntime = n.Runtime
					out = append(out, p)
				}
			}
		}
	}
	return out
}
