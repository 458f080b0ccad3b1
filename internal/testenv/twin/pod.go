package twin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	maxBackOff  = 5 * time.Minute
	baseBackOff = 10 * time.Second // the kubelet's image and crash-loop back-off start
)

// podWorker is the kubelet's pod worker for one pod on one node.
type podWorker struct {
	t      *Twin
	node   *node
	pod    *corev1.Pod // as first seen; the spec of a bound pod does not change
	podIP  string
	start  metav1.Time
	cancel context.CancelFunc

	mu       sync.Mutex
	init     map[string]*corev1.ContainerStatus
	main     map[string]*corev1.ContainerStatus
	deleting bool
}

func (t *Twin) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	n := t.node(pod.Spec.NodeName)
	if n == nil || t.ctx == nil {
		return
	}
	t.mu.Lock()
	w := t.pods[pod.UID]
	if pod.DeletionTimestamp != nil {
		if w == nil || w.deleting {
			t.mu.Unlock()
			if w == nil {
				t.finalize(pod)
			}
			return
		}
		w.deleting = true
		t.mu.Unlock()
		w.cancel()
		t.finalize(pod)
		return
	}
	if w != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		t.mu.Unlock()
		return
	}
	n.podSeq++
	ctx, cancel := context.WithCancel(t.ctx)
	w = &podWorker{
		t: t, node: n, pod: pod.DeepCopy(), cancel: cancel,
		podIP: fmt.Sprintf("10.244.%d.%d", n.index, n.podSeq%250+2),
		start: metav1.Now(),
		init:  map[string]*corev1.ContainerStatus{},
		main:  map[string]*corev1.ContainerStatus{},
	}
	t.pods[pod.UID] = w
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		w.run(ctx)
	}()
}

func (t *Twin) forget(uid types.UID) {
	t.mu.Lock()
	w := t.pods[uid]
	delete(t.pods, uid)
	t.mu.Unlock()
	if w != nil {
		w.cancel()
	}
}

// finalize is the kubelet's side of a graceful delete: containers are
// stopped, then the pod object is removed with grace period 0.
func (t *Twin) finalize(pod *corev1.Pod) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		err := t.cs.CoreV1().Pods(pod.Namespace).Delete(t.ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && t.ctx.Err() == nil {
			t.logf("deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
	}()
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func (w *podWorker) run(ctx context.Context) {
	p := w.pod
	hasInit := false
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		w.init[c.Name] = &corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}
		hasInit = true
	}
	waiting := "ContainerCreating"
	if hasInit {
		waiting = "PodInitializing"
	}
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		w.main[c.Name] = &corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting}}}
	}
	w.write(ctx)
	kc := w.keychain(ctx)
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if isSidecar(c) {
			if !w.drive(ctx, c, kc, true) {
				return
			}
			continue
		}
		if !w.drive(ctx, c, kc, true) {
			return
		}
	}
	var wg sync.WaitGroup
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.drive(ctx, c, kc, false)
		}()
	}
	wg.Wait()
}

