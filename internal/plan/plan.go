// Package plan turns an audit into a taint-based rollout onto Arm nodes:
// phases with the exact commands and manifests, the gate to pass before the
// next phase and how to roll each one back. Pure: it reads an audit.Result.
package plan

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/remedy"
)

// ArmTaint is the taint the plan puts on Arm nodes: the one GKE uses, so
// the same tolerations work everywhere.
var ArmTaint = corev1.Taint{Key: "kubernetes.io/arch", Value: "arm64", Effect: corev1.TaintEffectNoSchedule}

// Options tune the plan.
type Options struct {
	// Soak is how long pods must run on arm64 before widening (default 24h).
	Soak time.Duration
	// PreferArm adds a preferred arm64 node affinity next to the toleration.
	PreferArm bool
	// Cluster is the EKS cluster name for aws commands ("" prints a placeholder).
	Cluster string
}

// Step is one thing to do: a command, a manifest, or a note.
type Step struct {
	Title string `json:"title"`
	// Lang of Text: sh, yaml, dockerfile, or "" for prose.
	Lang string `json:"lang,omitempty"`
	Text string `json:"text,omitempty"`
}

// Phase is one stage of the rollout.
type Phase struct {
	Number   int      `json:"number"`
	Name     string   `json:"name"`
	Goal     string   `json:"goal"`
	Steps    []Step   `json:"steps"`
	Gate     []Step   `json:"gate"`
	Rollback []Step   `json:"rollback"`
	Notes    []string `json:"notes,omitempty"`
}

// Candidate is a workload and whether it may get the toleration now.
type Candidate struct {
	Workload string `json:"workload"`
	Ready    bool   `json:"ready"`
	// State: ready (gets the toleration in phase 3), blocked (an image
	// archfit read does not run on arm64), conflict, unknown (some image
	// could not be read and none that was read blocks it), or held (runs on
	// arm64, but not proven, has findings or cannot be patched: Why says).
	State string `json:"state"`
	Why   string `json:"why,omitempty"`
}

// Candidate states beyond the audit's.
const (
	StateHeld = "held"
)

// Plan is the whole rollout.
type Plan struct {
	ArmPools   []string    `json:"armPools"`
	Phases     []Phase     `json:"phases"`
	Candidates []Candidate `json:"candidates"`
}

// Build makes the plan for an audited fleet.
func Build(r *audit.Result, opts Options) *Plan {
	if opts.Soak <= 0 {
		opts.Soak = 24 * time.Hour
	}
	p := &Plan{ArmPools: []string{}}
	var arm []audit.Pool
	for _, pl := range r.Pools {
		if pl.Arch == "arm64" {
			arm = append(arm, pl)
			p.ArmPools = append(p.ArmPools, pl.ID)
		}
	}
	ready, daemonsets := candidates(r, p)
	mixed := map[string]bool{}
	for _, pl := range r.Pools {
		if pl.Arch != "arm64" && pl.Label != "" {
			mixed[pl.Label+"="+pl.Name] = true
		}
	}
	p.Phases = []Phase{
		taintPhase(arm, mixed, daemonsets, opts),
		fixPhase(r),
		tolerationPhase(ready, opts),
		watchPhase(opts),
		widenPhase(arm, opts),
	}
	for i := range p.Phases {
		p.Phases[i].Number = i + 1
		if p.Phases[i].Rollback == nil {
			p.Phases[i].Rollback = []Step{}
		}
	}
	return p
}

