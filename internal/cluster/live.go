package cluster

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"
)

// LogPolicy says which container logs a live load reads.
type LogPolicy int

const (
	// LogsWhenNeeded reads the log of a container only when it crashed and
	// its status carries no termination message: the previous log of a
	// restarted container, the current log of one that terminated and was
	// not restarted.
	LogsWhenNeeded LogPolicy = iota
	// LogsNone reads no logs.
	LogsNone
)

// LiveOptions narrows and tunes a live load. The zero value loads the
// kubeconfig's namespace, with the defaults below.
type LiveOptions struct {
	// AllNamespaces is kubectl's -A.
	AllNamespaces bool
	// Target, if set, loads only what that workload or pod needs.
	Target *Target
	Logs   LogPolicy
	// LogLimitBytes caps each log read (default DefaultLogLimitBytes).
	LogLimitBytes int64
	// LogTailLines is where a log read starts from the end (default 200): the
	// API reads LogLimitBytes forward from there, so this keeps the tail.
	LogTailLines int64
	// LogConcurrency bounds parallel log reads (default 8).
	LogConcurrency int
	// PageSize is the list page size (default 500).
	PageSize int64
	// Events says which events are listed (default all).
	Events EventPolicy
}

// EventPolicy says which events a live load lists. On a busy cluster
// events outnumber pods (5,000 pods in the live benchmark: 9,000 events,
// 18 of audit's 38 list requests).
type EventPolicy int

const (
	// EventsAll lists every event.
	EventsAll EventPolicy = iota
	// EventsNone lists none: audit and plan judge specs and nodes.
	EventsNone
	// EventsDiagnosis lists what diagnose reads: Warning events (Failed,
	// BackOff of a crash loop, FailedScheduling, InspectFailed...) and the
	// kubelet's Normal BackOff of an image pull, in two field-selected lists.
	// Normal events of healthy pods (Scheduled, Pulling, Pulled, Created,
	// Started), most of a cluster's events, are not read.
	EventsDiagnosis
)

func (o *LiveOptions) defaults() {
	if o.LogLimitBytes <= 0 {
		o.LogLimitBytes = DefaultLogLimitBytes
	}
	if o.LogTailLines <= 0 {
		o.LogTailLines = 200
	}
	if o.LogConcurrency <= 0 {
		o.LogConcurrency = 8
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
}

// LoadLive reads the cluster that kubectl's flags (--kubeconfig, --context,
// -n ...) point at.
func LoadLive(ctx context.Context, flags *genericclioptions.ConfigFlags, opts LiveOptions) (*Snapshot, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns := ""
	if !opts.AllNamespaces {
		ns, _, err = flags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, fmt.Errorf("reading namespace: %w", err)
		}
	}
	return LoadConfig(ctx, cfg, ns, opts)
}

// LoadConfig reads the cluster of cfg, in namespace ns ("" for all). Every
// list is paginated; APIRequests in the result counts the HTTP requests.
func LoadConfig(ctx context.Context, cfg *rest.Config, ns string, opts LiveOptions) (*Snapshot, error) {
	opts.defaults()
	if opts.AllNamespaces {
		ns = ""
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 { // client-go's default of 5/s would make log reads crawl
		cfg.QPS, cfg.Burst = 50, 100
	}
	var requests atomic.Int64
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &counter{rt: rt, n: &requests} })
	cs, err := kubernetes.NewForConfig(cfg) // protobuf for built-in kinds (client-go's default)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	l := &liveLoader{cs: cs, dyn: dyn, ns: ns, opts: opts}
	in, err := l.collect(ctx)
	if err != nil {
		return nil, err
	}
	s := build(in)
	if opts.Target != nil {
		if s, err = s.Select(ns, opts.Target); err != nil {
			return nil, err
		}
	}
	if opts.Logs == LogsWhenNeeded {
		l.readLogs(ctx, s)
	}
	s.Warnings = append(s.Warnings, l.warnings...)
	s.APIRequests = requests.Load()
	return s, nil
}

// counter counts the requests a client makes.
type counter struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

type liveLoader struct {
	cs   kubernetes.Interface
	dyn  dynamic.Interface
	ns   string
	opts LiveOptions

	mu       sync.Mutex
	in       input
	warnings []string
	// discovered caches the resources of each group version read while
	// attributing owners.
	discovered map[string][]metav1.APIResource
}

