// Package audit is the judge stage for a whole fleet: for every workload it
// checks each container against each node pool (runs, fails and how, or
// unknown), finds the containers at risk, ranks the images that block a move
// to arm64 and measures migration readiness. It is a pure function of a
// cluster snapshot and the image reports: no network, no cluster.
package audit

import (
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/schedule"

	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/remedy"
)

// Verdict of one container on one pool.
type Verdict string

// Verdicts.
const (
	Runs    Verdict = "runs"
	Fails   Verdict = "fails"
	Unknown Verdict = "unknown"
)

// Pool is a group of nodes of one platform, or a platform assumed with
// --node-platform when the input has no nodes.
type Pool struct {
	// ID names the pool in cells: "NAME (os/arch)".
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Label    string `json:"label,omitempty"`
	Platform string `json:"platform"`
	Arch     string `json:"arch"`
	// Runtimes are the matchers the pool's nodes may apply (all of them when
	// the runtime is unknown).
	Runtimes []platform.Runtime `json:"runtimes"`
	Taints   []corev1.Taint     `json:"taints,omitempty"`
	Nodes    int                `json:"nodes"`
	// Assumed is true for a pool made up from --node-platform.
	Assumed bool `json:"assumed,omitempty"`

	plat specs.Platform
	// labels are the label sets of the pool's nodes (one made-up set for an
	// assumed pool).
	labels []map[string]string
}

// Cell is one container on one pool.
type Cell struct {
	Pool    string  `json:"pool"`
	Verdict Verdict `json:"verdict"`
	// How says how it fails (the runtime's message, wrong-arch exec...) or
	// why it is unknown; a caveat when it runs.
	How string `json:"how,omitempty"`
	// Admitted is false when the workload's nodeSelector, affinity or the
	// pool's taints keep its pods off the pool.
	Admitted bool `json:"admitted"`
}

// Container is one container of a workload with its verdict per pool.
type Container struct {
	Name          string           `json:"name"`
	Role          cluster.Role     `json:"role"`
	Image         string           `json:"image"`
	Injected      bool             `json:"injected,omitempty"`
	Architectures []string         `json:"architectures"`
	Verified      bool             `json:"verified,omitempty"`
	Base          *image.BaseImage `json:"base,omitempty"`
	Cells         []Cell           `json:"cells"`
	// Unread is why the image could not be read (its error's reason:
	// unreachable, auth, not-found, ...); empty when it was read.
	Unread string `json:"unread,omitempty"`
}

// Workload is the audit of one top owner.
type Workload struct {
	Ref      object.Ref `json:"workload"`
	Replicas int        `json:"replicas"`
	// AdmittedPools are the pools the pod template may be scheduled to.
	AdmittedPools []string       `json:"admittedPools"`
	Containers    []Container    `json:"containers"`
	Allowed       remedy.Allowed `json:"allowed"`
	// ArmReady: every container runs on arm64 (known, not guessed).
	ArmReady bool `json:"armReady"`
	// MultiArchProven: every container's image has verified entries for
	// every pool architecture and no container is at risk; the rollout plan
	// adds tolerations only to these.
	MultiArchProven bool `json:"multiArchProven"`
	Findings        int  `json:"findings"`
	// Conflict: no architecture both runs every container and is admitted
	// by the workload's constraints (arch-constraint-conflict).
	Conflict bool `json:"conflict,omitempty"`
	// State is the workload's arm64 readiness: ready, blocked (an image
	// archfit read does not run on arm64), conflict, or unknown (no image
	// read blocks it, but some image could not be read). Unknown is never
	// counted as ready or blocked.
	State State `json:"state"`

	w *cluster.Workload
}

// State is a workload's arm64 readiness.
type State string

// States.
const (
	StateReady    State = "ready"
	StateBlocked  State = "blocked"
	StateConflict State = "conflict"
	StateUnknown  State = "unknown"
)

