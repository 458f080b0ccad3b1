package cluster

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/archfit/archfit/internal/platform"
)

// object is an owner candidate (anything that is not a Pod and can own or
// template pods), whichever source it came from.
type object struct {
	ref          Ref
	apiVersion   string
	meta         *metav1.ObjectMeta
	template     *corev1.PodTemplateSpec
	templatePath string
	replicas     *int32
	// orig is the object as read, made on first use (original) from raw,
	// the object's JSON as read, or else from typed: most objects read
	// (ReplicaSets, the Jobs of CronJobs) are not workloads, and never
	// need it.
	orig  *unstructured.Unstructured
	raw   []byte
	typed runtime.Object
	// nsDefaulted: the namespace was set after reading (-n), orig's too.
	nsDefaulted bool
	workloadRef *Ref // Argo Rollout spec.workloadRef
	// operator is set for a custom resource of a known kind (the table in
	// operators.go); generic for one whose containers were found by walking
	// its spec. notes say what was derived or left out.
	operator    *OperatorKind
	generic     bool
	podSpecLike bool // the operator reads a pod spec at templatePath
	notes       []string
}

// input is what a source collected, before linking.
type input struct {
	nodes   []*corev1.Node
	pods    []*corev1.Pod
	events  []*corev1.Event
	objects []*object
	logs    []*Log
	// locs are where objects read from files were, by "kind/ns/name".
	locs map[string]*loc
}

// newObject wraps a typed workload object. raw is its JSON as read, nil
// when it was not read as JSON (live): its unstructured form is then made
// from typed, when needed.
func newObject(typed runtime.Object, raw []byte) (*object, error) {
	o := &object{raw: raw, typed: typed}
	switch t := typed.(type) {
	case *appsv1.Deployment:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindDeployment, Namespace: t.Namespace, Name: t.Name}, "apps/v1", &t.ObjectMeta
		o.template, o.templatePath, o.replicas = &t.Spec.Template, "spec.template", t.Spec.Replicas
	case *appsv1.ReplicaSet:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindReplicaSet, Namespace: t.Namespace, Name: t.Name}, "apps/v1", &t.ObjectMeta
		o.template, o.templatePath, o.replicas = &t.Spec.Template, "spec.template", t.Spec.Replicas
	case *appsv1.StatefulSet:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindStatefulSet, Namespace: t.Namespace, Name: t.Name}, "apps/v1", &t.ObjectMeta
		o.template, o.templatePath, o.replicas = &t.Spec.Template, "spec.template", t.Spec.Replicas
	case *appsv1.DaemonSet:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindDaemonSet, Namespace: t.Namespace, Name: t.Name}, "apps/v1", &t.ObjectMeta
		o.template, o.templatePath = &t.Spec.Template, "spec.template"
	case *batchv1.Job:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindJob, Namespace: t.Namespace, Name: t.Name}, "batch/v1", &t.ObjectMeta
		o.template, o.templatePath, o.replicas = &t.Spec.Template, "spec.template", t.Spec.Parallelism
	case *batchv1.CronJob:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindCronJob, Namespace: t.Namespace, Name: t.Name}, "batch/v1", &t.ObjectMeta
		o.template, o.templatePath = &t.Spec.JobTemplate.Spec.Template, "spec.jobTemplate.spec.template"
	case *corev1.PodTemplate:
		o.ref, o.apiVersion, o.meta = Ref{Kind: KindPodTemplate, Namespace: t.Namespace, Name: t.Name}, "v1", &t.ObjectMeta
		o.template, o.templatePath = &t.Template, "template"
	default:
		return nil, fmt.Errorf("%T is not a workload", typed)
	}
	return o, nil
}

// original returns the object as read, unstructured, making it on first
// use: from its JSON when it was read as JSON (kept exactly, with fields
// the typed object drops), else from the typed object. It is nil only if
// neither can be converted, which a typed object that was decoded from
// that JSON does not allow.
func (o *object) original() *unstructured.Unstructured {
	if o.orig != nil || o.raw == nil && o.typed == nil {
		return o.orig
	}
	if o.raw != nil {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.raw); err == nil {
			o.orig = u
		}
	}
	if o.orig == nil && o.typed != nil {
		if m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o.typed); err == nil {
			o.orig = &unstructured.Unstructured{Object: m}
			o.orig.SetAPIVersion(o.apiVersion)
			o.orig.SetKind(o.ref.Kind)
		}
	}
	o.raw, o.typed = nil, nil
	if o.orig != nil && o.nsDefaulted {
		o.orig.SetNamespace(o.ref.Namespace)
	}
	return o.orig
}