// candidates splits the workloads into those proven multi-arch (verified
// entries, no at-risk container, no open finding) and the rest.
func candidates(r *audit.Result, p *Plan) (ready, daemonsets []*audit.Workload) {
	for _, w := range r.Workloads {
		c := Candidate{Workload: w.Ref.String(), State: StateHeld}
		src := w.Source()
		switch {
		case w.State == audit.StateUnknown:
			c.State, c.Why = string(audit.StateUnknown), "unknown: "+unreadImages(w)+" could not be read, so nothing is known about arm64"
		case w.State == audit.StateConflict:
			c.State, c.Why = string(audit.StateConflict), "its nodeSelector/affinity admits no architecture its images run (arch-constraint-conflict)"
		case !w.MultiArchProven && !w.ArmReady:
			c.State, c.Why = string(audit.StateBlocked), "does not run on arm64 (see blockers)"
		case !w.MultiArchProven:
			c.Why = "not proven: some image's entries are not verified (run with --verify) or a container fails on a pool"
		case w.Findings > 0:
			c.Why = "has open findings"
		case src == nil || src.Original == nil:
			c.Why = "the object is not in the input: cannot compute the patch"
		case src.Kind == cluster.KindPod:
			c.Why = "bare pod: recreate it from its manifest with the toleration"
		case !src.PodSpecAtTemplatePath():
			c.Why = "its operator reads tolerations elsewhere than a pod spec: add the toleration where `archfit patch` writes the affinity"
		case hasToleration(src.Template.Spec.Tolerations):
			c.Why = "already tolerates the Arm taint"
		default:
			c.Ready, c.State = true, string(audit.StateReady)
		}
		p.Candidates = append(p.Candidates, c)
		if c.Ready {
			if src.Kind == cluster.KindDaemonSet {
				daemonsets = append(daemonsets, w)
			} else {
				ready = append(ready, w)
			}
		}
	}
	return ready, daemonsets
}

// unreadImages names a workload's images that could not be read, with why.
func unreadImages(w *audit.Workload) string {
	var out []string
	seen := map[string]bool{}
	for _, c := range w.Containers {
		if c.Unread != "" && !seen[c.Image] {
			seen[c.Image] = true
			out = append(out, fmt.Sprintf("%s (%s)", c.Image, c.Unread))
		}
	}
	return strings.Join(out, ", ")
}

func hasToleration(tols []corev1.Toleration) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(klog.Background(), &ArmTaint, false) {
			return true
		}
	}
	return false
}

// poolSelector selects the pool's arm64 nodes: the arch is always part of
// it, since one Karpenter NodePool may hold nodes of both architectures.
func poolSelector(pl audit.Pool) string {
	if pl.Assumed || pl.Label == "" {
		return "kubernetes.io/arch=arm64"
	}
	return pl.Label + "=" + pl.Name + ",kubernetes.io/arch=arm64"
}

