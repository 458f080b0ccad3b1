package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// crashRule is one way to explain a crash. The first rule for the crash's
// signal whose condition holds decides: its finding, or none when it has no
// finding function.
type crashRule struct {
	name   string
	signal signal // what the crash's texts say (sigNone: nothing)
	// code is the finding's code, "" for none; an arch finding is
	// mislabeled-platform instead of wrong-arch-binary when the entry claims
	// the node's architecture (archFinding).
	code    string
	when    func(*crash) bool // nil: always
	finding func(*crash) finding.Finding
}

// crashRules, in order: what the image proves comes before what the
// workload's other pods suggest, and that before a guess.
var crashRules = []crashRule{
	// An illegal instruction (SIGILL, GOAMD64 or x86-64-vN messages, exit 132).
	{name: "foreign binary under emulation", signal: sigCPULevel, code: finding.WrongArchBinary, when: (*crash).foreignEntry,
		finding: func(k *crash) finding.Finding {
			return k.archFinding("", finding.High, "it ran under qemu emulation and crashed")
		}},
	{name: "CPU level too new", signal: sigCPULevel, code: finding.CPULevelUnsupported, finding: (*crash).cpuLevel},

	// exec format error.
	{name: "foreign entry", signal: sigExecFormat, code: finding.WrongArchBinary, when: (*crash).foreignEntry,
		finding: func(k *crash) finding.Finding { return k.archFinding("", finding.High, "") }},
	{name: "entrypoint not executable", signal: sigExecFormat, code: finding.NotAnExecutable, when: (*crash).entrypointNotExecutable,
		finding: func(k *crash) finding.Finding { return k.notExecutable(finding.High) }},
	{name: "32-bit arm entry on arm64", signal: sigExecFormat, code: finding.WrongArchBinary, when: (*crash).arm32Entry,
		finding: func(k *crash) finding.Finding {
			return k.archFinding("the node pulled the 32-bit "+platform.String(k.e.EffectivePlatform())+" entry (containerd's local path falls back to arm/v7 when there is no arm64 entry) and this CPU cannot run AArch32", finding.High, "")
		}},
	{name: "foreign entry on the other pull path", signal: sigExecFormat, code: finding.WrongArchBinary, when: (*crash).otherPullPathForeign,
		finding: func(k *crash) finding.Finding {
			return k.archFinding("under the runtime's other pull path the node gets an entry that is not "+k.arch, finding.Medium, "")
		}},
	{name: "entrypoint fine, another file foreign", signal: sigExecFormat, code: finding.WrongArchBinary, when: (*crash).entrypointOK,
		finding: func(k *crash) finding.Finding {
			f := k.found(finding.WrongArchBinary, finding.Low, fmt.Sprintf("%s: exec format error, but the entrypoint %s is a %s binary as the node needs: a file it executes is built for another architecture", k.cs.Image, k.ep.Path, k.ep.Arch))
			f.Missing = append(slices.Clip(k.missing), "which file failed to execute")
			return f
		}},
	{name: "runs on other architectures", signal: sigExecFormat, code: finding.WrongArchBinary, when: (*crash).runsElsewhere,
		finding: func(k *crash) finding.Finding {
			ok, _ := k.peers()
			return k.found(finding.WrongArchBinary, finding.Medium, fmt.Sprintf("%s fails with exec format error on %s nodes but runs on %s nodes: its binary is not built for %s", k.cs.Image, orUnknown(k.arch), keys(ok), orUnknown(k.arch)))
		}},
	{name: "fails on every architecture", signal: sigExecFormat, code: finding.NotAnExecutable, when: (*crash).failsEverywhere,
		finding: func(k *crash) finding.Finding {
			_, bad := k.peers()
			return k.found(finding.NotAnExecutable, finding.Medium, fmt.Sprintf("%s fails with exec format error on every architecture (%s): its entrypoint is not an executable (script without #!?), not an architecture problem", k.cs.Image, keys(bad)))
		}},
	{name: "older image under a moved tag", signal: sigExecFormat, code: finding.WrongArchBinary, when: (*crash).tagMoved,
		finding: func(k *crash) finding.Finding {
			return k.found(finding.WrongArchBinary, finding.Medium, fmt.Sprintf("%s: exec format error on %s node %s, which runs an older image %s cached under the same tag; the current %s runs on %s: re-pull it (imagePullPolicy: Always, or pin the digest)",
				k.cs.Image, orUnknown(k.arch), k.nodeName(), short(k.staleImage()), short(k.rep.Digest), orNone(strings.Join(k.rep.Architectures, ", "))))
		}},
	{name: "exec format error, nothing more known", signal: sigExecFormat, code: finding.WrongArchBinary,
		finding: func(k *crash) finding.Finding {
			f := k.found(finding.WrongArchBinary, finding.Low, fmt.Sprintf("%s: exec format error on %s node %s: most likely a binary for another architecture (a script without #! looks the same)", k.cs.Image, orUnknown(k.arch), k.nodeName()))
			if len(k.missing) == 0 {
				f.Missing = []string{"entrypoint verdict"}
			}
			return f
		}},

	// no such file or directory while exec'ing.
	{name: "entrypoint not executable or absent", signal: sigNoSuchFile, code: finding.NotAnExecutable, when: (*crash).entrypointNotExecutableOrAbsent,
		finding: func(k *crash) finding.Finding { return k.notExecutable(finding.High) }},
	// A foreign dynamic binary run through binfmt emulation whose loader is
	// missing fails with ENOENT, not ENOEXEC.
	{name: "foreign entry without its loader", signal: sigNoSuchFile, code: finding.WrongArchBinary, when: (*crash).foreignEntry,
		finding: func(k *crash) finding.Finding { return k.archFinding("", finding.Medium, "its loader is not found") }},
	{name: "no such file, nothing more known", signal: sigNoSuchFile, code: finding.NotAnExecutable,
		finding: func(k *crash) finding.Finding {
			conf := finding.Medium
			if k.entrypointOK() {
				conf = finding.Low
			}
			return k.found(finding.NotAnExecutable, conf, fmt.Sprintf("%s: the entrypoint cannot be executed (no such file or directory): a missing interpreter or loader, a CRLF shebang, or a wrong path; not an architecture problem", k.cs.Image))
		}},

	// Nothing in what was read: only a silent exit and the image speak.
	{name: "application failure", signal: sigNone, when: func(k *crash) bool { return k.haveLog }},
	{name: "exit code not an exec failure", signal: sigNone, when: func(k *crash) bool { return !k.execExit() }},
	{name: "no entry known", signal: sigNone, when: func(k *crash) bool { return k.e == nil }},
	{name: "silent foreign entry", signal: sigNone, code: finding.WrongArchBinary, when: (*crash).foreignEntry,
		finding: func(k *crash) finding.Finding { return k.archFinding("", finding.Medium, "") }},
	{name: "silent entrypoint not executable", signal: sigNone, code: finding.NotAnExecutable, when: (*crash).entrypointNotExecutable,
		finding: func(k *crash) finding.Finding { return k.notExecutable(finding.Medium) }},
	{name: "silent 32-bit arm entry on arm64", signal: sigNone, code: finding.WrongArchBinary,
		when: func(k *crash) bool { return k.arm32Entry() && (k.exit == 255 || k.exit == 1) },
		finding: func(k *crash) finding.Finding {
			return k.archFinding("the node pulled the 32-bit "+platform.String(k.e.EffectivePlatform())+" entry; on CPUs without AArch32 it cannot run", finding.Low, "")
		}},
	{name: "silent GOAMD64 above v1", signal: sigNone, code: finding.CPULevelUnsupported,
		when: func(k *crash) bool { return goamd64(k.ep) != "" && k.arch == "amd64" && k.exit == 1 },
		finding: func(k *crash) finding.Finding {
			return k.found(finding.CPULevelUnsupported, finding.Low, fmt.Sprintf("%s is a Go binary built with GOAMD64=%s; exit 1 with no log on node %s fits a CPU below that level", k.cs.Image, goamd64(k.ep), k.nodeName()))
		}},
}