// newRollout reads an Argo Rollout, which archfit keeps unstructured: its
// template is spec.template, or the template of the Deployment named by
// spec.workloadRef.
func newRollout(u *unstructured.Unstructured) (*object, error) {
	o := &object{
		ref:          Ref{Kind: KindRollout, Namespace: u.GetNamespace(), Name: u.GetName()},
		apiVersion:   u.GetAPIVersion(),
		orig:         u,
		templatePath: "spec.template",
		meta:         &metav1.ObjectMeta{},
	}
	if md, ok := u.Object["metadata"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(md, o.meta); err != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", o.ref, err)
		}
	}
	if tmpl, ok, _ := unstructured.NestedMap(u.Object, "spec", "template"); ok {
		o.template = &corev1.PodTemplateSpec{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, o.template); err != nil {
			return nil, fmt.Errorf("reading spec.template of %s: %w", o.ref, err)
		}
	}
	if r, ok, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); ok {
		n := int32(r)
		o.replicas = &n
	}
	if kind, ok, _ := unstructured.NestedString(u.Object, "spec", "workloadRef", "kind"); ok {
		name, _, _ := unstructured.NestedString(u.Object, "spec", "workloadRef", "name")
		o.workloadRef = &Ref{Kind: kind, Namespace: o.ref.Namespace, Name: name}
		o.templatePath = ""
	}
	return o, nil
}

// newCustom reads a custom resource that runs containers: a kind of the
// operator table, else any object whose spec holds container-shaped
// objects. It returns nil for an object with no image at all (a
// ServiceMonitor, a Certificate). Its template is made of the containers
// found and the scheduling fields where the operator reads them.
func newCustom(u *unstructured.Unstructured) (*object, error) {
	gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
	name := u.GetName()
	if name == "" && u.GetGenerateName() != "" {
		name = u.GetGenerateName() // Argo Workflows' and Tekton runs' usual form
	}
	o := &object{
		ref:        Ref{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: name},
		apiVersion: u.GetAPIVersion(),
		orig:       u,
		meta:       &metav1.ObjectMeta{},
		template:   &corev1.PodTemplateSpec{},
		operator:   LookupOperatorKind(gv.Group, u.GetKind()),
	}
	var cs []crContainer
	if o.operator != nil {
		cs, o.notes = operatorContainers(o.operator, u.Object)
	} else {
		cs = genericContainers(u.Object)
		o.generic = true
	}
	if len(cs) == 0 && o.operator == nil {
		return nil, nil // no image: a ServiceMonitor, a Certificate...
	}
	if md, ok := u.Object["metadata"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(md, o.meta); err != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", o.ref, err)
		}
	}
	o.meta.Name = name
	spec := &o.template.Spec
	for _, c := range cs {
		k := corev1.Container{Name: c.Name, Image: c.Image}
		if c.Role == RoleInit {
			spec.InitContainers = append(spec.InitContainers, k)
		} else {
			spec.Containers = append(spec.Containers, k)
		}
	}
	if o.generic {
		o.notes = append(o.notes, fmt.Sprintf("%s %s is not a kind archfit knows: its images were found by walking its spec, and where its operator reads node affinity is unknown", o.apiVersion, o.ref.Kind))
	}
	if o.operator != nil {
		o.templatePath, o.podSpecLike = podSpecAt(o.operator.Scheduling)
	}
	if o.operator != nil && o.operator.Scheduling != nil {
		if err := readScheduling(u.Object, o.operator.Scheduling, spec); err != nil {
			return nil, fmt.Errorf("reading %s: %w", o.ref, err)
		}
	}
	if r, ok, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); ok {
		n := int32(r)
		o.replicas = &n
	}
	return o, nil
}

// podSpecAt says whether an operator reads the scheduling fields from a
// pod spec at one place, and the template path of that place in
// Workload.TemplatePath's convention ("" for the object's own spec, else
// the template whose .spec it is).
func podSpecAt(s *Scheduling) (string, bool) {
	if s == nil || strings.Contains(s.Affinity, "[]") {
		return "", false
	}
	parent, ok := strings.CutSuffix(s.Affinity, ".affinity")
	if !ok || s.NodeSelector != parent+".nodeSelector" || s.Tolerations != parent+".tolerations" {
		return "", false
	}
	if parent == "spec" {
		return "", true
	}
	if tp, ok := strings.CutSuffix(parent, ".spec"); ok {
		return tp, true
	}
	return "", false
}

