package remedy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/schedule"
)

// Remedy is what to do about one workload: today (keep it on the
// architectures all its containers really run, with a patch of the object
// that owns its pod template) and for good (multi-arch builds of the images
// that lack platforms). Every command computes it with ForWorkload, so
// diagnose, audit, patch and plan give one answer.
type Remedy struct {
	Workload             object.Ref `json:"workload"`
	AllowedArchitectures []string   `json:"allowedArchitectures"`
	// Containers say what each container's image runs on the cluster's
	// nodes, as the allowed architectures were computed from.
	Containers []Container `json:"containers"`
	// Unverified names containers whose image was not inspected.
	Unverified []string  `json:"unverified,omitempty"`
	Conflict   *Conflict `json:"conflict,omitempty"`
	Patch      *Interim  `json:"patch,omitempty"`
	// PatchError says why no patch was computed although architectures are
	// allowed (the object is not in the input, a kind archfit cannot patch).
	PatchError string        `json:"patchError,omitempty"`
	Build      []BuildAdvice `json:"build"`
	Notes      []string      `json:"notes,omitempty"`
	// Helm says where the fix of a Helm-managed workload belongs (patch
	// only: it renders the chart).
	Helm *HelmFix `json:"helm,omitempty"`

	opts []Option
	// pending computes the patch DeferPatch left out (FinishPatch).
	pending func()
}

// Interim is the interim node-affinity patch, with the kubectl command that
// applies it.
type Interim struct {
	*Result
	Kubectl string `json:"kubectl,omitempty"`
}

// Input is everything a workload's remedy depends on.
type Input struct {
	Workload *cluster.Workload
	// Nodes are the cluster's nodes (none for manifests without a dump).
	Nodes []*cluster.Node
	// Architectures, when set, are the node architectures to allow at most
	// instead of the nodes' (patch --arch, or the platforms an audit
	// assumes for an input without nodes).
	Architectures []string
	// Images are the run's image reports; Verify says whether they were
	// requested with entrypoint verification.
	Images *image.Set
	Verify bool
	// ArchFailures names containers whose pods failed with an architecture
	// error (diagnose's findings). For such a container whose image could
	// not be inspected, the architectures where its pods run ready are
	// taken as what it runs.
	ArchFailures map[string]bool
	// Lookup finds another object of the input when the patch belongs
	// there (the Deployment an Argo Rollout's workloadRef names). nil:
	// the redirect is reported in PatchError.
	Lookup func(object.Ref) (*unstructured.Unstructured, error)
	// DeferPatch leaves the patch out unless the object's constraints
	// conflict with the allowed architectures (which changes Conflict):
	// Remedy.FinishPatch computes it when it is wanted. An audit keeps the
	// remedies of the workloads at risk only; marshalling, patching and
	// unmarshalling every other object costs a third of a large audit.
	DeferPatch bool
}

// maxRedirects bounds the owner chain followed for a patch.
const maxRedirects = 3

