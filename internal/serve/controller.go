package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/workqueue"

	"github.com/archfit/archfit/internal/apply"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/diagnose"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/remedy"
)

// controller is the leader's part: it reads the images of gated pods and
// ungates them, reports observe-mode decisions, patches or reports
// DaemonSets, and explains pods that crash on the wrong architecture.
type controller struct {
	s       *Server
	queue   workqueue.TypedRateLimitingInterface[string]
	applier *apply.Applier
	dsIdx   cache.Indexer

	mu       sync.Mutex
	reported map[types.UID]bool   // observe mode: pods already reported
	crashes  map[string]bool      // pod UID + container + reason already explained
	dsDone   map[types.UID]string // DaemonSet UID -> generation and verdict handled
}

// Work item prefixes.
const (
	itemPod   = "pod/"
	itemCrash = "crash/"
	itemDS    = "ds/"
)

// maxSeen bounds the controller's memory of what it reported.
const maxSeen = 20000

var errNotYet = errors.New("images not read yet")

func (s *Server) runController(ctx context.Context, pods, dss cache.SharedIndexInformer) {
	c := &controller{s: s, dsIdx: dss.GetIndexer(), reported: map[types.UID]bool{}, crashes: map[string]bool{}, dsDone: map[types.UID]string{}}
	if dc, err := dynamic.NewForConfig(s.cfg.REST); err == nil {
		if disc, err := discovery.NewDiscoveryClientForConfig(s.cfg.REST); err == nil {
			c.applier = &apply.Applier{Client: dc, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}
		}
	}
	go every(ctx, 5*time.Second, func() { c.countGated() })
	if !s.cfg.LeaderElect {
		c.lead(ctx, pods, dss)
		return
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: s.cfg.Namespace},
		Client:     s.cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: s.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			ReleaseOnCancel: true, Name: LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					s.cfg.Log.Info("leading the controller", "identity", s.cfg.Identity)
					c.lead(ctx, pods, dss)
				},
				OnStoppedLeading: func() { s.cfg.Log.Info("no longer leading", "identity", s.cfg.Identity) },
			},
		})
		if err != nil {
			s.cfg.Log.Error("leader election", "error", err)
			return
		}
		le.Run(ctx)
	}
}

// lead runs the controller until ctx ends (or leadership is lost).
func (c *controller) lead(ctx context.Context, pods, dss cache.SharedIndexInformer) {
	c.s.leader.Store(true)
	defer c.s.leader.Store(false)
	c.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, 30*time.Second)))
	defer c.queue.ShutDown()
	podReg, _ := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.onPod(o) },
		UpdateFunc: func(_, o any) { c.onPod(o) },
	})
	defer func() { _ = pods.RemoveEventHandler(podReg) }()
	dsReg, _ := dss.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueue(itemDS, o) },
		UpdateFunc: func(_, o any) { c.enqueue(itemDS, o) },
		DeleteFunc: func(o any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
				c.queue.Add(itemDS + key)
			}
		},
	})
	defer func() { _ = dss.RemoveEventHandler(dsReg) }()
	var wg sync.WaitGroup
	for range c.s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

func (c *controller) enqueue(prefix string, o any) {
	if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
		c.queue.Add(prefix + key)
	}
}