func taintPhase(arm []audit.Pool, mixed map[string]bool, daemonsets []*audit.Workload, opts Options) Phase {
	ph := Phase{Name: "Taint the Arm pools",
		Goal: "Nothing lands on Arm nodes unless it tolerates kubernetes.io/arch=arm64:NoSchedule, so adding Arm capacity cannot break a single-arch workload."}
	if len(daemonsets) > 0 {
		var cmds []string
		for _, w := range daemonsets {
			cmds = append(cmds, tolerationCommand(w, false))
		}
		ph.Steps = append(ph.Steps, Step{Title: "First, let the multi-arch DaemonSets (agents, CNI, log shippers) keep running on tainted Arm nodes", Lang: "sh", Text: strings.Join(cmds, "\n")})
	}
	cluster := opts.Cluster
	if cluster == "" {
		cluster = "<cluster>"
	}
	if len(arm) == 0 {
		arm = []audit.Pool{{Assumed: true, Arch: "arm64"}}
		ph.Notes = append(ph.Notes, "The input has no arm64 nodes: the commands select by kubernetes.io/arch=arm64; run them when the Arm pool exists, or put the taint in the pool's definition before creating it.")
	}
	var rollback []string
	for _, pl := range arm {
		if pl.Label == "cloud.google.com/gke-nodepool" {
			// GKE's own taint: never add or remove it by hand.
			ph.Notes = append(ph.Notes, "GKE node pool "+pl.Name+": GKE already taints Arm nodes kubernetes.io/arch=arm64:NoSchedule and adds the toleration itself to pods that select arm64 (nodeSelector or node affinity): nothing to do, and nothing to roll back.")
			continue
		}
		sel := poolSelector(pl)
		ph.Steps = append(ph.Steps, Step{Title: "Taint the existing nodes of " + orPlaceholder(pl.ID), Lang: "sh",
			Text: fmt.Sprintf("kubectl taint nodes -l %s kubernetes.io/arch=arm64:NoSchedule --overwrite", sel)})
		rollback = append(rollback, fmt.Sprintf("kubectl taint nodes -l %s kubernetes.io/arch=arm64:NoSchedule-", sel))
		switch pl.Label {
		case "karpenter.sh/nodepool", "karpenter.sh/provisioner-name":
			if mixed[pl.Label+"="+pl.Name] {
				ph.Notes = append(ph.Notes, "Karpenter NodePool "+pl.Name+" launches both amd64 and arm64 nodes: a taint in its template would taint both. Split it into one NodePool per architecture (requirement kubernetes.io/arch In [arm64] with the taint, In [amd64] without) before relying on the taint for new nodes.")
				break
			}
			ph.Steps = append(ph.Steps, Step{Title: "Karpenter NodePool " + pl.Name + ": taint the nodes it creates (spec.template.spec.taints; `kubectl edit nodepool " + pl.Name + "`, keep any taints already there)", Lang: "yaml",
				Text: "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata:\n  name: " + pl.Name + "\nspec:\n  template:\n    spec:\n      taints:\n      - key: kubernetes.io/arch\n        value: arm64\n        effect: NoSchedule"})
			rollback = append(rollback, "# remove the kubernetes.io/arch taint from NodePool "+pl.Name+" spec.template.spec.taints (kubectl edit nodepool "+pl.Name+")")
		case "eks.amazonaws.com/nodegroup", "alpha.eksctl.io/nodegroup-name":
			ph.Steps = append(ph.Steps, Step{Title: "EKS managed node group " + pl.Name + ": taint the nodes it creates", Lang: "sh",
				Text: fmt.Sprintf("aws eks update-nodegroup-config --cluster-name %s --nodegroup-name %s \\\n  --taints 'addOrUpdateTaints=[{key=kubernetes.io/arch,value=arm64,effect=NO_SCHEDULE}]'", cluster, pl.Name)})
			rollback = append(rollback, fmt.Sprintf("aws eks update-nodegroup-config --cluster-name %s --nodegroup-name %s \\\n  --taints 'removeTaints=[{key=kubernetes.io/arch,value=arm64,effect=NO_SCHEDULE}]'", cluster, pl.Name))
		}
	}
	if len(arm) == 1 && arm[0].Assumed {
		ph.Notes = append(ph.Notes,
			"Karpenter: add the taint under the NodePool's spec.template.spec.taints.",
			"EKS managed node groups: aws eks update-nodegroup-config --cluster-name "+cluster+" --nodegroup-name <group> --taints 'addOrUpdateTaints=[{key=kubernetes.io/arch,value=arm64,effect=NO_SCHEDULE}]'.",
			"GKE taints Arm nodes this way by default and adds the toleration itself to pods that select arm64.")
	}
	ph.Notes = append(ph.Notes, "NoSchedule does not evict pods already running on Arm nodes: check the gate.")
	ph.Gate = []Step{
		{Title: "Every arm64 node carries the taint", Lang: "sh", Text: `kubectl get nodes -l kubernetes.io/arch=arm64 -o custom-columns='NODE:.metadata.name,TAINTS:.spec.taints[*].key'`},
		{Title: "Only tolerating pods run on arm64 nodes (this lists the others; they run there from before the taint and must be multi-arch or moved)", Lang: "sh",
			Text: `for n in $(kubectl get nodes -l kubernetes.io/arch=arm64 -o name | cut -d/ -f2); do
  kubectl get pods -A --field-selector spec.nodeName=$n -o json |
    jq -r '.items[] | select([.spec.tolerations[]? | select(.key=="kubernetes.io/arch" or .operator=="Exists" and .key==null)] | length == 0) | "\(.metadata.namespace)/\(.metadata.name)"'
done`},
	}
	ph.Rollback = []Step{{Title: "Remove the taint", Lang: "sh", Text: strings.Join(rollback, "\n")}}
	return ph
}