// rule is the rule that explains k, nil if none does.
func (k *crash) rule() *crashRule {
	for i := range crashRules {
		r := &crashRules[i]
		if r.signal == k.sig && (r.when == nil || r.when(k)) {
			return r
		}
	}
	return nil
}

// ---- conditions ----

// foreignEntry: the entry the node pulled does not run on its architecture.
func (k *crash) foreignEntry() bool { return k.e != nil && !k.runs }

func (k *crash) entrypointNotExecutable() bool {
	return k.ep != nil && (k.ep.Verdict == image.VerdictNotExecutable || k.ep.Verdict == image.VerdictMissingInterp)
}

func (k *crash) entrypointNotExecutableOrAbsent() bool {
	return k.entrypointNotExecutable() || k.ep != nil && k.ep.Verdict == image.VerdictNotFound
}

func (k *crash) entrypointOK() bool { return k.ep != nil && k.ep.Verdict == image.VerdictOK }

func (k *crash) arm32Entry() bool { return k.e != nil && arm32OnArm64(k.e, k.arch) }

// otherPullPathForeign: the runtime's other pull path gives an entry that
// does not run here.
func (k *crash) otherPullPathForeign() bool {
	return k.e != nil && len(k.pl.alt) > 0 && altBroken(k.rep, k.pl.alt, k.arch)
}