// Blocker is an image that keeps workloads off arm64.
type Blocker struct {
	Image         string              `json:"image"`
	Architectures []string            `json:"architectures"`
	Workloads     int                 `json:"workloads"`
	Replicas      int                 `json:"replicas"`
	Roles         []string            `json:"roles"`
	Examples      []object.Ref        `json:"examples"`
	Build         *remedy.BuildAdvice `json:"build,omitempty"`
}

// Readiness is the share of the fleet that can run on arm64 today.
type Readiness struct {
	Workloads         int     `json:"workloads"`
	ReadyWorkloads    int     `json:"readyWorkloads"`
	Replicas          int     `json:"replicas"`
	ReadyReplicas     int     `json:"readyReplicas"`
	WorkloadShare     float64 `json:"workloadShare"`
	ReplicaShare      float64 `json:"replicaShare"`
	UnknownWorkloads  int     `json:"unknownWorkloads"`
	BlockedWorkloads  int     `json:"blockedWorkloads"`
	ConflictWorkloads int     `json:"conflictWorkloads"`
}

// Result is the whole audit.
type Result struct {
	Pools     []Pool            `json:"pools"`
	Workloads []*Workload       `json:"workloads"`
	Blockers  []Blocker         `json:"blockers"`
	Readiness Readiness         `json:"readiness"`
	Findings  []finding.Finding `json:"-"`
	// Remedies are those of the workloads with a container at risk.
	Remedies []*remedy.Remedy `json:"-"`
	// Warnings are waiver annotations that were refused or ignored.
	Warnings []string `json:"warnings,omitempty"`
}

// Options tune Run.
type Options struct {
	// AssumePlatforms are the pools to assume when the snapshot has no nodes
	// (default linux/amd64 and linux/arm64).
	AssumePlatforms []specs.Platform
	Waivers         []Waiver
	// Verify says whether the images were requested with entrypoint
	// verification (Requests' verify).
	Verify bool
	// NoAnnotationWaivers accepts waivers only from Waivers (the config
	// file), not from the archfit.io/ignore annotation of the manifests.
	NoAnnotationWaivers bool
}

// Run audits every workload of snap against the run's image reports; a
// container without a report is unknown.
func Run(snap *cluster.Snapshot, images *image.Set, opts Options) *Result {
	res := &Result{Pools: pools(snap, opts.AssumePlatforms), Blockers: []Blocker{}}
	var nodeArchs, assumed []string
	for _, p := range res.Pools {
		nodeArchs = append(nodeArchs, p.Arch)
		if p.Assumed {
			assumed = append(assumed, p.Arch)
		}
	}
	// Workloads are judged independently (a pure function of the workload,
	// the pools and the image reports), on every core; the results are
	// then gathered in the snapshot's order.
	judged := make([]judgedWorkload, len(snap.Workloads))
	parallel(len(snap.Workloads), func(i int) {
		w := snap.Workloads[i]
		rem := remedy.ForWorkload(remedy.Input{Workload: w, Nodes: snap.Nodes, Architectures: assumed,
			Images: images, Verify: opts.Verify, Lookup: snap.Object, DeferPatch: true})
		aw, fs := judge(w, res.Pools, rem, images, opts.Verify)
		ws, warnings := workloadWaivers(w, opts.Waivers, opts.NoAnnotationWaivers)
		fs = applyWaivers(fs, ws)
		for _, f := range fs {
			if f.Waived == "" {
				aw.Findings++
			}
		}
		j := judgedWorkload{aw: aw, findings: fs, warnings: warnings}
		if aw.atRisk() {
			rem.FinishPatch()
			j.rem = rem
		}
		judged[i] = j
	})
	blockers := map[string]*Blocker{}
	for _, j := range judged {
		res.Warnings = append(res.Warnings, j.warnings...)
		res.Findings = append(res.Findings, j.findings...)
		res.Workloads = append(res.Workloads, j.aw)
		if j.rem != nil {
			res.Remedies = append(res.Remedies, j.rem)
		}
		countBlockers(j.aw, blockers)
	}
	res.Findings = append(res.Findings, imageFindings(snap, images, opts)...)
	res.Readiness = readiness(res.Workloads)
	for _, b := range blockers {
		if rep := images.Image(b.Image); rep != nil && rep.Error == nil {
			adv := remedy.Build(*rep, remedy.ForArchitectures(remedy.BuildArchs(nodeArchs)...))
			b.Build = &adv
		}
		res.Blockers = append(res.Blockers, *b)
	}
	sort.Slice(res.Blockers, func(i, j int) bool {
		a, b := res.Blockers[i], res.Blockers[j]
		if a.Workloads != b.Workloads {
			return a.Workloads > b.Workloads
		}
		if a.Replicas != b.Replicas {
			return a.Replicas > b.Replicas
		}
		return a.Image < b.Image
	})
	return res
}