func (l *liveLoader) warn(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warnings = append(l.warnings, fmt.Sprintf(format, args...))
}

func (l *liveLoader) addObject(o *object) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.in.objects = append(l.in.objects, o)
}

// listFunc is one page of a typed List call.
type listFunc func(context.Context, metav1.ListOptions) (runtime.Object, error)

// each lists with pagination and calls fn for every item.
func (l *liveLoader) each(ctx context.Context, what string, list listFunc, lo metav1.ListOptions, fn func(runtime.Object) error) error {
	p := pager.New(pager.SimplePageFunc(func(o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }))
	p.PageSize = l.opts.PageSize
	if err := p.EachListItem(ctx, lo, fn); err != nil {
		return fmt.Errorf("listing %s: %w", what, err)
	}
	return nil
}

// optional turns a forbidden or missing resource into a warning: archfit
// still works without, say, DaemonSets it may not list.
func (l *liveLoader) optional(err error) error {
	if err != nil && (apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)) {
		l.warn("%v", err)
		return nil
	}
	return err
}

// plan says what to list for the target: a field selector on the target's
// own kind, a label selector for pods and the objects between, and which
// owner kinds to list at all.
type plan struct {
	kinds     map[string]bool // owner kinds to list
	named     string          // kind listed by name only
	namedObj  *object         // the target, already read for its selector
	noPods    bool
	podSel    metav1.ListOptions
	midSel    metav1.ListOptions // ReplicaSets of a Deployment/Rollout
	eventsSel metav1.ListOptions
	custom    *Target // a custom resource, read by name
}

var allKinds = []string{KindDeployment, KindReplicaSet, KindStatefulSet, KindDaemonSet, KindJob, KindCronJob, KindPodTemplate, KindRollout}

func (l *liveLoader) plan(ctx context.Context) (plan, error) {
	p := plan{kinds: map[string]bool{}}
	t := l.opts.Target
	if t == nil {
		for _, k := range allKinds {
			p.kinds[k] = true
		}
		return p, nil
	}
	switch t.Kind {
	case KindPod:
		for _, k := range allKinds {
			p.kinds[k] = true
		}
		p.podSel.FieldSelector = fields.OneTermEqualSelector("metadata.name", t.Name).String()
		p.eventsSel.FieldSelector = fields.OneTermEqualSelector("involvedObject.name", t.Name).String()
		return p, nil
	case KindPodTemplate:
		p.kinds[KindPodTemplate] = true
		p.named = KindPodTemplate
		p.noPods = true
		return p, nil
	}
	if t.Group != "" {
		// A custom resource: everything is listed (its pods are found by
		// owner), and the resource itself is read by name.
		for _, k := range allKinds {
			p.kinds[k] = true
		}
		p.custom = t
		return p, nil
	}
	p.kinds[t.Kind] = true
	p.named = t.Kind
	switch t.Kind {
	case KindDeployment:
		p.kinds[KindReplicaSet] = true
	case KindRollout: // and the Deployment a workloadRef may name
		p.kinds[KindReplicaSet], p.kinds[KindDeployment] = true, true
	case KindReplicaSet:
		p.kinds[KindDeployment], p.kinds[KindRollout] = true, true
	case KindJob:
		p.kinds[KindCronJob] = true
	case KindCronJob:
		p.kinds[KindJob] = true
	}
	// The target's selector narrows its pods (and ReplicaSets). A CronJob
	// has none: its pods are those of its Jobs, found by owner.
	sel, obj, err := l.targetSelector(ctx, *t)
	if err != nil {
		return p, err
	}
	p.namedObj = obj
	if sel != "" {
		p.podSel.LabelSelector = sel
		if t.Kind == KindDeployment || t.Kind == KindRollout {
			p.midSel.LabelSelector = sel
		}
	}
	return p, nil
}