func (w *podWorker) keychain(ctx context.Context) authn.Keychain {
	kc := keychain{}
	for _, s := range w.pod.Spec.ImagePullSecrets {
		sec, err := w.t.cs.CoreV1().Secrets(w.pod.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		if d, ok := sec.Data[corev1.DockerConfigJsonKey]; ok {
			parseDockerConfig(d, kc)
		}
	}
	return kc
}

func (w *podWorker) status(c *corev1.Container, init bool) *corev1.ContainerStatus {
	if init {
		return w.init[c.Name]
	}
	return w.main[c.Name]
}

func (w *podWorker) event(c *corev1.Container, init bool, typ, reason, format string, args ...any) {
	field := fmt.Sprintf("spec.containers{%s}", c.Name)
	if init {
		field = fmt.Sprintf("spec.initContainers{%s}", c.Name)
	}
	ref := &corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: w.pod.Namespace, Name: w.pod.Name,
		UID: w.pod.UID, ResourceVersion: w.pod.ResourceVersion, FieldPath: field,
	}
	w.node.recorder.Eventf(ref, typ, reason, format, args...)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func nextBackOff(d time.Duration) time.Duration {
	if d == 0 {
		return baseBackOff
	}
	return min(2*d, maxBackOff)
}

// drive runs one container until it is running (a regular init container:
// until it completed) and returns true, or keeps restarting it with the
// kubelet's back-off until ctx ends and returns false.
func (w *podWorker) drive(ctx context.Context, c *corev1.Container, kc authn.Keychain, init bool) bool {
	sidecar := init && isSidecar(c)
	var pullBO, crashBO time.Duration
	for {
		img, ok := w.ensureImage(ctx, c, kc, init, &pullBO)
		if !ok {
			if ctx.Err() != nil {
				return false
			}
			continue
		}
		out, err := execute(img.image, c, w.node.spec)
		if err != nil {
			// Reading the image failed (not: the file is missing). A real node
			// has the layers on disk; retry rather than invent a symptom.
			w.t.logf("evaluating %s/%s %s: %v", w.pod.Namespace, w.pod.Name, c.Name, err)
			if !sleep(ctx, time.Second) {
				return false
			}
			continue
		}
		if out.createErr != "" {
			w.event(c, init, corev1.EventTypeWarning, "Failed", "Error: %s", out.createErr)
			w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
				s.ImageID = img.imageID
				s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: out.createErr}}
			})
			crashBO = nextBackOff(crashBO)
			if !sleep(ctx, crashBO) {
				return false
			}
			continue
		}
		id := w.newContainerID()
		now := metav1.Now()
		w.event(c, init, corev1.EventTypeNormal, "Created", "Container created")
		if out.startErr != "" {
			w.event(c, init, corev1.EventTypeWarning, "Failed", "Error: %s", out.startErr)
			w.t.setLog(id, "")
			w.crashed(ctx, c, init, img, id, &corev1.ContainerStateTerminated{
				ExitCode: 128, Reason: "StartError", Message: out.startErr, StartedAt: metav1.NewTime(time.Unix(0, 0)), FinishedAt: now, ContainerID: id,
			}, &crashBO)
			if !sleep(ctx, crashBO) {
				return false
			}
			continue
		}
		w.event(c, init, corev1.EventTypeNormal, "Started", "Container started")
		w.t.setLog(id, out.log)
		if !out.exited {
			if init && !sidecar {
				w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
					s.ImageID, s.ContainerID, s.Ready, s.Started = img.imageID, id, true, ptr.To(false)
					s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
						ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: metav1.Now(), ContainerID: id,
					}}
				})
				return true
			}
			w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
				s.ImageID, s.ContainerID, s.Ready, s.Started = img.imageID, id, true, ptr.To(true)
				s.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
			})
			if sidecar {
				return true
			}
			<-ctx.Done()
			return false
		}
		term := &corev1.ContainerStateTerminated{
			ExitCode: out.exitCode, Reason: "Error", StartedAt: now, FinishedAt: metav1.Now(), ContainerID: id,
		}
		if c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
			term.Message = out.log
		}
		w.crashed(ctx, c, init, img, id, term, &crashBO)
		if !sleep(ctx, crashBO) {
			return false
		}
	}
}

// crashed records an exited container, then the CrashLoopBackOff that follows.
func (w *podWorker) crashed(ctx context.Context, c *corev1.Container, init bool, img *pulled, id string, term *corev1.ContainerStateTerminated, bo *time.Duration) {
	w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
		s.ImageID, s.ContainerID, s.Ready, s.Started = img.imageID, id, false, ptr.To(false)
		s.State = corev1.ContainerState{Terminated: term}
	})
	if !sleep(ctx, 300*time.Millisecond) {
		return
	}
	*bo = nextBackOff(*bo)
	w.event(c, init, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, w.podDesc())
	w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
		s.RestartCount++
		s.LastTerminationState = corev1.ContainerState{Terminated: term}
		s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", *bo, c.Name, w.podDesc()),
		}}
	})
}

func (w *podWorker) podDesc() string {
	return fmt.Sprintf("%s_%s(%s)", w.pod.Name, w.pod.Namespace, w.pod.UID)
}

// ensureImage is the kubelet's EnsureImageExists plus the runtime's pull.
func (w *podWorker) ensureImage(ctx context.Context, c *corev1.Container, kc authn.Keychain, init bool, bo *time.Duration) (*pulled, bool) {
	n := w.node
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
	}
	if policy != corev1.PullAlways {
		if img := w.t.cached(n, c.Image); img != nil {
			w.event(c, init, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine and can be accessed by the pod", c.Image)
			return img, true
		}
		if policy == corev1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			w.event(c, init, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
			w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
				s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: msg}}
			})
			*bo = nextBackOff(*bo)
			sleep(ctx, *bo)
			return nil, false
		}
	}
	w.event(c, init, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	begin := time.Now()
	// The pulled image is cached for the node and read lazily later, by other
	// pods too: it must not be bound to this pod's lifetime.
	img, err := w.t.pull(w.t.ctx, n.spec, c.Image, kc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		msg := err.Error()
		w.t.logf("%s: pull %s for %s/%s: %s", n.spec.Name, c.Image, w.pod.Namespace, w.pod.Name, msg)
		w.event(c, init, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", c.Image, msg)
		w.event(c, init, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
			s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: msg}}
		})
		if !sleep(ctx, w.t.opts.PullBackOff) {
			return nil, false
		}
		w.event(c, init, corev1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.Image)
		w.event(c, init, corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
		w.update(ctx, c, init, func(s *corev1.ContainerStatus) {
			s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason:  "ImagePullBackOff",
				Message: fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", c.Image, msg),
			}}
		})
		*bo = nextBackOff(*bo)
		sleep(ctx, *bo)
		return nil, false
	}
	*bo = 0
	d := time.Since(begin).Truncate(time.Millisecond)
	w.event(c, init, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.", c.Image, d, d, img.size)
	w.t.cache(n, c.Image, img)
	return img, true
}