func (c *controller) onPod(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok || p.DeletionTimestamp != nil {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(p)
	if err != nil {
		return
	}
	if hasGate(p) {
		c.queue.Add(itemPod + key)
		// Whatever happens, the deadline gets the pod out.
		c.queue.AddAfter(itemPod+key, time.Until(p.CreationTimestamp.Add(c.s.cfg.GateDeadline))+time.Second)
	} else if c.s.cfg.Mode == ModeObserve && p.Spec.NodeName == "" && time.Since(p.CreationTimestamp.Time) < 10*time.Minute && c.s.outOfScope(p) == "" {
		c.mu.Lock()
		seen := c.reported[p.UID]
		c.mu.Unlock()
		if !seen {
			c.queue.Add(itemPod + key)
		}
	}
	if sig := crashSignature(p); sig != "" && c.s.excluded(p) == "" {
		c.mu.Lock()
		if !c.crashes[sig] {
			if len(c.crashes) > maxSeen {
				clear(c.crashes)
			}
			c.crashes[sig] = true
			c.queue.Add(itemCrash + key)
		}
		c.mu.Unlock()
	}
}

func (c *controller) next(ctx context.Context) bool {
	item, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(item)
	err := c.sync(ctx, item)
	if err == nil {
		c.queue.Forget(item)
		return true
	}
	if c.queue.NumRequeues(item) < c.s.cfg.Retries || errors.Is(err, errNotYet) {
		if !errors.Is(err, errNotYet) {
			c.s.cfg.Log.Info("retrying", "item", item, "error", err)
		}
		c.queue.AddRateLimited(item)
		return true
	}
	c.s.cfg.Log.Warn("giving up", "item", item, "error", err)
	c.queue.Forget(item)
	return true
}

// sync handles one queue item. A panic while judging one object (its spec
// is anyone's input) is that item's error, never the controller's end; a
// gated pod whose judgement panics is ungated, unchanged (fail open).
func (c *controller) sync(ctx context.Context, item string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error judging %s: %v", item, r)
			c.s.cfg.Log.Error("panic", "item", item, "panic", r, "stack", string(debug.Stack()))
			if key, ok := strings.CutPrefix(item, itemPod); ok && c.s.cfg.Mode == ModeEnforce {
				if p := c.pod(key); p != nil && hasGate(p) {
					_ = patchPod(ctx, c.s.cs, p, ungateOps(p))
				}
			}
		}
	}()
	switch {
	case strings.HasPrefix(item, itemPod):
		return c.syncPod(ctx, item, strings.TrimPrefix(item, itemPod))
	case strings.HasPrefix(item, itemCrash):
		return c.syncCrash(ctx, strings.TrimPrefix(item, itemCrash))
	case strings.HasPrefix(item, itemDS):
		return c.syncDaemonSet(ctx, item, strings.TrimPrefix(item, itemDS))
	}
	return nil
}

func (c *controller) pod(key string) *corev1.Pod {
	o, ok, err := c.s.podLister.GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	p, _ := o.(*corev1.Pod)
	return p
}

// syncPod finishes a gated pod (enforce) or reports one (observe): it reads
// the images admission did not know, decides, patches and ungates. After
// Retries failed reads, or at the deadline, the pod is ungated anyway.
func (c *controller) syncPod(ctx context.Context, item, key string) error {
	p := c.pod(key)
	if p == nil || p.DeletionTimestamp != nil {
		return nil
	}
	gated := hasGate(p)
	if !gated && c.s.cfg.Mode == ModeEnforce {
		return nil
	}
	deadline := p.CreationTimestamp.Add(c.s.cfg.GateDeadline)
	d := c.s.decidePod(p, false)
	if len(d.Unknown) > 0 {
		if gated && !time.Now().Before(deadline) {
			return c.release(ctx, p, d, fmt.Sprintf("its images could not be read within the deadline (%s)", c.s.cfg.GateDeadline))
		}
		ictx, cancel := context.WithDeadline(ctx, deadline)
		failures := c.inspect(ictx, p, d.Unknown, true)
		cancel()
		d = c.s.decidePod(p, false)
		if len(d.Unknown) > 0 {
			if gated && c.queue.NumRequeues(item) >= c.s.cfg.Retries-1 {
				return c.release(ctx, p, d, fmt.Sprintf("its images could not be read after %d attempts (%s)", c.s.cfg.Retries, strings.Join(failures, "; ")))
			}
			if !gated && c.queue.NumRequeues(item) >= c.s.cfg.Retries-1 {
				c.markReported(p.UID)
				return nil
			}
			return fmt.Errorf("%w: %s", errNotYet, strings.Join(failures, "; "))
		}
	}
	if !gated {
		c.markReported(p.UID)
		c.s.report.add(p, d, ModeObserve)
		c.s.metrics.add(c.s.metrics.decisions, 1, string(ModeObserve)+"-controller", string(d.Outcome))
		c.observeEvent(p, d)
		return nil
	}
	var ops []remedy.Operation
	switch d.Outcome {
	case OutcomePinned:
		ops = append(slices.Clone(d.Ops), annotationOps(p, PinnedAnnotation, strings.Join(d.Allowed, ","))...)
		c.s.recorder.Eventf(p, corev1.EventTypeNormal, "ArchPinned", "archfit: %s", truncate(d.Message, 900))
	case OutcomeConflict:
		c.s.recorder.Eventf(p, corev1.EventTypeWarning, "ArchConflict", "archfit: not changed: %s", truncate(d.Message, 900))
	case OutcomeWaived:
		c.s.recorder.Eventf(p, corev1.EventTypeNormal, "ArchWaived", "archfit: %s", truncate(d.Message, 900))
	case OutcomeError:
		c.s.recorder.Eventf(p, corev1.EventTypeWarning, "ArchError", "archfit: ungated unchanged: %s", truncate(d.Message, 900))
	}
	c.s.report.add(p, d, c.s.cfg.Mode)
	c.s.metrics.add(c.s.metrics.decisions, 1, string(c.s.cfg.Mode)+"-controller", string(d.Outcome))
	return patchPod(ctx, c.s.cs, p, append(ops, ungateOps(p)...))
}