// targetSelector reads the target and returns its spec.selector as a label
// selector ("" for a CronJob, which has none; its pods are found by owner).
func (l *liveLoader) targetSelector(ctx context.Context, t Target) (string, *object, error) {
	if t.Kind == KindCronJob {
		return "", nil, nil
	}
	lo := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", t.Name).String()}
	var found *object
	if err := l.listKind(ctx, t.Kind, lo, func(o *object) { found = o }); err != nil {
		return "", nil, err
	}
	if found == nil {
		return "", nil, fmt.Errorf("%w: %s in %s", ErrNotFound, t, nsName(l.ns))
	}
	u := found.original()
	if u == nil {
		return "", nil, fmt.Errorf("reading the selector of %s: cannot convert the object", t)
	}
	m, ok, _ := unstructured.NestedMap(u.Object, "spec", "selector")
	if !ok {
		return "", found, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &ls); err != nil {
		return "", nil, fmt.Errorf("reading the selector of %s: %w", t, err)
	}
	s, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return "", nil, fmt.Errorf("reading the selector of %s: %w", t, err)
	}
	return s.String(), found, nil
}

func nsName(ns string) string {
	if ns == "" {
		return "any namespace"
	}
	return "namespace " + ns
}

var rolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// hasRollouts asks discovery whether Argo Rollouts is installed.
func (l *liveLoader) hasRollouts() bool {
	res, err := l.cs.Discovery().ServerResourcesForGroupVersion(rolloutGVR.GroupVersion().String())
	if err != nil {
		if !apierrors.IsNotFound(err) {
			l.warn("discovering Argo Rollouts: %v", err)
		}
		return false
	}
	for _, r := range res.APIResources {
		if r.Name == rolloutGVR.Resource {
			return true
		}
	}
	return false
}

// listKind lists one workload kind, calling fn with each object.
func (l *liveLoader) listKind(ctx context.Context, kind string, lo metav1.ListOptions, fn func(*object)) error {
	ns := l.ns
	typed := func(list listFunc) error {
		return l.each(ctx, strings.ToLower(kind)+"s", list, lo, func(obj runtime.Object) error {
			stripManaged(obj)
			o, err := newObject(obj, nil)
			if err != nil {
				return err
			}
			fn(o)
			return nil
		})
	}
	switch kind {
	case KindDeployment:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.AppsV1().Deployments(ns).List(ctx, o)
		})
	case KindReplicaSet:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.AppsV1().ReplicaSets(ns).List(ctx, o)
		})
	case KindStatefulSet:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.AppsV1().StatefulSets(ns).List(ctx, o)
		})
	case KindDaemonSet:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.AppsV1().DaemonSets(ns).List(ctx, o)
		})
	case KindJob:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.BatchV1().Jobs(ns).List(ctx, o)
		})
	case KindCronJob:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.BatchV1().CronJobs(ns).List(ctx, o)
		})
	case KindPodTemplate:
		return typed(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.CoreV1().PodTemplates(ns).List(ctx, o)
		})
	case KindRollout:
		if !l.hasRollouts() {
			return nil
		}
		list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.dyn.Resource(rolloutGVR).Namespace(ns).List(ctx, o)
		}
		return l.each(ctx, "rollouts", list, lo, func(obj runtime.Object) error {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return fmt.Errorf("listing rollouts: got %T", obj)
			}
			unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
			o, err := newRollout(u)
			if err != nil {
				return err
			}
			fn(o)
			return nil
		})
	}
	return fmt.Errorf("listing %s: not a workload kind", kind)
}

// podSharer makes the pods of one owner (ReplicaSet, Job, StatefulSet)
// share their container lists and labels when they are equal, as the
// pods read from files do (decodePod): every pod is held until the report
// is written, and a page's own copies are then dropped with the page.
// Nothing in archfit writes to a pod's containers or labels. Such pods
// keep no volumes, no volume mounts and no True conditions
// (slimWorkloadPod).
type podSharer map[types.UID]*corev1.Pod

func (s podSharer) share(p *corev1.Pod) {
	r := controllerRef(p.OwnerReferences)
	if r == nil {
		return
	}
	slimWorkloadPod(p)
	if r.UID == "" {
		return
	}
	if prev := s[r.UID]; prev != nil {
		if len(p.Spec.Containers) > 0 && equality.Semantic.DeepEqual(p.Spec.Containers, prev.Spec.Containers) {
			p.Spec.Containers = prev.Spec.Containers
		}
		if len(p.Spec.InitContainers) > 0 && equality.Semantic.DeepEqual(p.Spec.InitContainers, prev.Spec.InitContainers) {
			p.Spec.InitContainers = prev.Spec.InitContainers
		}
		if len(p.Labels) > 0 && maps.Equal(p.Labels, prev.Labels) {
			p.Labels = prev.Labels
		}
	} else {
		// Capacity capped, so an append to one pod's list copies.
		p.Spec.Containers, p.Spec.InitContainers = slices.Clip(p.Spec.Containers), slices.Clip(p.Spec.InitContainers)
	}
	s[r.UID] = p
}