func (w *podWorker) newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	scheme := "containerd"
	if w.node.spec.runtimeName() == "cri-o" {
		scheme = "cri-o"
	}
	return scheme + "://" + hex.EncodeToString(b)
}

// update changes one container's status and writes the pod status.
func (w *podWorker) update(ctx context.Context, c *corev1.Container, init bool, f func(*corev1.ContainerStatus)) {
	w.mu.Lock()
	f(w.status(c, init))
	w.mu.Unlock()
	w.write(ctx)
}

// write posts the whole pod status computed from the container statuses,
// as the kubelet's status manager does.
func (w *podWorker) write(ctx context.Context) {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		pods := w.t.cs.CoreV1().Pods(w.pod.Namespace)
		cur, err := pods.Get(ctx, w.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != w.pod.UID || cur.DeletionTimestamp != nil {
			return nil
		}
		w.mu.Lock()
		cur.Status = w.build(cur.Status)
		w.mu.Unlock()
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
		w.t.logf("writing status of %s/%s: %v", w.pod.Namespace, w.pod.Name, err)
	}
}

func ordered(spec []corev1.Container, m map[string]*corev1.ContainerStatus) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(spec))
	for _, c := range spec {
		if s := m[c.Name]; s != nil {
			out = append(out, *s.DeepCopy())
		}
	}
	return out
}

// build computes phase and conditions the way the kubelet does for a pod
// with restartPolicy Always (the workloads archfit cares about).
func (w *podWorker) build(old corev1.PodStatus) corev1.PodStatus {
	p := w.pod
	st := corev1.PodStatus{
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     w.podIP,
		PodIPs:    []corev1.PodIP{{IP: w.podIP}},
		StartTime: &w.start,
		QOSClass:  old.QOSClass,
	}
	st.InitContainerStatuses = ordered(p.Spec.InitContainers, w.init)
	st.ContainerStatuses = ordered(p.Spec.Containers, w.main)

	var notInit, notReady []string
	for i, c := range p.Spec.InitContainers {
		s := st.InitContainerStatuses[i]
		if isSidecar(&c) {
			if s.Started == nil || !*s.Started {
				notInit = append(notInit, c.Name)
			}
			if !s.Ready {
				notReady = append(notReady, c.Name)
			}
			continue
		}
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			notInit = append(notInit, c.Name)
		}
	}
	phase := corev1.PodRunning
	if len(notInit) > 0 {
		phase = corev1.PodPending
	}
	for _, s := range st.ContainerStatuses {
		if !s.Ready {
			notReady = append(notReady, s.Name)
		}
		if s.State.Waiting != nil && s.LastTerminationState.Terminated == nil {
			phase = corev1.PodPending
		}
	}
	st.Phase = phase

	now := metav1.Now()
	prev := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range old.Conditions {
		prev[c.Type] = c
	}
	cond := func(typ corev1.PodConditionType, ok bool, reason string, names []string) corev1.PodCondition {
		c := corev1.PodCondition{Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: now}
		if !ok {
			sort.Strings(names)
			c.Status, c.Reason = corev1.ConditionFalse, reason
			c.Message = fmt.Sprintf("containers with %s status: [%s]", map[string]string{
				"ContainersNotInitialized": "incomplete", "ContainersNotReady": "unready",
			}[reason], strings.Join(names, " "))
		}
		if pc, seen := prev[typ]; seen && pc.Status == c.Status {
			c.LastTransitionTime = pc.LastTransitionTime
		}
		return c
	}
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}
	if pc, ok := prev[corev1.PodScheduled]; ok {
		scheduled = pc
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, true, "", nil),
		cond(corev1.PodInitialized, len(notInit) == 0, "ContainersNotInitialized", notInit),
		cond(corev1.PodReady, len(notReady) == 0, "ContainersNotReady", notReady),
		cond(corev1.ContainersReady, len(notReady) == 0, "ContainersNotReady", notReady),
		scheduled,
	}
	return st
}