func orPlaceholder(s string) string {
	if s == "" {
		return "the Arm pool"
	}
	return s
}

func fixPhase(r *audit.Result) Phase {
	ph := Phase{Name: "Fix the blockers",
		Goal: "Every image a candidate workload needs runs on arm64 (proper multi-arch index, verified), most-blocking image first."}
	if st, ok := readStep(r); ok {
		ph.Steps = append(ph.Steps, st)
	}
	switch {
	case len(r.Blockers) > 0:
	case r.Readiness.UnknownWorkloads > 0:
		ph.Steps = append(ph.Steps, Step{Title: fmt.Sprintf("No image that archfit could read blocks arm64; %d workload(s) are unknown until their images are read (above).", r.Readiness.UnknownWorkloads)})
	default:
		ph.Steps = append(ph.Steps, Step{Title: "No image blocks arm64."})
	}
	for i, b := range r.Blockers {
		st := Step{Title: fmt.Sprintf("%d. %s (runs on %s; %s in %d workload(s), %d replica(s))", i+1, b.Image,
			orNothing(b.Architectures), strings.Join(b.Roles, "/"), b.Workloads, b.Replicas)}
		if b.Build != nil && len(b.Build.Recipes) > 0 {
			st.Lang, st.Text = b.Build.Recipes[0].Lang, b.Build.Recipes[0].Text
		}
		ph.Steps = append(ph.Steps, st)
		if b.Build != nil {
			ph.Steps = append(ph.Steps, dockerfileSteps(b.Build.Dockerfiles)...)
		}
	}
	var patches []string
	for _, rm := range r.Remedies {
		if len(rm.Unverified) > 0 {
			// An allow-list that ignores unread images is no pin to
			// recommend: it may keep the workload where it cannot run.
			patches = append(patches, fmt.Sprintf("# %s: no pin until archfit can read the image of %s", rm.Workload, strings.Join(rm.Unverified, ", ")))
			continue
		}
		if rm.Patch != nil && rm.Patch.Changed {
			if b, err := rm.Patch.Render(remedy.FormatKubectl); err == nil {
				patches = append(patches, strings.TrimRight(string(b), "\n"))
			}
		}
	}
	if len(patches) > 0 {
		ph.Steps = append(ph.Steps, Step{Title: "Meanwhile, pin the at-risk workloads to the architectures they run on (interim; remove once the image is fixed)", Lang: "sh", Text: strings.Join(patches, "\n")})
	}
	ph.Gate = []Step{{Title: "No single-arch-at-risk, mislabeled-platform or arch-constraint-conflict left for the workloads to move (or each waived with a reason)", Lang: "sh",
		Text: "archfit audit -A --verify --fail-on warning"}}
	ph.Rollback = []Step{{Title: "Image changes roll back with the workload: kubectl rollout undo (Deployment, StatefulSet, DaemonSet) to the previous image; the interim pins are safe to keep."}}
	return ph
}

