package diagnose

import (
	"github.com/archfit/archfit/internal/object"

	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// What can be missing from the evidence (Finding.Missing).
const (
	MissingLog       = "container log"
	MissingPullError = "pull error message"
	MissingImage     = "image contents"
	MissingNode      = "node"
	MissingEvents    = "scheduling events"
)

// Diagnose judges every failing pod of snap (and the healthy workloads at
// risk whose images were inspected) and returns the findings, one per
// workload, container and code, with the evidence of all its pods.
func Diagnose(snap *cluster.Snapshot, images *Images) []finding.Finding {
	var raw []finding.Finding
	failingWorkloads := map[*cluster.Workload]bool{}
	for _, p := range snap.FailingPods() {
		if p.Workload != nil {
			failingWorkloads[p.Workload] = true
		}
		raw = append(raw, judgePod(snap, p, images)...)
	}
	raw = append(raw, pinnedConflicts(snap, images, raw)...)
	raw = append(raw, atRisk(snap, images, failingWorkloads)...)
	return merge(raw)
}

// judgePod classifies every failing container of one pod, or its
// scheduling failure.
func judgePod(snap *cluster.Snapshot, p *cluster.Pod, images *Images) []finding.Finding {
	var out []finding.Finding
	for _, cs := range p.Containers() {
		c := &containerCase{snap: snap, pod: p, cs: cs, spec: specContainer(&p.Spec, cs.Name)}
		c.rep = images.Get(request(c.spec, cs.Image))
		out = append(out, c.judge()...)
	}
	if len(out) == 0 && p.Spec.NodeName == "" {
		if f, ok := judgeUnschedulable(snap, p, images); ok {
			out = append(out, f)
		}
	}
	return out
}

// containerCase is one container of one pod under judgement.
type containerCase struct {
	snap *cluster.Snapshot
	pod  *cluster.Pod
	cs   cluster.ContainerStatus
	spec *corev1.Container
	rep  *image.Report
}

var pullReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

func (c *containerCase) judge() []finding.Finding {
	w := c.cs.Waiting
	switch {
	case w != nil && pullReasons[w.Reason]:
		return c.judgePull()
	case w != nil && (w.Reason == "CrashLoopBackOff" || w.Reason == "RunContainerError" || w.Reason == "CreateContainerError" || w.Reason == "StartError"):
		return c.judgeCrash()
	case c.cs.Terminated != nil && c.cs.Terminated.ExitCode != 0:
		return c.judgeCrash()
	case c.cs.Running != nil && !c.cs.Ready && c.cs.RestartCount > 0 && c.cs.LastTerminated != nil && c.cs.LastTerminated.ExitCode != 0:
		return c.judgeCrash()
	}
	// CreateContainerConfigError (missing ConfigMap/Secret), hooks, and
	// healthy containers: not ours to judge.
	return nil
}

// base fills what every finding about this container carries.
func (c *containerCase) base(code, msg string) finding.Finding {
	f := finding.New(code, msg)
	if wl := c.pod.Workload; wl != nil {
		f.Workload = &object.Ref{Kind: wl.Kind, Namespace: wl.Namespace, Name: wl.Name}
	} else {
		f.Workload = &object.Ref{Kind: cluster.KindPod, Namespace: c.pod.Namespace, Name: c.pod.Name}
	}
	f.Pod = c.pod.Name
	f.Container = c.cs.Name
	f.ContainerType = string(c.cs.Role)
	f.Image = c.cs.Image
	if n := c.pod.Node; n != nil {
		f.Node = n.Name
		f.NodePlatform = platform.String(&n.Platform)
	} else if c.pod.Spec.NodeName != "" {
		f.Node = c.pod.Spec.NodeName
	}
	if c.rep != nil && c.rep.Error == nil {
		f.ImagePlatforms = c.rep.Platforms
	}
	return f
}

// nodeArch is the canonical arch of the pod's node, "" if unknown.
func (c *containerCase) nodeArch() string {
	if c.pod.Node == nil {
		return ""
	}
	return c.pod.Node.Arch()
}

// pull is what the node's runtime pulls from the image, under its default
// matcher first; alt lists the other matchers the runtime may use that
// choose differently.
type pulled struct {
	pull  *image.Pull
	entry *image.Entry
	alt   []*image.Pull
}

func (c *containerCase) pulled() *pulled {
	if c.rep == nil || c.rep.Error != nil || c.pod.Node == nil {
		return nil
	}
	n := c.pod.Node
	want := platform.String(&n.Platform)
	matchers := n.Runtime.Matchers
	if len(matchers) == 0 {
		matchers = []platform.Runtime{platform.ContainerdLocal}
	}
	var res *pulled
	for _, rt := range matchers {
		for i := range c.rep.Pulls {
			pl := &c.rep.Pulls[i]
			if pl.Node != want || pl.Runtime != rt {
				continue
			}
			if res == nil {
				res = &pulled{pull: pl, entry: entryOf(c.rep, pl.Digest)}
			} else if pl.Digest != res.pull.Digest {
				res.alt = append(res.alt, pl)
			}
		}
	}
	if res == nil && c.rep.Kind == image.KindManifest && len(c.rep.Entries) == 1 {
		// A node platform the resolver did not model: a single manifest is
		// pulled whatever it says.
		res = &pulled{pull: &image.Pull{Node: want, Digest: c.rep.Entries[0].Digest}, entry: &c.rep.Entries[0]}
	}
	return res
}

func entryOf(r *image.Report, dgst string) *image.Entry {
	if dgst == "" {
		return nil
	}
	for i := range r.Entries {
		if r.Entries[i].Digest == dgst {
			return &r.Entries[i]
		}
	}
	return nil
}

// nodeEvidence describes the node as seen.
func (c *containerCase) nodeEvidence() string {
	n := c.pod.Node
	if n == nil {
		return ""
	}
	rt := n.Runtime.Name
	if n.Runtime.Version != "" {
		rt += "://" + n.Runtime.Version
	}
	return fmt.Sprintf("node %s: %s, %s", n.Name, platform.String(&n.Platform), rt)
}

// events are the pod's events about this container: those whose fieldPath
// names it, and those without a fieldPath that quote its image (some event
// exporters and old dumps drop the fieldPath).
func (c *containerCase) events() []*corev1.Event {
	out := c.pod.ContainerEvents(c.cs.Name)
	for _, e := range c.pod.Events {
		if e.InvolvedObject.FieldPath == "" && c.cs.Image != "" && strings.Contains(e.Message, `"`+c.cs.Image+`"`) {
			out = append(out, e)
		}
	}
	return out
}

// staleImage returns the digest the node runs when status.imageID shows a
// repo digest that is neither the reference's current digest nor one of its
// entries: the node holds an older image under the same tag
// (imagePullPolicy IfNotPresent), so what archfit reads is not what ran.
func (c *containerCase) staleImage() string {
	if c.rep == nil || c.rep.Error != nil || c.cs.ImageID == "" {
		return ""
	}
	_, d, ok := strings.Cut(c.cs.ImageID, "@")
	if !ok || !strings.HasPrefix(d, "sha256:") {
		return ""
	}
	if d == c.rep.Digest || entryOf(c.rep, d) != nil {
		return ""
	}
	if !strings.Contains(c.cs.Image, "@") {
		return d
	}
	return ""
}

// ---- pulls ----

func (c *containerCase) pullMessages() []string {
	var msgs []string
	if w := c.cs.Waiting; w != nil && w.Message != "" {
		msgs = append(msgs, fmt.Sprintf("state.waiting %s: %s", w.Reason, w.Message))
	}
	for _, e := range c.events() {
		if e.Reason == "Failed" || e.Reason == "BackOff" || e.Reason == "ErrImagePull" || e.Reason == "InspectFailed" {
			if strings.Contains(strings.ToLower(e.Message), "pull") || classifyText(e.Message) == sigNoMatch || pullCause(e.Message) != "" {
				msgs = append(msgs, fmt.Sprintf("event %s: %s", e.Reason, e.Message))
			}
		}
	}
	return dedup(msgs)
}

func (c *containerCase) judgePull() []finding.Finding {
	msgs := c.pullMessages()
	var noMatch, notArch []string
	cause := ""
	for _, m := range msgs {
		if classifyText(m) == sigNoMatch {
			noMatch = append(noMatch, m)
		} else if cs := pullCause(m); cs != "" {
			notArch = append(notArch, m)
			if cause == "" {
				cause = cs
			}
		}
	}
	if c.cs.Waiting.Reason == "InvalidImageName" && cause == "" {
		cause = "invalid image name"
	}
	if c.cs.Waiting.Reason == "ErrImageNeverPull" && cause == "" {
		cause = "image not present and pull policy Never"
	}
	pl := c.pulled()
	switch {
	case len(noMatch) > 0:
		return []finding.Finding{c.missingPlatform(append(noMatch, c.nodeEvidence()), pl, "")}
	case cause != "":
		return []finding.Finding{c.pullNotArch(cause, append(notArch, c.nodeEvidence()), finding.High, nil)}
	}
	// No message says why (an old dump, events expired): decide from the image.
	ev := append(msgs, c.nodeEvidence())
	switch {
	case c.rep != nil && c.rep.Error != nil:
		f := c.pullNotArch(failureCause(c.rep.Error), append(ev, "archfit reading the image: "+c.rep.Error.Detail), finding.Medium, []string{MissingPullError})
		return []finding.Finding{f}
	case pl != nil && pl.pull.Error != "":
		return []finding.Finding{c.missingPlatform(ev, pl, MissingPullError)}
	case pl != nil:
		f := c.pullNotArch("unknown (the image has an entry this node pulls)", ev, finding.Low, []string{MissingPullError})
		return []finding.Finding{f}
	}
	f := c.pullNotArch("unknown", ev, finding.Low, []string{MissingPullError, MissingImage})
	return []finding.Finding{f}
}

func failureCause(f *image.Failure) string {
	switch f.Reason {
	case "auth":
		return "not authorized"
	case "not-found":
		return "image or tag not found"
	case "rate-limited":
		return "rate limited"
	case "unreachable":
		return "registry unreachable"
	}
	return f.Reason
}

func (c *containerCase) missingPlatform(ev []string, pl *pulled, missing string) finding.Finding {
	plats := "?"
	if c.rep != nil && c.rep.Error == nil {
		plats = orNone(strings.Join(c.rep.Platforms, ", "))
	}
	msg := fmt.Sprintf("image %s has no entry that the %s node can pull (index platforms: %s)", c.cs.Image, orUnknown(nodePlat(c.pod.Node)), plats)
	f := c.base(finding.MissingPlatform, msg)
	f.Confidence = finding.High
	if missing != "" {
		f.Confidence = finding.Medium
		f.Missing = append(f.Missing, missing)
	}
	switch {
	case c.rep == nil || c.rep.Error != nil:
		f.Confidence = downgrade(f.Confidence)
		f.Missing = append(f.Missing, MissingImage)
	case pl != nil && pl.pull.Error != "":
		ev = append(ev, fmt.Sprintf("archfit: %s on %s: %s", pl.pull.Runtime, pl.pull.Node, pl.pull.Error))
		if c.rep.EffectivelySingleArch {
			f.Message += "; the index holds one real image plus attestations: it is single-arch"
		}
	case pl != nil:
		// The runtime's message says no match, archfit's model of the node's
		// default pull path finds one: the node probably uses another path
		// (containerd with mirrors/auths in its CRI config takes the local one).
		ev = append(ev, fmt.Sprintf("archfit: %s on %s would pull %s (%s)", pl.pull.Runtime, pl.pull.Node, short(pl.pull.Digest), pl.pull.Platform))
		f.Confidence = finding.Medium
		f.Message += "; archfit's model of this runtime finds an entry, so the node's pull path differs from its default"
	}
	f.Evidence = dedup(ev)
	return f
}

func (c *containerCase) pullNotArch(cause string, ev []string, conf finding.Confidence, missing []string) finding.Finding {
	f := c.base(finding.PullFailureNotArch, fmt.Sprintf("pulling %s fails: %s; this is not an architecture problem", c.cs.Image, cause))
	f.Evidence = dedup(ev)
	f.Confidence = conf
	f.Missing = missing
	return f
}

// ---- crashes ----

// crashTexts returns the strings that may say why the container died:
// signal lines of the log, the termination message, the waiting message,
// and the container's non-pull Failed events; and whether a log was read.
func (c *containerCase) crashTexts() (texts []string, haveLog bool) {
	var l *cluster.Log
	if c.cs.LastTerminated != nil && c.cs.RestartCount > 0 {
		l = c.pod.PreviousLog(c.cs.Name)
	}
	if l == nil && c.cs.Terminated != nil {
		l = c.pod.CurrentLog(c.cs.Name)
	}
	if l == nil {
		l = c.pod.PreviousLog(c.cs.Name)
	}
	if l != nil && strings.TrimSpace(l.Text) != "" {
		haveLog = true
		which := "log"
		if l.Previous {
			which = "log (previous)"
		}
		lines := matchingLines(l.Text, 3)
		if len(lines) == 0 {
			lines = []string{lastLine(l.Text)}
		}
		for _, s := range lines {
			texts = append(texts, which+": "+s)
		}
	}
	for _, t := range []*corev1.ContainerStateTerminated{c.cs.Terminated, c.cs.LastTerminated} {
		if t != nil && strings.TrimSpace(t.Message) != "" {
			haveLog = true
			texts = append(texts, "terminated.message: "+strings.TrimSpace(t.Message))
		}
	}
	if w := c.cs.Waiting; w != nil && w.Reason != "CrashLoopBackOff" && w.Message != "" {
		texts = append(texts, fmt.Sprintf("state.waiting %s: %s", w.Reason, w.Message))
	}
	for _, e := range c.events() {
		if e.Reason == "Failed" && !strings.Contains(strings.ToLower(e.Message), "pull") && !strings.Contains(e.Message, "image") {
			texts = append(texts, "event Failed: "+e.Message)
		}
	}
	return dedup(texts), haveLog
}

func (c *containerCase) termination() *corev1.ContainerStateTerminated {
	if c.cs.Terminated != nil && c.cs.Terminated.ExitCode != 0 {
		return c.cs.Terminated
	}
	if c.cs.LastTerminated != nil {
		return c.cs.LastTerminated
	}
	return c.cs.Terminated
}

func (c *containerCase) judgeCrash() []finding.Finding {
	texts, haveLog := c.crashTexts()
	term := c.termination()
	exit := int32(0)
	var ev []string
	if term != nil {
		exit = term.ExitCode
		ev = append(ev, fmt.Sprintf("terminated: reason %s, exit code %d", orNone(term.Reason), term.ExitCode))
		if term.Reason == "OOMKilled" {
			return nil // the kernel killed it for memory: it ran, whatever its arch
		}
	}
	sig := sigNone
	var sigTexts []string
	for _, want := range []signal{sigCPULevel, sigExecFormat, sigNoSuchFile} {
		for _, t := range texts {
			if classifyText(t) == want {
				sigTexts = append(sigTexts, t)
			}
		}
		if len(sigTexts) > 0 {
			sig = want
			break
		}
	}
	if sig == sigNone && exit == 132 {
		sig = sigCPULevel
	}
	ev = append(sigTexts, ev...)
	if sig == sigNone && len(texts) > 0 && haveLog {
		ev = append(ev, texts[0])
	}
	ev = append(ev, c.nodeEvidence())
	pl := c.pulled()
	arch := c.nodeArch()

	var missing []string
	if !haveLog && len(sigTexts) == 0 {
		missing = append(missing, MissingLog)
	}
	if c.rep == nil || c.rep.Error != nil {
		missing = append(missing, MissingImage)
	}
	if c.pod.Node == nil {
		missing = append(missing, MissingNode)
	}
	var out []finding.Finding
	if c.rep != nil && c.rep.Error != nil {
		out = append(out, c.uninspectable())
	}

	if d := c.staleImage(); d != "" {
		ev = append(ev, fmt.Sprintf("status.imageID %s: the node runs %s, but %s now resolves to %s (an older image cached on the node, imagePullPolicy %s)",
			c.cs.ImageID, short(d), c.cs.Image, short(c.rep.Digest), orNone(string(c.imagePullPolicy()))))
		pl = nil
		if !contains(missing, MissingImage) {
			missing = append(missing, "the image the node runs (tag moved)")
		}
	}
	var e *image.Entry
	if pl != nil && pl.pull.Error != "" {
		// The container started, so the node did pull something: its
		// runtime is not on its default path (containerd >= 2.1 with
		// registry mirrors/auths in its CRI config takes the local one).
		for _, a := range pl.alt {
			if a.Error == "" {
				pl = &pulled{pull: a, entry: entryOf(c.rep, a.Digest)}
				ev = append(ev, "archfit: the node's default pull path finds no entry, so it pulled on "+string(a.Runtime))
				break
			}
		}
	}
	if pl != nil {
		e = pl.entry
		ev = append(ev, c.pullEvidence(pl))
	}
	ep := entrypointOf(e)
	runs, why := true, ""
	if e != nil && arch != "" {
		runs, why = e.Runs(arch)
	}

	switch sig {
	case sigCPULevel:
		if e != nil && !runs {
			// An illegal instruction under qemu: the binary is another arch
			// and binfmt_misc emulation ran it.
			return append(out, c.archFinding(e, pl, why, ev, finding.High, missing, "it ran under qemu emulation and crashed"))
		}
		conf := finding.High
		if len(sigTexts) == 0 || !strings.Contains(strings.Join(sigTexts, " "), ":") {
			conf = finding.Medium
		}
		f := c.base(finding.CPULevelUnsupported, fmt.Sprintf("%s is built for a newer CPU level than node %s provides (right architecture, not an arch mismatch)", c.cs.Image, c.nodeName()))
		if lvl := goamd64(ep); lvl != "" {
			f.Message += "; Go build setting GOAMD64=" + lvl
		}
		if exit == 132 && len(sigTexts) == 0 {
			ev = append([]string{"exit code 132 = 128 + SIGILL (illegal instruction)"}, ev...)
			conf = finding.Medium
		}
		f.Evidence, f.Confidence, f.Missing = dedup(ev), conf, missing
		return append(out, f)

	case sigExecFormat:
		switch {
		case e != nil && !runs:
			return append(out, c.archFinding(e, pl, why, ev, finding.High, missing, ""))
		case ep != nil && (ep.Verdict == image.VerdictNotExecutable || ep.Verdict == image.VerdictMissingInterp):
			return append(out, c.notExecutable(ep, ev, finding.High, missing))
		case e != nil && arm32OnArm64(e, arch):
			f := c.archFinding(e, pl, "the node pulled the 32-bit "+platform.String(e.EffectivePlatform())+" entry (containerd's local path falls back to arm/v7 when there is no arm64 entry) and this CPU cannot run AArch32", ev, finding.High, missing, "")
			return append(out, f)
		case e != nil && len(pl.alt) > 0 && altBroken(c.rep, pl.alt, arch):
			f := c.archFinding(e, pl, "under the runtime's other pull path the node gets an entry that is not "+arch, ev, finding.Medium, missing, "")
			return append(out, f)
		}
		// Nothing in the image explains it: use the workload's other pods.
		okArchs, badArchs := c.peerArchs()
		switch {
		case ep != nil && ep.Verdict == image.VerdictOK:
			f := c.base(finding.WrongArchBinary, fmt.Sprintf("%s: exec format error, but the entrypoint %s is a %s binary as the node needs: a file it executes is built for another architecture", c.cs.Image, ep.Path, ep.Arch))
			f.Evidence, f.Confidence, f.Missing = dedup(ev), finding.Low, append(missing, "which file failed to execute")
			return append(out, f)
		case len(okArchs) > 0 && !okArchs[arch]:
			f := c.base(finding.WrongArchBinary, fmt.Sprintf("%s fails with exec format error on %s nodes but runs on %s nodes: its binary is not built for %s", c.cs.Image, orUnknown(arch), keys(okArchs), orUnknown(arch)))
			f.Evidence, f.Confidence, f.Missing = dedup(ev), finding.Medium, missing
			return append(out, f)
		case len(badArchs) > 1:
			f := c.base(finding.NotAnExecutable, fmt.Sprintf("%s fails with exec format error on every architecture (%s): its entrypoint is not an executable (script without #!?), not an architecture problem", c.cs.Image, keys(badArchs)))
			f.Evidence, f.Confidence, f.Missing = dedup(ev), finding.Medium, missing
			return append(out, f)
		}
		if stale := c.staleImage(); stale != "" {
			f := c.base(finding.WrongArchBinary, fmt.Sprintf("%s: exec format error on %s node %s, which runs an older image %s cached under the same tag; the current %s runs on %s: re-pull it (imagePullPolicy: Always, or pin the digest)",
				c.cs.Image, orUnknown(arch), c.nodeName(), short(stale), short(c.rep.Digest), orNone(strings.Join(c.rep.Architectures, ", "))))
			f.Evidence, f.Confidence, f.Missing = dedup(ev), finding.Medium, missing
			return append(out, f)
		}
		f := c.base(finding.WrongArchBinary, fmt.Sprintf("%s: exec format error on %s node %s: most likely a binary for another architecture (a script without #! looks the same)", c.cs.Image, orUnknown(arch), c.nodeName()))
		f.Evidence, f.Confidence, f.Missing = dedup(ev), finding.Low, missing
		if len(missing) == 0 {
			f.Missing = []string{"entrypoint verdict"}
		}
		return append(out, f)

	case sigNoSuchFile:
		switch {
		case ep != nil && (ep.Verdict == image.VerdictNotExecutable || ep.Verdict == image.VerdictMissingInterp || ep.Verdict == image.VerdictNotFound):
			return append(out, c.notExecutable(ep, ev, finding.High, missing))
		case e != nil && !runs:
			// A foreign dynamic binary run through binfmt emulation whose
			// loader is missing fails with ENOENT, not ENOEXEC.
			return append(out, c.archFinding(e, pl, why, ev, finding.Medium, missing, "its loader is not found"))
		}
		f := c.base(finding.NotAnExecutable, fmt.Sprintf("%s: the entrypoint cannot be executed (no such file or directory): a missing interpreter or loader, a CRLF shebang, or a wrong path; not an architecture problem", c.cs.Image))
		conf := finding.Medium
		if ep != nil && ep.Verdict == image.VerdictOK {
			conf = finding.Low
		}
		f.Evidence, f.Confidence, f.Missing = dedup(ev), conf, missing
		return append(out, f)
	}

	// No signal in what was read.
	if haveLog {
		// It ran and said something else: an application failure.
		return out
	}
	switch exit {
	case 255, 1, 126, 127, 128, 2, 0:
	default:
		return out
	}
	if e == nil {
		return out
	}
	conf := finding.Medium
	switch {
	case !runs:
		return append(out, c.archFinding(e, pl, why, ev, conf, missing, ""))
	case ep != nil && (ep.Verdict == image.VerdictNotExecutable || ep.Verdict == image.VerdictMissingInterp):
		return append(out, c.notExecutable(ep, ev, conf, missing))
	case arm32OnArm64(e, arch) && (exit == 255 || exit == 1):
		return append(out, c.archFinding(e, pl, "the node pulled the 32-bit "+platform.String(e.EffectivePlatform())+" entry; on CPUs without AArch32 it cannot run", ev, finding.Low, missing, ""))
	case goamd64(ep) != "" && arch == "amd64" && exit == 1:
		f := c.base(finding.CPULevelUnsupported, fmt.Sprintf("%s is a Go binary built with GOAMD64=%s; exit 1 with no log on node %s fits a CPU below that level", c.cs.Image, goamd64(ep), c.nodeName()))
		f.Evidence, f.Confidence, f.Missing = dedup(ev), finding.Low, missing
		return append(out, f)
	}
	return out
}

func (c *containerCase) imagePullPolicy() corev1.PullPolicy {
	if c.spec != nil {
		return c.spec.ImagePullPolicy
	}
	return ""
}

func (c *containerCase) nodeName() string {
	if c.pod.Node != nil {
		return c.pod.Node.Name
	}
	return orUnknown(c.pod.Spec.NodeName)
}

func (c *containerCase) pullEvidence(pl *pulled) string {
	p := pl.pull
	if p.Error != "" {
		return fmt.Sprintf("archfit: %s on %s: %s", p.Runtime, p.Node, p.Error)
	}
	s := fmt.Sprintf("archfit: %s on %s pulls %s", orNone(string(p.Runtime)), p.Node, short(p.Digest))
	if p.Platform != "" {
		s += " (" + p.Platform + ")"
	}
	if e := pl.entry; e != nil {
		if ep := e.Entrypoint; ep != nil {
			s += "; entrypoint " + orNone(ep.Path)
			if ep.Arch != "" {
				s += " is " + ep.Arch
			}
			s += ": " + ep.Verdict
			if ep.Detail != "" {
				s += " (" + ep.Detail + ")"
			}
		} else if e.ConfigPlatform != nil {
			s += "; config says " + platform.String(e.ConfigPlatform)
		}
	}
	return s
}

// archFinding is wrong-arch-binary, or mislabeled-platform when the entry
// the node pulled claims the node's architecture.
func (c *containerCase) archFinding(e *image.Entry, pl *pulled, why string, ev []string, conf finding.Confidence, missing []string, extra string) finding.Finding {
	arch := c.nodeArch()
	declared := e.Platform
	if declared == nil && c.rep.Kind == image.KindManifest {
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
		f = c.base(finding.MislabeledPlatform, fmt.Sprintf("%s: the entry labeled %s that node %s pulls contains a binary for %s", c.cs.Image, platform.String(declared), c.nodeName(), binArch))
		if e.Mismatch != "" {
			ev = append(ev, "archfit: "+e.Mismatch)
		}
	} else {
		what := binArch
		if what == "" {
			what = "another architecture"
		}
		f = c.base(finding.WrongArchBinary, fmt.Sprintf("%s runs a binary for %s on %s node %s", c.cs.Image, what, orUnknown(arch), c.nodeName()))
		if c.rep.Kind == image.KindManifest {
			f.Message += " (a single-platform manifest is pulled whatever its platform; it fails only at exec)"
		}
		if why != "" && !strings.Contains(f.Message, why) && !strings.HasPrefix(why, "entrypoint") && !strings.HasPrefix(why, "config") {
			f.Message += ": " + why
		}
	}
	if extra != "" {
		f.Message += "; " + extra
	}
	f.Evidence, f.Confidence, f.Missing = dedup(ev), conf, missing
	return f
}

func (c *containerCase) notExecutable(ep *image.Entrypoint, ev []string, conf finding.Confidence, missing []string) finding.Finding {
	what := ep.Detail
	if what == "" {
		what = ep.Verdict
	}
	f := c.base(finding.NotAnExecutable, fmt.Sprintf("%s: the entrypoint %s cannot be executed: %s; NOT an architecture problem, rebuilding for another arch will not help", c.cs.Image, orNone(firstNonEmpty(ep.Path, ep.Argv0)), what))
	f.Evidence, f.Confidence, f.Missing = dedup(ev), conf, missing
	return f
}

func (c *containerCase) uninspectable() finding.Finding {
	f := c.base(finding.ImageUninspectable, fmt.Sprintf("archfit could not read %s (%s), so the verdict rests on the cluster's evidence alone", c.cs.Image, c.rep.Error.Reason))
	f.Evidence = []string{c.rep.Error.Detail}
	if c.rep.Error.Tried != "" {
		f.Evidence = append(f.Evidence, "tried: "+c.rep.Error.Tried)
	}
	return f
}

// peerArchs looks at the same container in the workload's other pods: the
// node archs where it runs (started and ready, or exited 0) and where it
// fails with exec format error.
func (c *containerCase) peerArchs() (ok, bad map[string]bool) {
	ok, bad = map[string]bool{}, map[string]bool{}
	wl := c.pod.Workload
	if wl == nil {
		return
	}
	for _, p := range wl.Pods {
		if p.Node == nil {
			continue
		}
		cs, found := p.Container(c.cs.Name)
		if !found || cs.Image != c.cs.Image {
			continue
		}
		a := p.Node.Arch()
		if (cs.Running != nil && cs.Ready) || (cs.Terminated != nil && cs.Terminated.ExitCode == 0) {
			ok[a] = true
			continue
		}
		peer := &containerCase{snap: c.snap, pod: p, cs: cs}
		texts, _ := peer.crashTexts()
		for _, t := range texts {
			if classifyText(t) == sigExecFormat {
				bad[a] = true
			}
		}
	}
	return
}

func entrypointOf(e *image.Entry) *image.Entrypoint {
	if e == nil {
		return nil
	}
	return e.Entrypoint
}

func goamd64(ep *image.Entrypoint) string {
	if ep == nil {
		return ""
	}
	if l := ep.GoSettings["GOAMD64"]; l != "" && l != "v1" {
		return l
	}
	return ""
}

func arm32OnArm64(e *image.Entry, nodeArch string) bool {
	p := e.EffectivePlatform()
	return nodeArch == "arm64" && p != nil && platform.Arch(*p) == "arm"
}

func altBroken(r *image.Report, alt []*image.Pull, arch string) bool {
	for _, p := range alt {
		if p.Error != "" {
			continue
		}
		if e := entryOf(r, p.Digest); e != nil {
			if ok, _ := e.Runs(arch); !ok || arm32OnArm64(e, arch) {
				return true
			}
		}
	}
	return false
}

func downgrade(c finding.Confidence) finding.Confidence {
	switch c {
	case finding.High:
		return finding.Medium
	}
	return finding.Low
}

func dedup(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

func keys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, orUnknown(k))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func short(d string) string {
	if _, h, ok := strings.Cut(d, ":"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func sortReports(rs []*image.Report) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Reference < rs[j].Reference })
}

func nodePlat(n *cluster.Node) string {
	if n == nil {
		return ""
	}
	return platform.String(&n.Platform)
}