// release ungates a pod whose images could not be read, with an event, and
// the fallback architecture when one is set.
func (c *controller) release(ctx context.Context, p *corev1.Pod, d Decision, why string) error {
	var ops []remedy.Operation
	what := "ungated unchanged"
	if fb := c.s.cfg.FallbackArch; fb != "" {
		w := cluster.PodWorkload(p)
		if res, err := remedy.Patch(w.Original, []string{fb}, remedy.IgnoreOwner()); err == nil && len(res.Conflicts) == 0 && res.Changed {
			for _, o := range res.Ops {
				if o.Op != "test" {
					ops = append(ops, o)
				}
			}
			ops = append(ops, annotationOps(p, PinnedAnnotation, fb)...)
			what = "ungated, kept on the fallback architecture " + fb
		}
	}
	c.s.metrics.add(c.s.metrics.ungatedTimeout, 1)
	c.s.recorder.Eventf(p, corev1.EventTypeWarning, "ArchUngated", "archfit: %s: %s", what, truncate(why, 800))
	d.Outcome, d.Message = OutcomeError, what+": "+why
	c.s.report.add(p, d, c.s.cfg.Mode)
	err := patchPod(ctx, c.s.cs, p, append(ops, ungateOps(p)...))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *controller) markReported(uid types.UID) {
	c.mu.Lock()
	if len(c.reported) > maxSeen {
		clear(c.reported)
	}
	c.reported[uid] = true
	c.mu.Unlock()
}

// observeEvent says on the pod what enforce would have done.
func (c *controller) observeEvent(p *corev1.Pod, d Decision) {
	switch d.Outcome {
	case OutcomePinned:
		c.s.recorder.Eventf(p, corev1.EventTypeNormal, "ArchWouldPin", "archfit (observe mode, nothing changed): would have %s", truncate(d.Message, 850))
	case OutcomeConflict:
		c.s.recorder.Eventf(p, corev1.EventTypeWarning, "ArchConflict", "archfit (observe mode): %s", truncate(d.Message, 850))
	}
}

func (c *controller) inspect(ctx context.Context, p *corev1.Pod, reqs []image.Request, template bool) []string {
	return c.s.inspect(ctx, p, reqs, template)
}