// readStep is the first step when some images could not be read: read
// them (the workloads that need them are unknown, neither ready nor
// blocked), with each image, why and how many workloads wait for it.
func readStep(r *audit.Result) (Step, bool) {
	type unread struct {
		reason    string
		workloads int
	}
	imgs := map[string]*unread{}
	var order []string
	for _, w := range r.Workloads {
		seen := map[string]bool{}
		for _, c := range w.Containers {
			if c.Unread == "" || seen[c.Image] {
				continue
			}
			seen[c.Image] = true
			u := imgs[c.Image]
			if u == nil {
				u = &unread{reason: c.Unread}
				imgs[c.Image] = u
				order = append(order, c.Image)
			}
			u.workloads++
		}
	}
	if len(order) == 0 {
		return Step{}, false
	}
	sort.SliceStable(order, func(i, j int) bool { return imgs[order[i]].workloads > imgs[order[j]].workloads })
	var lines []string
	for _, ref := range order {
		lines = append(lines, fmt.Sprintf("%s  # %s; %d workload(s)", ref, imgs[ref].reason, imgs[ref].workloads))
	}
	return Step{Title: fmt.Sprintf("First, let archfit read the %d image(s) it could not (registry access, --registry-config, pull secrets, or --oci-layout), then run the plan again: until then the workloads that need them are unknown", len(order)),
		Text: strings.Join(lines, "\n")}, true
}