// judgedWorkload is what Run computes for one workload.
type judgedWorkload struct {
	aw       *Workload
	findings []finding.Finding
	warnings []string
	rem      *remedy.Remedy // kept: at risk
}

// parallel calls f(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, f func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// pools returns the snapshot's pools, or the assumed ones without nodes.
func pools(snap *cluster.Snapshot, assume []specs.Platform) []Pool {
	var out []Pool
	for _, p := range snap.Pools() {
		pl := Pool{Name: p.Name, Label: p.Label, Platform: platform.String(&p.Platform), Arch: platform.Arch(p.Platform),
			Taints: p.Taints, Nodes: len(p.Nodes), plat: p.Platform}
		pl.ID = p.String()
		seen := map[platform.Runtime]bool{}
		for _, rt := range p.Runtimes {
			for _, m := range rt.Matchers {
				if !seen[m] {
					seen[m] = true
					pl.Runtimes = append(pl.Runtimes, m)
				}
			}
		}
		if len(pl.Runtimes) == 0 {
			pl.Runtimes = slices.Clone(platform.Runtimes)
		}
		for _, n := range p.Nodes {
			if n.Object != nil && n.Object.Labels != nil {
				pl.labels = append(pl.labels, n.Object.Labels)
			}
		}
		if pl.labels == nil {
			pl.labels = []map[string]string{{"kubernetes.io/arch": pl.Arch, "kubernetes.io/os": p.Platform.OS}}
		}
		out = append(out, pl)
	}
	if len(out) > 0 {
		return out
	}
	if len(assume) == 0 {
		assume = []specs.Platform{platform.Node("linux", "amd64"), platform.Node("linux", "arm64")}
	}
	for _, p := range assume {
		arch := platform.Arch(p)
		out = append(out, Pool{ID: "assumed (" + platform.String(&p) + ")", Platform: platform.String(&p), Arch: arch,
			Runtimes: slices.Clone(platform.Runtimes), Assumed: true, plat: p,
			labels: []map[string]string{{"kubernetes.io/arch": arch, "kubernetes.io/os": p.OS, "beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": p.OS}}})
	}
	return out
}

// admits reports whether the pod template may be scheduled to the pool: its
// nodeSelector and required node affinity match the pool's labels and it
// tolerates the pool's NoSchedule/NoExecute taints.
//
// An assumed pool knows only its platform, so there only the arch and os
// requirements count: a selector on any other label is assumed to match.
func admits(spec *corev1.PodSpec, p Pool, withTaints bool) bool {
	sel, aff := spec.NodeSelector, spec.Affinity
	if p.Assumed {
		sel, aff = platformOnly(sel, aff)
	}
	constraints := &corev1.PodSpec{NodeSelector: sel, Affinity: aff}
	if !slices.ContainsFunc(p.labels, func(l map[string]string) bool { return schedule.MatchesLabels(constraints, l) }) {
		return false
	}
	return !withTaints || schedule.Tolerates(spec.Tolerations, p.Taints)
}