// inspect reads images for a pod with its pull secrets (and its service
// account's), records what it learnt, and returns the failures: for the
// controller, and for every replica's learner.
func (s *Server) inspect(ctx context.Context, p *corev1.Pod, reqs []image.Request, template bool) []string {
	lw := &logWriter{s: s}
	ps, err := cluster.ReadPullSecretsWith(ctx, s.cs, []*corev1.Pod{p}, template, lw)
	if err != nil {
		return []string{err.Error()}
	}
	qs := slices.Clone(reqs)
	ps.Attach(qs, s.cfg.Keychain, lw)
	res, err := s.cfg.NewResolver(s.nodes.Load().platforms...)
	if err != nil {
		return []string{err.Error()}
	}
	cred := credID(p)
	var mu sync.Mutex
	var failures []string
	var g errgroup.Group
	g.SetLimit(4)
	for i, q := range qs {
		g.Go(func() error {
			start := time.Now()
			rep := res.Inspect(ctx, q)
			reg := image.RegistryOf(q.Ref)
			s.metrics.since(s.metrics.inspectionSeconds, start, reg)
			if rep.Error != nil {
				s.metrics.add(s.metrics.inspectionErrors, 1, reg, rep.Error.Reason)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %s", q.Ref, rep.Error.Reason))
				mu.Unlock()
				return nil
			}
			// Known under the secrets it was read with: a read with one
			// namespace's secrets answers no other pod.
			id := cred
			if qs[i].Credentials != nil {
				id = qs[i].Credentials.ID
			}
			s.knowledge.put(reqs[i], id, rep)
			return nil
		})
	}
	_ = g.Wait()
	slices.Sort(failures)
	return failures
}

// logWriter turns what shared code writes to errOut into log records.
type logWriter struct{ s *Server }

func (w *logWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			w.s.cfg.Log.Warn(line)
		}
	}
	return len(b), nil
}

// countGated sets the gated-pods gauge.
func (c *controller) countGated() {
	n := 0
	for _, o := range c.s.podLister.List() {
		if p, ok := o.(*corev1.Pod); ok && hasGate(p) {
			n++
		}
	}
	c.s.metrics.set(c.s.metrics.gated, float64(n))
}

// syncDaemonSet judges a DaemonSet's template: when its images cannot run
// on some architecture of the cluster, it patches the template (enforce
// with --patch-owners; refused for objects Helm, Argo CD, Flux or an
// operator manage, as patch --apply refuses them) or raises an event, and
// the at-risk metric names it either way.
func (c *controller) syncDaemonSet(ctx context.Context, item, key string) error {
	o, ok, err := c.dsIdx.GetByKey(key)
	ds, _ := o.(*appsv1.DaemonSet)
	if err != nil || !ok || ds == nil || ds.DeletionTimestamp != nil {
		// Gone: so is its at-risk series.
		if ns, name, err := cache.SplitMetaNamespaceKey(key); err == nil {
			c.s.metrics.drop(c.s.metrics.daemonSetsAtRisk, ns, name)
		}
		return nil
	}
	tp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: ds.Name,
		Labels: ds.Spec.Template.Labels, Annotations: ds.Spec.Template.Annotations}, Spec: *ds.Spec.Template.Spec.DeepCopy()}
	if c.s.outOfScope(tp) != "" || ignored(ds.Labels[IgnoreKey], true) {
		c.s.metrics.drop(c.s.metrics.daemonSetsAtRisk, ds.Namespace, ds.Name)
		return nil
	}
	if len(tp.Spec.ImagePullSecrets) == 0 {
		// Its pods get their service account's pull secrets at admission
		// (the ServiceAccount plugin): name them, so that what is read
		// with them is known under them and nowhere else.
		sa := tp.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		if acct, err := c.s.cs.CoreV1().ServiceAccounts(ds.Namespace).Get(ctx, sa, metav1.GetOptions{}); err == nil {
			tp.Spec.ImagePullSecrets = acct.ImagePullSecrets
		}
	}
	judge := func() Decision {
		cred := credID(tp)
		d := decide(tp, c.s.nodes.Load().nodes, func(q image.Request) *image.Report { return c.s.knowledge.get(q, cred) }, *c.s.waivers.Load())
		d.Owner = object.Ref{APIVersion: "apps/v1", Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name}
		return d
	}
	d := judge()
	if len(d.Unknown) > 0 {
		ictx, cancel := context.WithTimeout(ctx, time.Minute)
		failures := c.inspect(ictx, tp, d.Unknown, true)
		cancel()
		if d = judge(); len(d.Unknown) > 0 {
			return fmt.Errorf("daemonset %s: %s", key, strings.Join(failures, "; "))
		}
	}
	if d.Outcome != OutcomePinned {
		c.s.metrics.replace(c.s.metrics.daemonSetsAtRisk, 0, 2, ds.Namespace, ds.Name, strings.Join(d.Excluded, ","))
		return nil
	}
	c.s.metrics.replace(c.s.metrics.daemonSetsAtRisk, 1, 2, ds.Namespace, ds.Name, strings.Join(d.Excluded, ","))
	mark := fmt.Sprintf("%d %s", ds.Generation, strings.Join(d.Allowed, ","))
	c.mu.Lock()
	done := c.dsDone[ds.UID] == mark
	c.mu.Unlock()
	if done {
		return nil
	}
	ref := &corev1.ObjectReference{APIVersion: "apps/v1", Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name, UID: ds.UID}
	if c.s.cfg.Mode != ModeEnforce || !c.s.cfg.PatchOwners {
		c.s.metrics.add(c.s.metrics.ownerPatches, 1, "observed")
		c.s.recorder.Eventf(ref, corev1.EventTypeWarning, "ArchAtRisk",
			"archfit: its pods on %s nodes would fail: %s; keep it on %s with archfit serve --mode enforce --patch-owners, or `archfit patch daemonset/%s -n %s --apply`",
			strings.Join(d.Excluded, ", "), truncate(why(d.rem, d.Excluded), 500), strings.Join(d.Allowed, ", "), ds.Name, ds.Namespace)
		c.doneDS(ds.UID, mark)
		return nil
	}
	err = c.patchOwner(ctx, ds, ref, d)
	if err == nil {
		c.doneDS(ds.UID, mark)
	}
	return err
}