// stripManaged drops managedFields: large, and of no use to archfit.
func stripManaged(obj runtime.Object) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
}

// collect lists everything the plan needs, concurrently, each paginated.
func (l *liveLoader) collect(ctx context.Context) (*input, error) {
	p, err := l.plan(ctx)
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.CoreV1().Nodes().List(ctx, o)
		}
		var nodes []*corev1.Node
		err := l.each(gctx, "nodes", list, metav1.ListOptions{}, func(obj runtime.Object) error {
			n := obj.(*corev1.Node)
			n.ManagedFields = nil
			n.Status.Images = nil // the biggest part of a node, unused
			nodes = append(nodes, n)
			return nil
		})
		l.mu.Lock()
		l.in.nodes = nodes
		l.mu.Unlock()
		return l.optional(err)
	})
	g.Go(func() error {
		if p.noPods {
			return nil
		}
		list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.CoreV1().Pods(l.ns).List(ctx, o)
		}
		var pods []*corev1.Pod
		share := podSharer{}
		err := l.each(gctx, "pods", list, p.podSel, func(obj runtime.Object) error {
			pod := obj.(*corev1.Pod)
			pod.ManagedFields = nil
			share.share(pod)
			pods = append(pods, pod)
			return nil
		})
		l.mu.Lock()
		l.in.pods = pods
		l.mu.Unlock()
		return err // without pods there is nothing to diagnose
	})
	g.Go(func() error {
		if l.opts.Events == EventsNone {
			return nil
		}
		list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.cs.CoreV1().Events(l.ns).List(ctx, o)
		}
		sels := []metav1.ListOptions{p.eventsSel}
		if l.opts.Events == EventsDiagnosis {
			sels = nil
			for _, f := range []string{"type=Warning", "type=Normal,reason=BackOff"} {
				sel := p.eventsSel
				if sel.FieldSelector != "" {
					f = sel.FieldSelector + "," + f
				}
				sel.FieldSelector = f
				sels = append(sels, sel)
			}
		}
		var events []*corev1.Event
		var err error
		for _, sel := range sels {
			if err = l.each(gctx, "events", list, sel, func(obj runtime.Object) error {
				e := obj.(*corev1.Event)
				e.ManagedFields = nil
				events = append(events, e)
				return nil
			}); err != nil {
				break
			}
		}
		if len(sels) > 1 { // in the API server's order, as one list gives them
			sort.SliceStable(events, func(i, j int) bool {
				a, b := events[i], events[j]
				return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
			})
		}
		l.mu.Lock()
		l.in.events = events
		l.mu.Unlock()
		return l.optional(err)
	})
	for _, kind := range allKinds {
		if !p.kinds[kind] {
			continue
		}
		if kind == p.named && p.namedObj != nil {
			l.addObject(p.namedObj)
			continue
		}
		var lo metav1.ListOptions
		switch {
		case kind == p.named:
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", l.opts.Target.Name).String()
		case kind == KindReplicaSet:
			lo = p.midSel
		}
		g.Go(func() error {
			return l.optional(l.listKind(gctx, kind, lo, l.addObject))
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := l.attributeOwners(ctx, p); err != nil {
		return nil, err
	}
	// Goroutines appended objects in any order: sort for stable output.
	sort.Slice(l.in.objects, func(i, j int) bool { return lessRef(l.in.objects[i].ref, l.in.objects[j].ref) })
	return &l.in, nil
}

// logRequest is one log to read, and the pods whose same container ended
// the same way (same workload, image, node architecture, exit code), which
// are given that log instead of a read of their own.
type logRequest struct {
	pod       *Pod
	container string
	previous  bool
	siblings  []*Pod
}

// logsNeeded lists the logs worth reading: for every container whose
// instance ended with a non-zero exit and no termination message, the log
// of that instance (of the previous one when both did). Healthy containers and crashes that explain themselves
// (terminationMessagePolicy FallbackToLogsOnError) cost no request.
//
// Pods of one workload whose container ran the same image on nodes of the
// same architecture and ended with the same exit code crashed the same
// way: one log is read for all of them (500 crash-looping replicas cost one
// read, not 500), and the others' evidence names the pod it came from. A
// pod without a workload, or with an unknown node architecture, is read on
// its own.
func logsNeeded(pods []*Pod) []logRequest {
	var out []logRequest
	group := map[string]int{} // key -> index in out
	add := func(p *Pod, c ContainerStatus, t *corev1.ContainerStateTerminated, previous bool) {
		key := ""
		if p.Workload != nil && p.Node != nil && p.Node.Arch() != "" {
			image := c.ImageID
			if image == "" {
				image = c.Image
			}
			key = fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d\x00%t", p.Workload.Ref.String(), c.Name, image, p.Node.Arch(), t.ExitCode, previous)
			if i, ok := group[key]; ok {
				out[i].siblings = append(out[i].siblings, p)
				return
			}
			group[key] = len(out)
		}
		out = append(out, logRequest{pod: p, container: c.Name, previous: previous})
	}
	for _, p := range pods {
		for _, c := range p.Containers() {
			// A crash-looping container caught between its crash and the
			// back-off is Terminated with a previous instance too: diagnose
			// reads the previous log then (Pod.PreviousLog first), so the
			// current one is read only when no previous one is.
			if t := c.LastTerminated; t != nil && c.RestartCount > 0 && t.ExitCode != 0 && strings.TrimSpace(t.Message) == "" {
				add(p, c, t, true)
			} else if t := c.Terminated; t != nil && t.ExitCode != 0 && strings.TrimSpace(t.Message) == "" {
				add(p, c, t, false)
			}
		}
	}
	return out
}

// readLogs reads the needed logs, at most LogConcurrency at a time. A log
// that cannot be read (gone with its node, forbidden) is a warning.
func (l *liveLoader) readLogs(ctx context.Context, s *Snapshot) {
	reqs := logsNeeded(s.Pods)
	logs := make([]*Log, len(reqs))
	var g errgroup.Group
	g.SetLimit(l.opts.LogConcurrency)
	for i, r := range reqs {
		g.Go(func() error {
			opts := &corev1.PodLogOptions{
				Container:  r.container,
				Previous:   r.previous,
				LimitBytes: &l.opts.LogLimitBytes,
				TailLines:  &l.opts.LogTailLines,
			}
			rc, err := l.cs.CoreV1().Pods(r.pod.Namespace).GetLogs(r.pod.Name, opts).Stream(ctx)
			if err != nil {
				l.warn("reading log of %s/%s container %s: %v", r.pod.Namespace, r.pod.Name, r.container, err)
				return nil
			}
			defer rc.Close()
			b, err := io.ReadAll(io.LimitReader(rc, l.opts.LogLimitBytes))
			if err != nil {
				l.warn("reading log of %s/%s container %s: %v", r.pod.Namespace, r.pod.Name, r.container, err)
				return nil
			}
			logs[i] = &Log{
				Namespace: r.pod.Namespace, Pod: r.pod.Name, Container: r.container, Previous: r.previous,
				Text: string(b), Truncated: int64(len(b)) >= l.opts.LogLimitBytes,
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, lg := range logs {
		if lg == nil {
			continue
		}
		s.Logs = append(s.Logs, lg)
		for _, sib := range reqs[i].siblings {
			shared := *lg
			shared.Pod, shared.ReadFrom = sib.Name, lg.Pod
			s.Logs = append(s.Logs, &shared)
		}
	}
	attachLogs(s)
}

// Owner attribution bounds: how far up an owner chain custom resources
// are read, and how many are read in all.
const (
	maxOwnerDepth   = 4
	maxOwnerFetches = 512
)

// ownerKey is a custom resource an object or pod names as its controller.
type ownerKey struct {
	apiVersion, kind, namespace, name string
}

// attributeOwners reads the custom resources that control what was listed
// (a StatefulSet of a Prometheus, the pods of a CloudNativePG Cluster or an
// Argo Workflow), so that pods are attributed to the object the user
// edits. Each is read by name through discovery and the dynamic client,
// up the chain to maxOwnerDepth; one that cannot be read is a warning, and
// the object below it stays the workload (with ManagedBy).
func (l *liveLoader) attributeOwners(ctx context.Context, p plan) error {
	have := map[Ref]bool{}
	for _, o := range l.in.objects {
		have[o.ref] = true
	}
	if t := p.custom; t != nil && !t.Loose {
		k := LookupOperatorKind(t.Group, t.Kind)
		if o, err := l.readCustom(ctx, ownerKey{kind: k.Kind, namespace: l.ns, name: t.Name}, t.Group); err != nil {
			l.warn("reading %s: %v", t, err)
		} else if o != nil {
			l.in.objects = append(l.in.objects, o)
			have[o.ref] = true
		}
	}
	fetched := 0
	for depth := 0; depth < maxOwnerDepth; depth++ {
		pending := map[ownerKey]bool{}
		var order []ownerKey
		consider := func(ns string, refs []metav1.OwnerReference) {
			r := controllerRef(refs)
			if r == nil {
				return
			}
			group, _, ok := strings.Cut(r.APIVersion, "/")
			if !ok || !strings.Contains(group, ".") || strings.HasSuffix(group, ".k8s.io") || group == rolloutGVR.Group && r.Kind == KindRollout {
				return // built in, or listed already
			}
			k := ownerKey{r.APIVersion, r.Kind, ns, r.Name}
			if have[Ref{Kind: r.Kind, Namespace: ns, Name: r.Name}] || pending[k] {
				return
			}
			pending[k] = true
			order = append(order, k)
		}
		for _, o := range l.in.objects {
			consider(o.ref.Namespace, o.meta.OwnerReferences)
		}
		for _, pod := range l.in.pods {
			consider(pod.Namespace, pod.OwnerReferences)
		}
		if len(order) == 0 {
			return nil
		}
		for _, k := range order {
			if fetched >= maxOwnerFetches {
				l.warn("more than %d custom resources own workloads: the rest are not read, their workloads are shown as they are", maxOwnerFetches)
				return nil
			}
			fetched++
			o, err := l.readCustom(ctx, k, "")
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				l.warn("reading the owner %s %s/%s: %v", k.kind, k.namespace, k.name, err)
			}
			have[Ref{Kind: k.kind, Namespace: k.namespace, Name: k.name}] = true
			if o != nil {
				l.in.objects = append(l.in.objects, o)
			}
		}
	}
	return nil
}

// readCustom reads one custom resource by kind and name: its apiVersion
// (or, without one, the group's preferred version) is mapped to a resource
// through discovery. It returns nil, nil for a resource that names no
// image and is no kind archfit knows: what it owns stays the workload.
func (l *liveLoader) readCustom(ctx context.Context, k ownerKey, group string) (*object, error) {
	gvr, namespaced, err := l.resourceFor(k.apiVersion, group, k.kind)
	if err != nil {
		return nil, err
	}
	ri := l.dyn.Resource(gvr)
	var u *unstructured.Unstructured
	if namespaced {
		u, err = ri.Namespace(k.namespace).Get(ctx, k.name, metav1.GetOptions{})
	} else {
		u, err = ri.Get(ctx, k.name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	return newCustom(u)
}

// resourceFor maps a kind to its resource by discovery of its group
// version, caching each group version's answer.
func (l *liveLoader) resourceFor(apiVersion, group, kind string) (schema.GroupVersionResource, bool, error) {
	if apiVersion == "" {
		groups, err := l.cs.Discovery().ServerGroups()
		if err != nil {
			return schema.GroupVersionResource{}, false, err
		}
		for _, g := range groups.Groups {
			if g.Name == group {
				apiVersion = g.PreferredVersion.GroupVersion
			}
		}
		if apiVersion == "" {
			return schema.GroupVersionResource{}, false, fmt.Errorf("the API group %s is not served", group)
		}
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	l.mu.Lock()
	list, ok := l.discovered[apiVersion]
	l.mu.Unlock()
	if !ok {
		res, err := l.cs.Discovery().ServerResourcesForGroupVersion(apiVersion)
		if err != nil {
			return schema.GroupVersionResource{}, false, err
		}
		list = res.APIResources
		l.mu.Lock()
		if l.discovered == nil {
			l.discovered = map[string][]metav1.APIResource{}
		}
		l.discovered[apiVersion] = list
		l.mu.Unlock()
	}
	for _, r := range list {
		if r.Kind == kind && !strings.Contains(r.Name, "/") {
			return gv.WithResource(r.Name), r.Namespaced, nil
		}
	}
	return schema.GroupVersionResource{}, false, fmt.Errorf("%s serves no %s", apiVersion, kind)
}
