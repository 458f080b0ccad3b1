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
		rt = image.PullRuntime(c.rep, want, rt)
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
		msg := pl.pull.Error
		if n := c.pod.Node; n != nil && pl.pull.Runtime.Base() == platform.CRIO && n.Runtime.Name == "cri-o" {
			msg = platform.CRIOMessage(n.Runtime.Version, msg) // as this node's CRI-O words it
		}
		ev = append(ev, fmt.Sprintf("archfit: %s on %s: %s", pl.pull.Runtime, pl.pull.Node, msg))
		if c.rep.EffectivelySingleArch {
			f.Message += "; the index holds one real image plus attestations: it is single-arch"
		}
	case pl != nil:
		// The runtime's message says no match, archfit's model of the node's
		// default pull path finds one: the node probably uses another path
		// (containerd >= 2.1 takes the local one with any of
		// platform.LocalPullSettings in its CRI config).
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

func (c *containerCase) nodeName() string {
	if c.pod.Node != nil {
		return c.pod.Node.Name
	}
	return orUnknown(c.pod.Spec.NodeName)
}

func (c *containerCase) uninspectable() finding.Finding {
	f := c.base(finding.ImageUninspectable, fmt.Sprintf("archfit could not read %s (%s), so the verdict rests on the cluster's evidence alone", c.cs.Image, c.rep.Error.Reason))
	f.Evidence = []string{c.rep.Error.Detail}
	if c.rep.Error.Tried != "" {
		f.Evidence = append(f.Evidence, "tried: "+c.rep.Error.Tried)
	}
	return f
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

func nodePlat(n *cluster.Node) string {
	if n == nil {
		return ""
	}
	return platform.String(&n.Platform)
}