// readScheduling copies the scheduling fields the operator reads into a pod
// spec, so that the audit judges the constraints the pods will get. With
// a list in the path (ECK's nodeSets), the first element is read.
func readScheduling(obj map[string]any, s *Scheduling, spec *corev1.PodSpec) error {
	at := func(path string) (any, bool) {
		if path == "" {
			return nil, false
		}
		ps := Expand(obj, path)
		if len(ps) == 0 {
			return nil, false
		}
		return Get(obj, ps[0])
	}
	if v, ok := at(s.Affinity); ok {
		if m, ok := v.(map[string]any); ok {
			a := &corev1.Affinity{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, a); err != nil {
				return fmt.Errorf("%s: %w", s.Affinity, err)
			}
			spec.Affinity = a
		}
	}
	if v, ok := at(s.NodeSelector); ok {
		if m, ok := v.(map[string]any); ok {
			spec.NodeSelector = map[string]string{}
			for k, x := range m {
				if str, ok := x.(string); ok {
					spec.NodeSelector[k] = str
				}
			}
		}
	}
	if v, ok := at(s.Tolerations); ok {
		if l, ok := v.([]any); ok {
			for _, x := range l {
				m, ok := x.(map[string]any)
				if !ok {
					continue
				}
				var t corev1.Toleration
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &t); err != nil {
					return fmt.Errorf("%s: %w", s.Tolerations, err)
				}
				spec.Tolerations = append(spec.Tolerations, t)
			}
		}
	}
	return nil
}

// newNode reads a node's platform, runtime, readiness and pool.
func newNode(n *corev1.Node) *Node {
	out := &Node{Name: n.Name, Taints: n.Spec.Taints, Unschedulable: n.Spec.Unschedulable, Object: n}
	l := n.Labels
	os, arch := l[corev1.LabelOSStable], l[corev1.LabelArchStable]
	out.PlatformFrom = corev1.LabelArchStable
	if arch == "" {
		arch, out.PlatformFrom = l["beta.kubernetes.io/arch"], "beta.kubernetes.io/arch"
	}
	if arch == "" {
		arch, out.PlatformFrom = n.Status.NodeInfo.Architecture, "status.nodeInfo.architecture"
	}
	if arch == "" {
		out.PlatformFrom = ""
	}
	if os == "" {
		os = l["beta.kubernetes.io/os"]
	}
	if os == "" {
		os = n.Status.NodeInfo.OperatingSystem
	}
	if arch != "" || os != "" {
		out.Platform = platform.Node(os, arch)
	}
	out.Runtime = platform.ParseRuntime(n.Status.NodeInfo.ContainerRuntimeVersion)
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, k := range PoolLabels {
		if v := l[k]; v != "" {
			out.Pool, out.PoolLabel = v, k
			break
		}
	}
	return out
}

// builder links what a source collected into a Snapshot.
type builder struct {
	in        *input
	byUID     map[types.UID]*object
	byRef     map[Ref]*object
	workloads map[Ref]*Workload
	// tops memoizes the workload each object belongs to.
	tops map[Ref]*Workload
}