func (c *controller) doneDS(uid types.UID, mark string) {
	c.mu.Lock()
	if len(c.dsDone) > maxSeen {
		clear(c.dsDone)
	}
	c.dsDone[uid] = mark
	c.mu.Unlock()
}

// patchOwner applies the remedy's patch to the DaemonSet as `archfit patch
// --apply` does: refusals of managed objects, a server-side dry run, then
// the guarded JSON patch with field manager archfit.
func (c *controller) patchOwner(ctx context.Context, ds *appsv1.DaemonSet, ref *corev1.ObjectReference, d Decision) error {
	if c.applier == nil {
		return errors.New("no dynamic client")
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ds)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: m}
	obj.SetAPIVersion("apps/v1")
	obj.SetKind("DaemonSet")
	res, err := d.rem.Repatch(obj)
	var redirect *remedy.RedirectError
	if errors.As(err, &redirect) {
		c.s.metrics.add(c.s.metrics.ownerPatches, 1, "refused")
		c.s.recorder.Eventf(ref, corev1.EventTypeWarning, "ArchNotPatched", "archfit: not patched: %s", truncate(err.Error(), 900))
		return nil
	}
	if err != nil {
		c.s.metrics.add(c.s.metrics.ownerPatches, 1, "failed")
		return err
	}
	if !res.Changed {
		return nil
	}
	if err := apply.Check(obj, res, false); err != nil {
		c.s.metrics.add(c.s.metrics.ownerPatches, 1, "refused")
		c.s.recorder.Eventf(ref, corev1.EventTypeWarning, "ArchNotPatched", "archfit: not patched: %s", truncate(err.Error(), 900))
		return nil
	}
	if _, _, err := c.applier.DryRun(ctx, obj, res); err != nil {
		c.s.metrics.add(c.s.metrics.ownerPatches, 1, "failed")
		return fmt.Errorf("server-side dry run of %s: %w", res.Object, err)
	}
	if _, err := c.applier.Apply(ctx, obj, res); err != nil {
		c.s.metrics.add(c.s.metrics.ownerPatches, 1, "failed")
		return err
	}
	c.s.metrics.add(c.s.metrics.ownerPatches, 1, "patched")
	c.s.recorder.Eventf(ref, corev1.EventTypeNormal, "ArchPatched", "archfit: template kept on %s: %s", strings.Join(d.Allowed, ", "), truncate(why(d.rem, d.Excluded), 800))
	return nil
}

// crashReasons are the container states worth a diagnosis.
var crashReasons = map[string]bool{"CrashLoopBackOff": true, "ErrImagePull": true, "ImagePullBackOff": true,
	"RunContainerError": true, "CreateContainerError": true, "StartError": true}

