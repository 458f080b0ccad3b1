package diagnose

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// A crashed container (CrashLoopBackOff, RunContainerError, a non-zero exit)
// is judged in two steps: readCrash gathers what is known once, then the
// first rule of crashRules (crashrules.go) that fits decides the finding.

// judgeCrash classifies one crashed container; an image archfit could not
// read adds image-uninspectable.
func (c *containerCase) judgeCrash() []finding.Finding {
	k, ok := c.readCrash()
	if !ok {
		return nil
	}
	var out []finding.Finding
	if c.rep != nil && c.rep.Error != nil {
		out = append(out, c.uninspectable())
	}
	if r := k.rule(); r != nil && r.finding != nil {
		out = append(out, r.finding(k))
	}
	return out
}

// crash is what is known about one crashed container; the rules read it.
type crash struct {
	*containerCase
	texts    []string // what may say why it died (crashTexts)
	haveLog  bool     // a log or a termination message was read
	exit     int32    // the failed run's exit code
	sig      signal   // the strongest signal in texts, or SIGILL's exit code
	sigTexts []string // the texts that carry sig
	ev       []string // the evidence the finding quotes
	missing  []string // the evidence that was not available
	arch     string   // the node's architecture, "" if unknown
	pl       *pulled  // what the node pulled; nil if unknown or the tag moved
	e        *image.Entry
	ep       *image.Entrypoint
	runs     bool // e runs on arch (true when either is unknown)

	okArchs, badArchs map[string]bool // peerArchs, read by the rules that need them
}

// readCrash gathers the evidence about c; false when there is nothing to
// judge: the kernel killed it for memory, so it ran, whatever its arch.
func (c *containerCase) readCrash() (*crash, bool) {
	k := &crash{containerCase: c, runs: true}
	k.texts, k.haveLog = c.crashTexts()
	var termEv []string
	if term := c.termination(); term != nil {
		if term.Reason == "OOMKilled" {
			return nil, false
		}
		k.exit = term.ExitCode
		termEv = []string{fmt.Sprintf("terminated: reason %s, exit code %d", orNone(term.Reason), term.ExitCode)}
	}
	k.sig, k.sigTexts = crashSignal(k.texts, k.exit)
	k.ev = append(append([]string(nil), k.sigTexts...), termEv...)
	if k.sig == sigNone && len(k.texts) > 0 && k.haveLog {
		k.ev = append(k.ev, k.texts[0])
	}
	k.ev = append(k.ev, c.nodeEvidence())
	k.missing = k.missingEvidence()
	k.arch = c.nodeArch()
	k.readPull()
	return k, true
}

// crashSignal is the strongest signal in texts (CPU level, then exec format,
// then no such file) with the texts that carry it; with none, exit code 132
// (128 + SIGILL) alone means CPU level.
func crashSignal(texts []string, exit int32) (signal, []string) {
	for _, want := range []signal{sigCPULevel, sigExecFormat, sigNoSuchFile} {
		var found []string
		for _, t := range texts {
			if classifyText(t) == want {
				found = append(found, t)
			}
		}
		if len(found) > 0 {
			return want, found
		}
	}
	if exit == 132 {
		return sigCPULevel, nil
	}
	return sigNone, nil
}

func (k *crash) missingEvidence() []string {
	var missing []string
	if !k.haveLog && len(k.sigTexts) == 0 {
		missing = append(missing, MissingLog)
	}
	if k.rep == nil || k.rep.Error != nil {
		missing = append(missing, MissingImage)
	}
	if k.pod.Node == nil {
		missing = append(missing, MissingNode)
	}
	return missing
}

// readPull finds the entry the node ran: none when the node runs an older
// image cached under a moved tag; the runtime's other pull path's when its
// default path finds no entry.
func (k *crash) readPull() {
	pl := k.pulled()
	if d := k.staleImage(); d != "" {
		k.ev = append(k.ev, fmt.Sprintf("status.imageID %s: the node runs %s, but %s now resolves to %s (an older image cached on the node, imagePullPolicy %s)",
			k.cs.ImageID, short(d), k.cs.Image, short(k.rep.Digest), orNone(string(k.imagePullPolicy()))))
		pl = nil
		if !contains(k.missing, MissingImage) {
			k.missing = append(k.missing, "the image the node runs (tag moved)")
		}
	}
	if pl != nil && pl.pull.Error != "" {
		// The container started, so the node did pull something: its
		// runtime is not on its default path (containerd >= 2.1 takes the
		// local one with any of platform.LocalPullSettings in its CRI config).
		for _, a := range pl.alt {
			if a.Error == "" {
				pl = &pulled{pull: a, entry: entryOf(k.rep, a.Digest)}
				k.ev = append(k.ev, "archfit: the node's default pull path finds no entry, so it pulled on "+string(a.Runtime))
				break
			}
		}
	}
	if pl != nil {
		k.pl, k.e = pl, pl.entry
		k.ev = append(k.ev, k.pullEvidence(pl))
	}
	k.ep = entrypointOf(k.e)
	if k.e != nil && k.arch != "" {
		k.runs, _ = k.e.Runs(k.arch)
	}
}

// peers is where the same container runs and where it fails with exec
// format error in the workload's other pods, read once.
func (k *crash) peers() (ok, bad map[string]bool) {
	if k.okArchs == nil {
		k.okArchs, k.badArchs = k.peerArchs()
	}
	return k.okArchs, k.badArchs
}

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
		if l.ReadFrom != "" {
			which += " of pod " + l.ReadFrom + " (same workload, image, node architecture and exit code)"
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

func (c *containerCase) imagePullPolicy() corev1.PullPolicy {
	if c.spec != nil {
		return c.spec.ImagePullPolicy
	}
	return ""
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