// ForWorkload computes a workload's remedy: what each container's image
// really runs on the runtime each node has → the architectures all of them
// run ∩ the nodes' architectures → the tolerations of the one taint policy
// (ArchTaints) → the patch of the owning object → build advice.
func ForWorkload(in Input) *Remedy {
	w := in.Workload
	rem := &Remedy{Workload: w.Ref.ID(), Build: []BuildAdvice{}}
	rem.Notes = append(rem.Notes, w.Notes...) // what archfit derived or could not see in a custom resource
	nodes := Targets(in.Nodes, in.Architectures)
	nodeArchs := archsOf(nodes)
	seenImg := map[string]bool{}
	for _, ct := range w.Containers {
		if ct.Role == cluster.RoleEphemeral {
			continue
		}
		c := Container{Name: ct.Name, Role: ct.Role, Image: ct.Image}
		rep := in.Images.Get(image.ForContainer(w.ContainerSpec(ct.Name, ct.Image), in.Verify))
		if rep == nil || rep.Error != nil {
			// Not inspected: the pods are the evidence. Where the container
			// failed with an architecture error and ran fine elsewhere, it
			// runs where it ran.
			if ok := observedArchs(w, ct.Name, ct.Image, in.ArchFailures[ct.Name]); len(ok) > 0 {
				c.Architectures = ok
				rem.Notes = append(rem.Notes, fmt.Sprintf("%s was not inspected: taken to run on %s, where its pods run", ct.Image, strings.Join(ok, ", ")))
			} else {
				c.Unknown, c.Architectures = true, []string{}
			}
		} else {
			c.Architectures = RunsOn(rep, nodes)
			if img := in.Images.Image(ct.Image); img != nil && img.Error == nil && !seenImg[ct.Image] {
				seenImg[ct.Image] = true
				opts := []BuildOption{ForArchitectures(BuildArchs(nodeArchs)...)}
				if per := perArchImages(in.Images, ct.Image); len(per) > 0 {
					opts = append(opts, WithPerArchImages(per))
				}
				if b := Build(*img, opts...); b.Needed {
					rem.Build = append(rem.Build, b)
				}
			}
		}
		rem.Containers = append(rem.Containers, c)
	}
	allowed := AllowedArchitectures(rem.Containers, nodeArchs)
	rem.AllowedArchitectures = allowed.Architectures
	if rem.AllowedArchitectures == nil {
		rem.AllowedArchitectures = []string{}
	}
	rem.Unverified = allowed.Unverified
	rem.Conflict = allowed.Conflict
	for _, a := range allowed.Architectures {
		tol, other := ArchTaints(in.Nodes, a)
		if len(tol) > 0 {
			rem.opts = append(rem.opts, WithTaints(a, tol...))
		}
		for _, t := range other {
			if !schedule.Tolerated(w.Template.Spec.Tolerations, &t) {
				rem.Notes = append(rem.Notes, fmt.Sprintf("every %s node carries the taint %s, which is not about architecture: archfit does not tolerate it for you", a, t.ToString()))
			}
		}
	}
	switch {
	case allowed.Conflict != nil || len(allowed.Architectures) == 0:
	case w.Original == nil:
		rem.PatchError = fmt.Sprintf("%s itself is not in the input (%s): no patch computed", w.Ref, w.Inferred)
	case in.DeferPatch:
		if !rem.patch(w, in.Lookup, true) {
			break
		}
		at := len(rem.Notes)
		rem.pending = func() {
			tail := slices.Clone(rem.Notes[at:])
			rem.Notes = rem.Notes[:at]
			rem.patch(w, in.Lookup, false)
			rem.Notes = append(rem.Notes, tail...)
		}
	default:
		rem.patch(w, in.Lookup, false)
	}
	if w.ManagedBy != nil {
		rem.Notes = append(rem.Notes, fmt.Sprintf("managed by %s: it may revert a patch of %s; change it there", w.ManagedBy, w.Ref))
	}
	return rem
}

// patch computes the patch of w's object into rem. With judgeOnly, only
// what decides the workload's allowed architectures is computed: whether
// the object's constraints conflict with them (then the result is the
// whole one, as Patch stops there too); otherwise rem is left as it was
// and patch reports true: FinishPatch computes the rest.
func (rem *Remedy) patch(w *cluster.Workload, lookup func(object.Ref) (*unstructured.Unstructured, error), judgeOnly bool) (deferred bool) {
	notes := len(rem.Notes)
	var extra []Option
	if judgeOnly {
		extra = append(extra, func(o *options) { o.judgeOnly = true })
	}
	res, err := rem.follow(w.Original, lookup, extra...)
	if judgeOnly && (err != nil || len(res.Conflicts) == 0) {
		rem.Notes = rem.Notes[:notes]
		return true
	}
	if err != nil {
		rem.PatchError = err.Error()
		return false
	}
	p := &Interim{Result: res}
	if len(res.Conflicts) > 0 {
		c := res.Conflicts[0]
		rem.Conflict = &c
	} else if b, err := res.Render(FormatKubectl); err == nil {
		p.Kubectl = string(b)
	}
	rem.Patch = p
	return false
}

// FinishPatch computes the patch that ForWorkload with DeferPatch left
// out; it does nothing for a remedy that has its patch (or none to have).
// Afterwards the remedy is exactly what ForWorkload without DeferPatch
// returns. It is not safe to call concurrently on one remedy.
func (r *Remedy) FinishPatch() {
	if f := r.pending; f != nil {
		r.pending = nil
		f()
	}
}

// Repatch computes the remedy's patch against another copy of the object
// (the live one, just read; or with WithSource for a file edit).
func (r *Remedy) Repatch(obj *unstructured.Unstructured, extra ...Option) (*Result, error) {
	return Patch(obj, r.AllowedArchitectures, append(slices.Clone(r.opts), extra...)...)
}

// follow computes the patch, following RedirectErrors to the object that
// owns the pod template.
func (r *Remedy) follow(obj *unstructured.Unstructured, lookup func(object.Ref) (*unstructured.Unstructured, error), extra ...Option) (*Result, error) {
	for hops := 0; ; hops++ {
		res, err := r.Repatch(obj, extra...)
		var redirect *RedirectError
		if !errors.As(err, &redirect) {
			return res, err
		}
		if lookup == nil || hops == maxRedirects {
			return nil, err
		}
		next, lerr := lookup(redirect.To)
		if lerr != nil {
			return nil, fmt.Errorf("%w; and %s cannot be read: %v", redirect, redirect.To, lerr)
		}
		r.Notes = append(r.Notes, fmt.Sprintf("patching %s instead of %s: %s", redirect.To, redirect.From, redirect.Reason))
		obj = next
	}
}