// crashSignature names a pod's failure once per container and reason, ""
// when it is not failing.
func crashSignature(p *corev1.Pod) string {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			reason := ""
			switch {
			case cs.State.Waiting != nil && crashReasons[cs.State.Waiting.Reason]:
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
				reason = "exit"
			}
			if reason != "" {
				return string(p.UID) + "/" + cs.Name + "/" + reason
			}
		}
	}
	return ""
}

// archCodes are the findings a crash event is raised for.
var archCodes = map[string]bool{finding.WrongArchBinary: true, finding.MissingPlatform: true, finding.MislabeledPlatform: true}

// syncCrash diagnoses a failing pod with diagnose's judge (its statuses,
// events, previous log and images, as `archfit diagnose pod/NAME` reads
// them) and raises an event on the pod and its workload for each
// architecture finding, with the root cause and the remedy.
func (c *controller) syncCrash(ctx context.Context, key string) error {
	p := c.pod(key)
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	snap, err := cluster.LoadConfig(ctx, c.s.cfg.REST, p.Namespace, cluster.LiveOptions{Target: &cluster.Target{Kind: cluster.KindPod, Name: p.Name}})
	if err != nil {
		return fmt.Errorf("reading pod %s: %w", key, err)
	}
	reqs := diagnose.Requests(snap)
	var reps []*image.Report
	if len(reqs) > 0 {
		var pods []*corev1.Pod
		for _, fp := range snap.FailingPods() {
			pods = append(pods, fp.Pod)
		}
		lw := &logWriter{s: c.s}
		ps, err := cluster.ReadPullSecretsWith(ctx, c.s.cs, pods, false, lw)
		if err != nil {
			return err
		}
		ps.Attach(reqs, c.s.cfg.Keychain, lw)
		res, err := c.s.cfg.NewResolver(snap.NodePlatforms()...)
		if err != nil {
			return err
		}
		reps = res.InspectAll(ctx, reqs)
	}
	images := diagnose.NewImages(reqs, reps)
	fs := diagnose.Diagnose(snap, images)
	rems := diagnose.Remedies(snap, images, fs)
	for _, f := range fs {
		if !archCodes[f.Code] || f.Waived != "" {
			continue
		}
		msg := fmt.Sprintf("archfit %s: %s%s", f.Code, f.Message, remedyText(rems, f.Workload))
		c.s.metrics.add(c.s.metrics.execFormatEvents, 1, f.Code)
		c.s.recorder.Eventf(p, corev1.EventTypeWarning, "ArchCrash", "%s", truncate(msg, 1000))
		if f.Workload != nil && f.Workload.Kind != cluster.KindPod {
			c.s.recorder.Eventf(ownerReference(*f.Workload, snap), corev1.EventTypeWarning, "ArchCrash", "%s", truncate(fmt.Sprintf("pod %s: %s", p.Name, msg), 1000))
		}
	}
	return nil
}

// remedyText is the fix said with a crash event.
func remedyText(rems []*remedy.Remedy, w *object.Ref) string {
	if w == nil {
		return ""
	}
	for _, r := range rems {
		if r.Workload.ID() != w.ID() || len(r.AllowedArchitectures) == 0 {
			continue
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, " Remedy: keep it on %s (`archfit patch %s/%s -n %s --apply`, or archfit serve --mode enforce)",
			strings.Join(r.AllowedArchitectures, ", "), strings.ToLower(w.Kind), w.Name, w.Namespace)
		for _, bd := range r.Build {
			if len(bd.Missing) > 0 {
				fmt.Fprintf(&b, "; for good, build %s for %s", bd.Image, strings.Join(bd.Missing, ", "))
			}
		}
		return "." + b.String()
	}
	return ""
}

func ownerReference(r object.Ref, snap *cluster.Snapshot) *corev1.ObjectReference {
	ref := &corev1.ObjectReference{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, APIVersion: r.APIVersion}
	if w := snap.Workload(r.ID()); w != nil {
		ref.APIVersion, ref.UID = w.APIVersion, w.UID
	}
	return ref
}