func build(in *input) *Snapshot {
	b := &builder{
		in:        in,
		byUID:     map[types.UID]*object{},
		byRef:     map[Ref]*object{},
		workloads: map[Ref]*Workload{},
		tops:      map[Ref]*Workload{},
	}
	s := &Snapshot{Events: in.events, Logs: in.logs}
	for _, n := range in.nodes {
		s.Nodes = append(s.Nodes, newNode(n))
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Name < s.Nodes[j].Name })

	for _, o := range in.objects {
		if o.meta.UID != "" {
			b.byUID[o.meta.UID] = o
		}
		b.byRef[o.ref] = o
	}
	for _, o := range in.objects {
		b.topOf(o)
	}
	// An Argo Rollout with a workloadRef takes its template from that object.
	for _, w := range b.workloads {
		o := b.byRef[w.Ref]
		if o == nil || o.workloadRef == nil {
			continue
		}
		w.TemplateFrom = o.workloadRef
		if src := b.byRef[*o.workloadRef]; src != nil && src.template != nil {
			w.Template = *src.template.DeepCopy()
		}
	}

	nodes := map[string]*Node{}
	for _, n := range s.Nodes {
		nodes[n.Name] = n
	}
	for _, p := range in.pods {
		pod := &Pod{Pod: p, Node: nodes[p.Spec.NodeName]}
		pod.Workload, pod.OwnerNote = b.podOwner(p)
		pod.Workload.Pods = append(pod.Workload.Pods, pod)
		s.Pods = append(s.Pods, pod)
	}
	// Namespace and name are unique among pods (keep): any sort gives one
	// order. Dumps usually list pods in that order already (kubectl does).
	byNsName := func(a, b *Pod) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	}
	if !slices.IsSortedFunc(s.Pods, byNsName) {
		slices.SortFunc(s.Pods, byNsName)
	}

	for _, w := range b.workloads {
		sort.Slice(w.Intermediates, func(i, j int) bool { return w.Intermediates[i].Name < w.Intermediates[j].Name })
		byName := func(a, b *Pod) int { return strings.Compare(a.Name, b.Name) }
		if !slices.IsSortedFunc(w.Pods, byName) {
			slices.SortFunc(w.Pods, byName)
		}
		w.Containers = containers(w)
		w.locate(in.locs)
		s.Workloads = append(s.Workloads, w)
	}
	sort.Slice(s.Workloads, func(i, j int) bool { return lessRef(s.Workloads[i].Ref, s.Workloads[j].Ref) })

	b.attachEvents(s)
	attachLogs(s)
	return s
}

func lessRef(a, b Ref) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

// controllerRef returns the managing owner: the reference marked controller,
// else the first one (dumps edited by hand often drop the flag).
func controllerRef(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	if len(refs) > 0 {
		return &refs[0]
	}
	return nil
}

// lookup finds an owner by UID, else by kind, namespace and name (a dump may
// come from different moments, or have had its UIDs stripped).
func (b *builder) lookup(ns string, r *metav1.OwnerReference) *object {
	if o := b.byUID[r.UID]; o != nil && r.UID != "" && o.ref.Kind == r.Kind {
		return o
	}
	return b.byRef[Ref{Kind: r.Kind, Namespace: ns, Name: r.Name}]
}

// topOf returns the workload object o belongs to, creating it.
func (b *builder) topOf(o *object) *Workload {
	if w, ok := b.tops[o.ref]; ok {
		return w
	}
	var w *Workload
	if r := controllerRef(o.meta.OwnerReferences); r == nil {
		w = b.workload(o.ref, o)
	} else if owner := b.lookup(o.ref.Namespace, r); owner != nil {
		w = b.topOf(owner)
		w.Intermediates = append(w.Intermediates, o.ref)
	} else if templatePaths[r.Kind] == "" {
		// An operator's custom resource (Prometheus, HelmRelease...) owns it:
		// the object is the workload, and the operator may revert patches.
		w = b.workload(o.ref, o)
		w.ManagedBy = &Ref{Kind: r.Kind, Namespace: o.ref.Namespace, Name: r.Name}
	} else {
		ref, why := b.inferOwner(o.ref.Namespace, r, o.meta.Labels)
		if ow := b.byRef[ref]; ow != nil {
			w = b.topOf(ow)
		} else {
			w = b.inferred(ref, why, o.template)
		}
		w.Intermediates = append(w.Intermediates, o.ref)
	}
	b.tops[o.ref] = w
	return w
}

// workload returns the workload for a read object, creating it.
func (b *builder) workload(ref Ref, o *object) *Workload {
	if w := b.workloads[ref]; w != nil {
		return w
	}
	w := &Workload{
		Ref:          ref,
		APIVersion:   o.apiVersion,
		UID:          o.meta.UID,
		TemplatePath: o.templatePath,
		Original:     o.original(),
		Replicas:     o.replicas,
		Notes:        o.notes,
		Operator:     o.operator,
		PatchUnknown: o.generic,
		customSpec:   (o.operator != nil || o.generic) && !o.podSpecLike,
	}
	if o.template != nil {
		w.Template = *o.template
	}
	b.workloads[ref] = w
	return w
}

// inferred returns a workload whose object is not in the source, creating it
// with the template of the object below it (if any).
func (b *builder) inferred(ref Ref, why string, tmpl *corev1.PodTemplateSpec) *Workload {
	if w := b.workloads[ref]; w != nil {
		return w
	}
	w := &Workload{Ref: ref, Inferred: why, TemplatePath: templatePaths[ref.Kind]}
	switch ref.Kind {
	case KindDeployment, KindReplicaSet, KindStatefulSet, KindDaemonSet:
		w.APIVersion = "apps/v1"
	case KindJob, KindCronJob:
		w.APIVersion = "batch/v1"
	case KindRollout:
		w.APIVersion = "argoproj.io/v1alpha1"
	}
	if tmpl != nil {
		w.Template = *tmpl.DeepCopy()
	}
	b.workloads[ref] = w
	return w
}