// platformKeys are the node labels an assumed pool has.
var platformKeys = map[string]bool{"kubernetes.io/arch": true, "kubernetes.io/os": true, "beta.kubernetes.io/arch": true, "beta.kubernetes.io/os": true}

// platformOnly keeps the arch and os requirements of a nodeSelector and
// required node affinity, and drops the rest (and matchFields).
func platformOnly(sel map[string]string, aff *corev1.Affinity) (map[string]string, *corev1.Affinity) {
	var outSel map[string]string
	for k, v := range sel {
		if platformKeys[k] {
			if outSel == nil {
				outSel = map[string]string{}
			}
			outSel[k] = v
		}
	}
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return outSel, nil
	}
	ns := &corev1.NodeSelector{}
	for _, t := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		var nt corev1.NodeSelectorTerm
		for _, e := range t.MatchExpressions {
			if platformKeys[e.Key] {
				nt.MatchExpressions = append(nt.MatchExpressions, e)
			}
		}
		if len(nt.MatchExpressions) == 0 {
			// The term admitted some node on other labels: any platform.
			nt.MatchExpressions = []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/os", Operator: corev1.NodeSelectorOpExists}}
		}
		ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, nt)
	}
	return outSel, &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: ns}}
}

// cell judges one image on one pool.
func cell(rep *image.Report, p Pool) Cell {
	c := Cell{Pool: p.ID}
	if rep == nil {
		c.Verdict, c.How = Unknown, "image not inspected"
		return c
	}
	if rep.Error != nil {
		c.Verdict, c.How = Unknown, "image uninspectable ("+rep.Error.Reason+")"
		return c
	}
	var fails, caveats, runs []string
	matched := false
	for _, rt := range p.Runtimes {
		rt = image.PullRuntime(rep, p.Platform, rt)
		for _, pull := range rep.Pulls {
			if pull.Node != p.Platform || pull.Runtime != rt {
				continue
			}
			matched = true
			switch {
			case pull.Error != "":
				fails = append(fails, fmt.Sprintf("pull fails under %s: %s", rt, pull.Error))
			case pull.Runs != nil && !*pull.Runs:
				fails = append(fails, fmt.Sprintf("exec format error under %s: pulls %s, %s", rt, pull.Platform, pull.Reason))
			default:
				r := fmt.Sprintf("runs under %s (pulls %s)", rt, pull.Platform)
				// A single manifest's reason always says it is pulled
				// whatever its platform: no caveat when it runs.
				if pull.Reason != "" && rep.Kind != image.KindManifest {
					caveats = append(caveats, pull.Reason)
					r = fmt.Sprintf("runs under %s (pulls %s; %s)", rt, pull.Platform, pull.Reason)
				}
				runs = append(runs, r)
			}
		}
	}
	if !matched {
		// A platform the resolver did not model: fall back to the runnable
		// architectures.
		if slices.Contains(rep.Architectures, p.Arch) {
			c.Verdict = Runs
		} else {
			c.Verdict, c.How = Fails, fmt.Sprintf("no entry for %s (image runs %s)", p.Arch, strings.Join(rep.Architectures, ", "))
		}
		return c
	}
	if len(fails) > 0 {
		c.Verdict, c.How = Fails, fails[0]
		if len(fails) > 1 && !sameKind(fails) {
			c.How += "; " + strings.Join(fails[1:], "; ")
		}
		// The node's runtime config decides (containerd >= 2.1 local or
		// transfer path): say what would happen the other way.
		if len(runs) > 0 {
			c.How += "; but " + strings.Join(runs, "; ")
		}
		return c
	}
	c.Verdict = Runs
	caveats = slices.Compact(caveats)
	c.How = strings.Join(caveats, "; ")
	return c
}