// Target is a node, or a node platform assumed, that a workload may run on.
type Target struct {
	Platform specs.Platform
	// Runtimes are the matchers the node may apply (all when unknown).
	Runtimes []platform.Runtime
}

// Targets are the node platforms and runtimes to judge images against:
// the nodes' (bounded by archs when given), or linux nodes of archs with
// any runtime when no node is known.
func Targets(nodes []*cluster.Node, archs []string) []Target {
	var out []Target
	seen := map[string]bool{}
	for _, n := range nodes {
		a := n.Arch()
		if a == "" || len(archs) > 0 && !slices.Contains(archs, a) {
			continue
		}
		t := Target{Platform: n.Platform, Runtimes: n.Runtime.Matchers}
		if len(t.Runtimes) == 0 {
			t.Runtimes = platform.Runtimes
		}
		k := platform.String(&t.Platform) + fmt.Sprint(t.Runtimes)
		if !seen[k] {
			seen[k] = true
			out = append(out, t)
		}
	}
	for _, a := range archs {
		if !slices.ContainsFunc(out, func(t Target) bool { return platform.Arch(t.Platform) == a }) {
			out = append(out, Target{Platform: platform.Node("linux", a), Runtimes: platform.Runtimes})
		}
	}
	return out
}

func archsOf(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, platform.Arch(t.Platform))
	}
	return sortedSet(out)
}

// RunsOn returns the architectures among the targets' on which the image
// really runs: on every node of that architecture, under every runtime
// path the node may take, the entry pulled exists and its binary runs.
// Without targets it is the image's runnable architectures. A platform the
// report has no pull prediction for falls back to those.
func RunsOn(rep *image.Report, targets []Target) []string {
	if len(targets) == 0 {
		return sortedSet(rep.Architectures)
	}
	ok := map[string]bool{}
	for _, t := range targets {
		a := platform.Arch(t.Platform)
		if v, seen := ok[a]; seen && !v {
			continue
		}
		ok[a] = runsOnTarget(rep, t)
	}
	var out []string
	for a, v := range ok {
		if v {
			out = append(out, a)
		}
	}
	return sortedSet(out)
}

func runsOnTarget(rep *image.Report, t Target) bool {
	node := platform.String(&t.Platform)
	for _, rt := range t.Runtimes {
		rt = image.PullRuntime(rep, node, rt)
		found := false
		for _, p := range rep.Pulls {
			if p.Node != node || p.Runtime != rt {
				continue
			}
			found = true
			if p.Error != "" || p.Runs != nil && !*p.Runs {
				return false
			}
		}
		if !found && !slices.Contains(rep.Architectures, platform.Arch(t.Platform)) {
			return false
		}
	}
	return true
}

// BuildArchs are the architectures a permanent build should cover: the
// cluster's, and at least amd64 and arm64 (the point of a mixed cluster).
func BuildArchs(nodeArchs []string) []string {
	return sortedSet(append(slices.Clone(nodeArchs), "amd64", "arm64"))
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
		if found && cs.Image == img && cs.Running != nil && cs.Ready {
			ok = append(ok, p.Node.Arch())
		}
	}
	return sortedSet(ok)
}

// perArchImages finds, among the run's images, single-architecture images
// of the same repository whose tags are ref's tag with an architecture
// suffix (app:1.0-arm64 beside app:1.0-amd64): joining them into one index
// needs no rebuild.
func perArchImages(set *image.Set, ref string) map[string]string {
	i := strings.LastIndex(ref, ":")
	if i < 0 || i < strings.LastIndex(ref, "/") || strings.Contains(ref, "@") {
		return nil // no tag
	}
	repo, base := ref[:i], ref[i+1:]
	for _, a := range []string{"amd64", "arm64"} {
		base = strings.TrimSuffix(strings.TrimSuffix(base, "-"+a), "_"+a)
	}
	out := map[string]string{}
	for _, a := range []string{"amd64", "arm64"} {
		for _, sep := range []string{"-", "_"} {
			r := set.Image(repo + ":" + base + sep + a)
			if r != nil && r.Error == nil && len(r.Architectures) == 1 && r.Architectures[0] == a {
				out[a] = r.Reference
			}
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}