var templatePaths = map[string]string{
	KindDeployment:  "spec.template",
	KindReplicaSet:  "spec.template",
	KindStatefulSet: "spec.template",
	KindDaemonSet:   "spec.template",
	KindJob:         "spec.template",
	KindRollout:     "spec.template",
	KindCronJob:     "spec.jobTemplate.spec.template",
	KindPodTemplate: "template",
}

// cronJobSuffix matches the CronJob controller's job names: NAME-<scheduled
// time in minutes since the epoch>.
var cronJobSuffix = regexp.MustCompile(`^(.+)-([0-9]{8,10})$`)

// Scheduled times a CronJob job name may carry, in minutes since the epoch
// (2015-01-01 .. 2100-01-01), so that a Job named "migrate-20240101" is not
// taken for one.
const minCronMinutes, maxCronMinutes = 23_667_840, 68_185_440

// inferOwner names the owner above a missing object r (the object itself
// when nothing better can be said) and says why.
func (b *builder) inferOwner(ns string, r *metav1.OwnerReference, labels map[string]string) (Ref, string) {
	missing := Ref{Kind: r.Kind, Namespace: ns, Name: r.Name}
	switch r.Kind {
	case KindReplicaSet:
		for _, l := range []struct{ label, kind string }{
			{"rollouts-pod-template-hash", KindRollout},
			{appsv1.DefaultDeploymentUniqueLabelKey, KindDeployment},
		} {
			hash := labels[l.label]
			if name, ok := strings.CutSuffix(r.Name, "-"+hash); ok && hash != "" && name != "" {
				return Ref{Kind: l.kind, Namespace: ns, Name: name},
					fmt.Sprintf("ReplicaSet %s is not in the source; %s %s inferred from its name and the %s label", r.Name, l.kind, name, l.label)
			}
		}
	case KindJob:
		if m := cronJobSuffix.FindStringSubmatch(r.Name); m != nil {
			if min, err := strconv.ParseInt(m[2], 10, 64); err == nil && min >= minCronMinutes && min <= maxCronMinutes {
				return Ref{Kind: KindCronJob, Namespace: ns, Name: m[1]},
					fmt.Sprintf("Job %s is not in the source; CronJob %s inferred from the job name's schedule suffix", r.Name, m[1])
			}
		}
	}
	return missing, fmt.Sprintf("%s %s is not in the source", r.Kind, r.Name)
}

// podOwner returns the pod's top workload and a note when it was inferred.
func (b *builder) podOwner(p *corev1.Pod) (*Workload, string) {
	r := controllerRef(p.OwnerReferences)
	if r == nil || r.Kind == "Node" { // bare pod, or a static pod's mirror
		return b.podWorkload(p, ""), ""
	}
	if o := b.lookup(p.Namespace, r); o != nil {
		return b.topOf(o), ""
	}
	ref, why := b.inferOwner(p.Namespace, r, p.Labels)
	if o := b.byRef[ref]; o != nil {
		w := b.topOf(o)
		w.Intermediates = appendRef(w.Intermediates, Ref{Kind: r.Kind, Namespace: p.Namespace, Name: r.Name})
		return w, why + "; " + ref.Kind + " " + ref.Name + " is in the source"
	}
	tmpl := podTemplate(p)
	w := b.inferred(ref, why, &tmpl)
	if ref.Kind != r.Kind {
		w.Intermediates = appendRef(w.Intermediates, Ref{Kind: r.Kind, Namespace: p.Namespace, Name: r.Name})
	}
	return w, why
}

func appendRef(refs []Ref, r Ref) []Ref {
	for _, x := range refs {
		if x == r {
			return refs
		}
	}
	return append(refs, r)
}

// podWorkload makes a bare pod its own workload.
func (b *builder) podWorkload(p *corev1.Pod, why string) *Workload {
	ref := Ref{Kind: KindPod, Namespace: p.Namespace, Name: p.Name}
	w := &Workload{Ref: ref, APIVersion: "v1", UID: p.UID, Template: podTemplate(p), Inferred: why}
	if m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p); err == nil {
		w.Original = &unstructured.Unstructured{Object: m}
		w.Original.SetAPIVersion("v1")
		w.Original.SetKind(KindPod)
	}
	b.workloads[ref] = w
	return w
}