func sameKind(fails []string) bool {
	for _, f := range fails[1:] {
		if strings.SplitN(f, " ", 2)[0] != strings.SplitN(fails[0], " ", 2)[0] {
			return false
		}
	}
	return true
}

func verified(rep *image.Report) bool {
	if rep == nil || rep.Error != nil {
		return false
	}
	n := 0
	for _, e := range rep.Entries {
		if e.Attestation || e.SkipReason != "" {
			continue
		}
		if e.Entrypoint == nil || e.Entrypoint.Verdict != image.VerdictOK {
			return false
		}
		n++
	}
	return n > 0
}

func replicas(w *cluster.Workload) int {
	if w.Kind == cluster.KindDaemonSet || w.Replicas == nil {
		if n := len(w.Pods); n > 0 {
			return n
		}
		return 1
	}
	return int(*w.Replicas)
}

func ref(w *cluster.Workload) object.Ref {
	return object.Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}
}

// judge audits one workload against the pools and returns its findings.
// Its allowed architectures are its remedy's: the one computation every
// command shares.
func judge(w *cluster.Workload, pools []Pool, rem *remedy.Remedy, images *image.Set, verify bool) (*Workload, []finding.Finding) {
	aw := &Workload{Ref: ref(w), Replicas: replicas(w), AdmittedPools: []string{}, w: w,
		Allowed: remedy.Allowed{Architectures: rem.AllowedArchitectures, Unverified: rem.Unverified, Conflict: rem.Conflict}}
	spec := &w.Template.Spec
	admitted := make([]bool, len(pools))
	var byAffinity []string
	for i, p := range pools {
		admitted[i] = admits(spec, p, true)
		if admitted[i] {
			aw.AdmittedPools = append(aw.AdmittedPools, p.ID)
		}
		if admits(spec, p, false) {
			byAffinity = append(byAffinity, p.Arch)
		}
	}
	var fs []finding.Finding
	aw.ArmReady = true
	aw.MultiArchProven = true
	// blocked: an image that was read does not run on arm64; unread: some
	// image could not be read.
	var blocked, unread bool
	for _, c := range w.Containers {
		if c.Role == cluster.RoleEphemeral {
			continue
		}
		rep := reportFor(images, w, c, verify)
		ac := Container{Name: c.Name, Role: c.Role, Image: c.Image, Injected: c.Injected, Architectures: []string{}, Verified: verified(rep)}
		if rep == nil || rep.Error != nil {
			aw.ArmReady = false
			aw.MultiArchProven = false
			unread = true
			ac.Unread = "not-inspected"
			if rep != nil {
				ac.Unread = rep.Error.Reason
			}
		} else {
			ac.Architectures = rep.Architectures
			ac.Base = rep.Base
			if !slices.Contains(rep.Architectures, "arm64") {
				aw.ArmReady = false
				blocked = true
			}
			if !ac.Verified {
				aw.MultiArchProven = false
			}
		}
		var failing []string
		var how []string
		for i, p := range pools {
			cl := cell(rep, p)
			cl.Admitted = admitted[i]
			ac.Cells = append(ac.Cells, cl)
			if cl.Verdict == Fails {
				aw.MultiArchProven = false
				if cl.Admitted {
					failing = append(failing, p.ID)
					how = append(how, p.ID+": "+cl.How)
				}
			}
		}
		if len(failing) > 0 {
			f := finding.New(finding.SingleArchAtRisk, fmt.Sprintf("%s container %q (%s) cannot run on %s, where the pods may be scheduled",
				c.Role, c.Name, c.Image, strings.Join(failing, ", ")))
			f.Workload = &aw.Ref
			f.Container, f.ContainerType, f.Image = c.Name, string(c.Role), c.Image
			f.NodePlatform = poolPlatform(pools, failing[0])
			if rep != nil {
				f.ImagePlatforms = rep.Platforms
			}
			f.Evidence = how
			for _, p := range w.Pods {
				if p.Node != nil {
					f.Evidence = append(f.Evidence, fmt.Sprintf("runs today on %s (%s)", p.Node.Name, platform.String(&p.Node.Platform)))
					break
				}
			}
			fs = append(fs, f)
		}
		aw.Containers = append(aw.Containers, ac)
	}
	_, pins := schedule.PinnedArchs(spec)
	switch {
	case aw.Allowed.Conflict != nil:
		aw.Conflict = true
		f := finding.New(finding.ArchConstraintConflict, aw.Allowed.Conflict.Message)
		f.Workload = &aw.Ref
		if aw.Allowed.Conflict.Path != "" {
			f.Evidence = constraintEvidence(spec)
		}
		fs = append(fs, f)
	case len(aw.Allowed.Architectures) > 0 && !overlaps(byAffinity, aw.Allowed.Architectures) && (len(byAffinity) > 0 || pins):
		// The constraint admits no pool whose architecture the containers
		// run (also when the object itself is missing and no patch was judged).
		admitted := "no node of the cluster"
		if len(byAffinity) > 0 {
			admitted = strings.Join(slices.Compact(sorted(byAffinity)), ", ")
		}
		f := finding.New(finding.ArchConstraintConflict, fmt.Sprintf("the nodeSelector/affinity admits %s, but the containers run only on %s",
			admitted, strings.Join(aw.Allowed.Architectures, ", ")))
		aw.Conflict = true
		f.Workload = &aw.Ref
		f.Evidence = constraintEvidence(spec)
		fs = append(fs, f)
	}
	if aw.Conflict {
		aw.ArmReady = false
		aw.MultiArchProven = false
	}
	switch {
	case aw.Conflict:
		aw.State = StateConflict
	case aw.ArmReady:
		aw.State = StateReady
	case blocked:
		// A known blocker decides, whatever the unread images hold.
		aw.State = StateBlocked
	case unread:
		aw.State = StateUnknown
	default:
		aw.State = StateBlocked
	}
	return aw, fs
}