func orNothing(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

func tolerationPhase(ready []*audit.Workload, opts Options) Phase {
	ph := Phase{Name: "Let proven multi-arch workloads onto Arm",
		Goal: "Add the toleration (and optionally a preferred arm64 affinity) only to workloads whose every image has verified arm64 and amd64 entries and no container at risk."}
	var cmds, undo, status []string
	for _, w := range ready {
		cmds = append(cmds, tolerationCommand(w, opts.PreferArm))
		undo = append(undo, rollbackCommand(w, opts.PreferArm))
		if src := w.Source(); src.Kind == cluster.KindDeployment || src.Kind == cluster.KindStatefulSet || src.Kind == cluster.KindDaemonSet {
			status = append(status, fmt.Sprintf("kubectl rollout status %s/%s -n %s --timeout 10m", strings.ToLower(src.Kind), src.Name, src.Namespace))
		}
	}
	if len(cmds) == 0 {
		ph.Steps = append(ph.Steps, Step{Title: "No workload is proven multi-arch yet: fix the blockers and run `archfit plan --verify` again."})
	} else {
		ph.Steps = append(ph.Steps, Step{Title: fmt.Sprintf("Patch %d workload(s) (JSON patches append: nothing already in the lists is replaced)", len(cmds)), Lang: "sh", Text: strings.Join(cmds, "\n")})
		ph.Rollback = []Step{{Title: "Remove exactly what was added", Lang: "sh", Text: strings.Join(undo, "\n")}}
	}
	if len(status) == 0 {
		status = []string{"kubectl rollout status <kind>/<name> -n <namespace>   # for each patched workload"}
	}
	ph.Gate = []Step{
		{Title: "The patched workloads rolled out", Lang: "sh", Text: strings.Join(status, "\n")},
		{Title: "Some of their pods run on arm64 nodes and none of them fails", Lang: "sh", Text: "archfit diagnose -A"},
	}
	return ph
}

func watchPhase(opts Options) Phase {
	return Phase{Name: "Watch",
		Goal: fmt.Sprintf("Pods run on arm64 for %s with no crash, pull failure or restart.", opts.Soak),
		Steps: []Step{
			{Title: "Diagnose the whole cluster", Lang: "sh", Text: "archfit diagnose -A"},
			{Title: "Pods on arm64 nodes that are not Running, or restarting", Lang: "sh",
				Text: `for n in $(kubectl get nodes -l kubernetes.io/arch=arm64 -o name | cut -d/ -f2); do
  kubectl get pods -A --field-selector spec.nodeName=$n -o custom-columns='POD:.metadata.namespace,NAME:.metadata.name,PHASE:.status.phase,RESTARTS:.status.containerStatuses[*].restartCount'
done`},
		},
		Gate: []Step{{Title: fmt.Sprintf("archfit diagnose -A finds nothing, and the pods above stayed Running with unchanged restart counts for %s", opts.Soak), Lang: "sh", Text: "archfit diagnose -A --fail-on warning && echo clean"}},
		Rollback: []Step{
			{Title: "Roll back the tolerations (phase 3 rollback), then move the pods off Arm", Lang: "sh",
				Text: "kubectl cordon -l kubernetes.io/arch=arm64\nkubectl drain -l kubernetes.io/arch=arm64 --ignore-daemonsets --delete-emptydir-data\nkubectl uncordon -l kubernetes.io/arch=arm64"},
		},
	}
}

func widenPhase(arm []audit.Pool, opts Options) Phase {
	ph := Phase{Name: "Widen",
		Goal: "Move the next batch, then make Arm the default."}
	ph.Steps = []Step{
		{Title: "Re-audit and take the next batch of proven workloads (phases 2 to 4 again)", Lang: "sh", Text: "archfit plan -A --verify"},
		{Title: "Grow the Arm pools as workloads move (Karpenter: allow arm64 in the NodePool requirements and give it the higher weight; node groups: raise the desired size)"},
	}
	// The taint comes off the pools phase 1 tainted, never off GKE's own
	// Arm pools (GKE keeps that taint and tolerates it for pods that select
	// arm64).
	remove := []string{"archfit audit -A --verify -o json | jq -e '.extra.readiness.workloadShare == 1'"}
	var restore []string
	var gke []string
	for _, pl := range arm {
		if pl.Label == "cloud.google.com/gke-nodepool" {
			gke = append(gke, pl.Name)
			continue
		}
		sel := "kubernetes.io/arch=arm64"
		if pl.Label != "" && pl.Label != "kubernetes.io/arch" {
			sel = pl.Label + "=" + pl.Name + "," + sel
		}
		remove = append(remove, "kubectl taint nodes -l "+sel+" kubernetes.io/arch=arm64:NoSchedule-")
		restore = append(restore, "kubectl taint nodes -l "+sel+" kubernetes.io/arch=arm64:NoSchedule --overwrite")
	}
	if len(arm) == 0 {
		remove = append(remove, "kubectl taint nodes -l kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule-")
		restore = append(restore, "kubectl taint nodes -l kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule --overwrite")
	}
	ph.Steps = append(ph.Steps, Step{Title: "When the audit shows 100% arm64 readiness, remove the taint phase 1 added (the commands below; NodePool and node group templates as in the phase 1 rollback) so anything can land on Arm", Lang: "sh", Text: strings.Join(remove, "\n")})
	if len(gke) > 0 {
		ph.Notes = append(ph.Notes, "GKE node pools "+strings.Join(gke, ", ")+" keep GKE's own kubernetes.io/arch=arm64 taint: workloads land there by selecting arm64 (GKE then adds the toleration), not by removing the taint.")
	}
	ph.Gate = []Step{{Title: "Each batch passes the phase 4 gate before the next one starts."}}
	ph.Rollback = []Step{{Title: "Put the taint back (phase 1) and roll back the last batch's tolerations (phase 3 rollback)", Lang: "sh", Text: strings.Join(restore, "\n")}}
	for _, pl := range arm {
		if pl.Label == "karpenter.sh/nodepool" {
			ph.Steps = append(ph.Steps, Step{Title: "Karpenter: prefer the Arm NodePool " + pl.Name + " once most workloads tolerate it", Lang: "sh",
				Text: fmt.Sprintf("kubectl patch nodepool %s --type=merge -p '{\"spec\":{\"weight\":100}}'", pl.Name)})
		}
	}
	_ = opts
	return ph
}

// specPath is the JSON pointer of the workload's pod spec.
func specPath(w *cluster.Workload) string {
	if w.TemplatePath == "" {
		return "/spec"
	}
	return "/" + strings.ReplaceAll(w.TemplatePath, ".", "/") + "/spec"
}

// TolerationOps is the JSON patch that adds the Arm toleration (and the
// preferred arm64 affinity) to a workload's pod template.
func TolerationOps(w *cluster.Workload, preferArm bool) []remedy.Operation {
	sp := specPath(w)
	spec := w.Template.Spec
	tol := corev1.Toleration{Key: ArmTaint.Key, Operator: corev1.TolerationOpEqual, Value: ArmTaint.Value, Effect: ArmTaint.Effect}
	var ops []remedy.Operation
	if len(spec.Tolerations) == 0 {
		ops = append(ops, remedy.NewOp("add", sp+"/tolerations", []corev1.Toleration{tol}))
	} else {
		ops = append(ops, remedy.NewOp("add", sp+"/tolerations/-", tol))
	}
	if preferArm {
		term := corev1.PreferredSchedulingTerm{Weight: 50, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"arm64"}}}}}
		a := spec.Affinity
		switch {
		case a == nil:
			ops = append(ops, remedy.NewOp("add", sp+"/affinity", map[string]any{"nodeAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{term}}}))
		case a.NodeAffinity == nil:
			ops = append(ops, remedy.NewOp("add", sp+"/affinity/nodeAffinity", map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{term}}))
		case len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0:
			ops = append(ops, remedy.NewOp("add", sp+"/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution", []any{term}))
		default:
			ops = append(ops, remedy.NewOp("add", sp+"/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution/-", term))
		}
	}
	return ops
}