// podTemplate returns a pod's metadata and spec as a template, without what
// the scheduler set.
func podTemplate(p *corev1.Pod) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{Spec: *p.Spec.DeepCopy()}
	t.Labels = p.Labels
	t.Annotations = p.Annotations
	t.Spec.NodeName = ""
	t.Spec.EphemeralContainers = nil
	return t
}

// containers lists a workload's containers from its template, then those
// seen only in its pods (admission-injected sidecars, ephemeral containers).
func containers(w *Workload) []Container {
	var out []Container
	seen := map[string]bool{}
	add := func(name, image string, role Role, injected bool) {
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, Container{Name: name, Role: role, Image: image, Injected: injected})
	}
	spec := w.Template.Spec
	for _, c := range spec.InitContainers {
		add(c.Name, c.Image, initRole(c), false)
	}
	for _, c := range spec.Containers {
		add(c.Name, c.Image, RoleMain, false)
	}
	for _, p := range w.Pods {
		for _, c := range p.Spec.InitContainers {
			add(c.Name, c.Image, initRole(c), true)
		}
		for _, c := range p.Spec.Containers {
			add(c.Name, c.Image, RoleMain, true)
		}
	}
	for _, p := range w.Pods {
		for _, c := range p.Spec.EphemeralContainers {
			add(c.Name, c.Image, RoleEphemeral, true)
		}
	}
	return out
}

// attachEvents gives each pod and workload its events: by involvedObject
// UID, else (no UID, or one the snapshot does not hold) by kind, namespace
// and name.
func (b *builder) attachEvents(s *Snapshot) {
	if len(s.Events) == 0 {
		return // the indexes below cost 3 µs a pod
	}
	podsByUID := map[types.UID]*Pod{}
	podsByName := map[Ref]*Pod{}
	for _, p := range s.Pods {
		if p.UID != "" {
			podsByUID[p.UID] = p
		}
		podsByName[p.Ref()] = p
	}
	// Events about an owner or an intermediate go to the top workload.
	wByUID := map[types.UID]*Workload{}
	wByName := map[Ref]*Workload{}
	for _, w := range s.Workloads {
		if w.Kind != KindPod {
			wByName[w.Ref] = w
			if w.UID != "" {
				wByUID[w.UID] = w
			}
		}
		for _, r := range w.Intermediates {
			wByName[r] = w
			if o := b.byRef[r]; o != nil && o.meta.UID != "" {
				wByUID[o.meta.UID] = w
			}
		}
	}
	sort.SliceStable(s.Events, func(i, j int) bool { return eventTime(s.Events[i]).Time.Before(eventTime(s.Events[j]).Time) })
	for _, e := range s.Events {
		io := e.InvolvedObject
		ns := io.Namespace
		if ns == "" {
			ns = e.Namespace
		}
		ref := Ref{Kind: io.Kind, Namespace: ns, Name: io.Name}
		if io.Kind == KindPod {
			p := podsByUID[io.UID]
			if p == nil {
				p = podsByName[ref]
			}
			if p != nil {
				p.Events = append(p.Events, e)
			}
			continue
		}
		w := wByUID[io.UID]
		if w == nil {
			w = wByName[ref]
		}
		if w != nil {
			w.Events = append(w.Events, e)
		}
	}
}

// eventTime is when an event last happened, whichever field says it.
func eventTime(e *corev1.Event) metav1.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return metav1.Time{Time: e.Series.LastObservedTime.Time}
	case !e.EventTime.IsZero():
		return metav1.Time{Time: e.EventTime.Time}
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp
	}
	return e.CreationTimestamp
}

// attachLogs gives each pod its logs by namespace, pod and container name.
func attachLogs(s *Snapshot) {
	if len(s.Logs) == 0 {
		return
	}
	pods := map[Ref]*Pod{}
	for _, p := range s.Pods {
		pods[p.Ref()] = p
	}
	for _, l := range s.Logs {
		p := pods[Ref{Kind: KindPod, Namespace: l.Namespace, Name: l.Pod}]
		if p == nil {
			continue
		}
		if p.Logs == nil {
			p.Logs = map[string]*ContainerLogs{}
		}
		cl := p.Logs[l.Container]
		if cl == nil {
			cl = &ContainerLogs{}
			p.Logs[l.Container] = cl
		}
		if l.Previous {
			cl.Previous = l
		} else {
			cl.Current = l
		}
	}
}