// AtRisk judges the given workloads of snap (diagnose's healthy ones)
// against the snapshot's pools, exactly as Run does, and returns only their
// single-arch-at-risk findings.
func AtRisk(snap *cluster.Snapshot, ws []*cluster.Workload, images *image.Set, verify bool) []finding.Finding {
	ps := pools(snap, nil)
	var out []finding.Finding
	for _, w := range ws {
		rem := remedy.ForWorkload(remedy.Input{Workload: w, Nodes: snap.Nodes, Images: images, Verify: verify, DeferPatch: true})
		_, fs := judge(w, ps, rem, images, verify)
		for _, f := range fs {
			if f.Code == finding.SingleArchAtRisk {
				out = append(out, f)
			}
		}
	}
	return out
}

// atRisk reports whether a container fails on a pool the pods may use.
func (w *Workload) atRisk() bool {
	for _, c := range w.Containers {
		for _, cl := range c.Cells {
			if cl.Verdict == Fails && cl.Admitted {
				return true
			}
		}
	}
	return false
}

func poolPlatform(pools []Pool, id string) string {
	for _, p := range pools {
		if p.ID == id {
			return p.Platform
		}
	}
	return ""
}

func overlaps(a, b []string) bool {
	for _, s := range a {
		if slices.Contains(b, s) {
			return true
		}
	}
	return false
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func constraintEvidence(spec *corev1.PodSpec) []string {
	var ev []string
	for k, v := range spec.NodeSelector {
		ev = append(ev, fmt.Sprintf("nodeSelector %s=%s", k, v))
	}
	sort.Strings(ev)
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for i, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, e := range t.MatchExpressions {
				ev = append(ev, fmt.Sprintf("nodeSelectorTerms[%d] %s %s %s", i, e.Key, e.Operator, strings.Join(e.Values, ",")))
			}
		}
	}
	return ev
}