// runsElsewhere: the workload's other pods run it on other architectures,
// not on this one.
func (k *crash) runsElsewhere() bool {
	ok, _ := k.peers()
	return len(ok) > 0 && !ok[k.arch]
}

func (k *crash) failsEverywhere() bool {
	_, bad := k.peers()
	return len(bad) > 1
}

func (k *crash) tagMoved() bool { return k.staleImage() != "" }

// execExit: the exit code is one a failed exec gives, or none was recorded.
func (k *crash) execExit() bool {
	switch k.exit {
	case 255, 1, 126, 127, 128, 2, 0:
		return true
	}
	return false
}

// ---- findings ----

// found is a finding about k with its evidence.
func (k *crash) found(code string, conf finding.Confidence, msg string) finding.Finding {
	f := k.base(code, msg)
	f.Evidence, f.Confidence, f.Missing = dedup(k.ev), conf, k.missing
	return f
}

// cpuLevel: right architecture, too new a CPU level. High confidence only
// when a message says so in words.
func (k *crash) cpuLevel() finding.Finding {
	conf := finding.High
	if len(k.sigTexts) == 0 {
		conf = finding.Medium
	}
	f := k.found(finding.CPULevelUnsupported, conf, fmt.Sprintf("%s is built for a newer CPU level than node %s provides (right architecture, not an arch mismatch)", k.cs.Image, k.nodeName()))
	if lvl := goamd64(k.ep); lvl != "" {
		f.Message += "; Go build setting GOAMD64=" + lvl
	}
	if k.exit == 132 && len(k.sigTexts) == 0 {
		f.Evidence = dedup(append([]string{"exit code 132 = 128 + SIGILL (illegal instruction)"}, k.ev...))
	}
	return f
}

// archFinding is wrong-arch-binary, or mislabeled-platform when the entry
// the node pulled claims the node's architecture. why is the rule's own
// explanation for wrong-arch-binary ("" when the binary's arch says it all);
// extra is added to either.
func (k *crash) archFinding(why string, conf finding.Confidence, extra string) finding.Finding {
	e, arch, ev := k.e, k.arch, k.ev
	declared := e.Platform
	if declared == nil && k.rep.Kind == image.KindManifest {
		declared = e.ConfigPlatform
	}
	binArch := ""
	if ep := e.Entrypoint; ep != nil && ep.Arch != "" {
		binArch = ep.Arch
	} else if e.ConfigPlatform != nil {
		binArch = platform.Arch(*e.ConfigPlatform)
	}
	var f finding.Finding
	if declared != nil && arch != "" && platform.Arch(*declared) == arch && binArch != "" && binArch != arch {
		f = k.base(finding.MislabeledPlatform, fmt.Sprintf("%s: the entry labeled %s that node %s pulls contains a binary for %s", k.cs.Image, platform.String(declared), k.nodeName(), binArch))
		if e.Mismatch != "" {
			ev = append(ev, "archfit: "+e.Mismatch)
		}
	} else {
		what := binArch
		if what == "" {
			what = "another architecture"
		}
		f = k.base(finding.WrongArchBinary, fmt.Sprintf("%s runs a binary for %s on %s node %s", k.cs.Image, what, orUnknown(arch), k.nodeName()))
		if k.rep.Kind == image.KindManifest {
			f.Message += " (a single-platform manifest is pulled whatever its platform; it fails only at exec)"
		}
		if why != "" {
			f.Message += ": " + why
		}
	}
	if extra != "" {
		f.Message += "; " + extra
	}
	f.Evidence, f.Confidence, f.Missing = dedup(ev), conf, k.missing
	return f
}

// notExecutable: the entrypoint cannot be executed whatever the
// architecture.
func (k *crash) notExecutable(conf finding.Confidence) finding.Finding {
	ep := k.ep
	what := ep.Detail
	if what == "" {
		what = ep.Verdict
	}
	f := k.base(finding.NotAnExecutable, fmt.Sprintf("%s: the entrypoint %s cannot be executed: %s; NOT an architecture problem, rebuilding for another arch will not help", k.cs.Image, orNone(firstNonEmpty(ep.Path, ep.Argv0)), what))
	f.Evidence, f.Confidence, f.Missing = dedup(k.ev), conf, k.missing
	return f
}