// rollbackOps removes what TolerationOps added, by index.
func rollbackOps(w *cluster.Workload, preferArm bool) []remedy.Operation {
	sp := specPath(w)
	spec := w.Template.Spec
	var ops []remedy.Operation
	if preferArm {
		a := spec.Affinity
		switch {
		case a == nil:
			ops = append(ops, remedy.NewOp("remove", sp+"/affinity", nil))
		case a.NodeAffinity == nil:
			ops = append(ops, remedy.NewOp("remove", sp+"/affinity/nodeAffinity", nil))
		case len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0:
			ops = append(ops, remedy.NewOp("remove", sp+"/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution", nil))
		default:
			ops = append(ops, remedy.NewOp("remove", fmt.Sprintf("%s/affinity/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution/%d", sp, len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)), nil))
		}
	}
	if len(spec.Tolerations) == 0 {
		ops = append(ops, remedy.NewOp("remove", sp+"/tolerations", nil))
	} else {
		ops = append(ops, remedy.NewOp("remove", fmt.Sprintf("%s/tolerations/%d", sp, len(spec.Tolerations)), nil))
	}
	return ops
}

func kubectlPatch(w *cluster.Workload, ops []remedy.Operation) string {
	return remedy.KubectlPatch(w.Ref, w.APIVersion, ops)
}

func tolerationCommand(w *audit.Workload, preferArm bool) string {
	return kubectlPatch(w.Source(), TolerationOps(w.Source(), preferArm))
}

func rollbackCommand(w *audit.Workload, preferArm bool) string {
	return kubectlPatch(w.Source(), rollbackOps(w.Source(), preferArm))
}

// dockerfileSteps are what blocks the build in the Dockerfiles the user
// named (--dockerfile): each finding at file:line with its fix lines.
func dockerfileSteps(cs []remedy.DockerfileCheck) []Step {
	var out []Step
	for _, c := range cs {
		st := Step{Title: "Dockerfile: " + c.Summary}
		if len(c.Findings) > 0 {
			var b strings.Builder
			for _, f := range c.Findings {
				fmt.Fprintf(&b, "# %s [%s] %s\n# %s\n", f.Position(), f.Code, strings.Join(f.Evidence, " "), f.Message)
				if f.Fix != "" {
					b.WriteString(f.Fix + "\n")
				}
			}
			st.Lang, st.Text = "dockerfile", b.String()
		}
		out = append(out, st)
	}
	return out
}