// imageFindings reports problems of the images themselves once per
// workload container that uses them, so waivers can name the workload.
func imageFindings(snap *cluster.Snapshot, images *image.Set, opts Options) []finding.Finding {
	var out []finding.Finding
	for _, w := range snap.Workloads {
		var fs []finding.Finding
		r := ref(w)
		for _, c := range w.Containers {
			rep := reportFor(images, w, c, opts.Verify)
			if rep == nil {
				continue
			}
			if rep.Error != nil {
				f := finding.New(finding.ImageUninspectable, fmt.Sprintf("cannot read %s: %s", c.Image, rep.Error.Reason))
				f.Evidence = []string{rep.Error.Detail}
				if rep.Error.Tried != "" {
					f.Evidence = append(f.Evidence, "tried: "+rep.Error.Tried)
				}
				f.Workload, f.Container, f.ContainerType, f.Image = &r, c.Name, string(c.Role), c.Image
				fs = append(fs, f)
				continue
			}
			byCode := map[string]int{}
			for _, p := range rep.Problems {
				if _, ok := finding.Lookup(p.Code); !ok {
					continue
				}
				ev := fmt.Sprintf("entry %s: %s", p.Entry, p.Detail)
				if i, ok := byCode[p.Code]; ok {
					fs[i].Evidence = append(fs[i].Evidence, ev)
					continue
				}
				f := finding.New(p.Code, fmt.Sprintf("%s: %s", c.Image, p.Detail))
				f.Workload, f.Container, f.ContainerType, f.Image = &r, c.Name, string(c.Role), c.Image
				f.ImagePlatforms = rep.Platforms
				f.Evidence = []string{ev}
				byCode[p.Code] = len(fs)
				fs = append(fs, f)
			}
		}
		ws, _ := workloadWaivers(w, opts.Waivers, opts.NoAnnotationWaivers) // warned about in Run
		out = append(out, applyWaivers(fs, ws)...)
	}
	return out
}

func countBlockers(aw *Workload, blockers map[string]*Blocker) {
	seen := map[string]bool{}
	for _, c := range aw.Containers {
		if c.Architectures == nil || slices.Contains(c.Architectures, "arm64") || unknownContainer(c) {
			continue
		}
		b := blockers[c.Image]
		if b == nil {
			b = &Blocker{Image: c.Image, Architectures: c.Architectures}
			blockers[c.Image] = b
		}
		if !slices.Contains(b.Roles, string(c.Role)) {
			b.Roles = append(b.Roles, string(c.Role))
			slices.Sort(b.Roles)
		}
		if seen[c.Image] {
			continue
		}
		seen[c.Image] = true
		b.Workloads++
		b.Replicas += aw.Replicas
		if len(b.Examples) < 5 {
			b.Examples = append(b.Examples, aw.Ref)
		}
	}
}

func unknownContainer(c Container) bool {
	for _, cl := range c.Cells {
		if cl.Verdict == Unknown {
			return true
		}
	}
	return false
}

func readiness(ws []*Workload) Readiness {
	var r Readiness
	for _, w := range ws {
		r.Workloads++
		r.Replicas += w.Replicas
		switch w.State {
		case StateReady:
			r.ReadyWorkloads++
			r.ReadyReplicas += w.Replicas
		case StateConflict:
			r.ConflictWorkloads++
		case StateUnknown:
			r.UnknownWorkloads++
		default:
			r.BlockedWorkloads++
		}
	}
	if r.Workloads > 0 {
		r.WorkloadShare = float64(r.ReadyWorkloads) / float64(r.Workloads)
	}
	if r.Replicas > 0 {
		r.ReplicaShare = float64(r.ReadyReplicas) / float64(r.Replicas)
	}
	return r
}

// Workload returns the snapshot workload an audited workload came from.
func (w *Workload) Source() *cluster.Workload { return w.w }
