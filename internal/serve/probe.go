package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ProbeAnnotation marks the dry-run pod with which --install checks that
// the API server calls the webhook it has just registered. Its value is a
// nonce made per start and never stored: a pod carrying another value is
// judged like any other.
const ProbeAnnotation = "archfit.io/webhook-probe"

// probeWait bounds how long Run waits for the API server to start calling
// a newly registered webhook (its configuration cache, usually well under
// a second) before it serves anyway and says so.
const probeWait = 15 * time.Second

// webhookProbe is the state of the wait: the nonce being looked for and a
// channel closed the first time a review carries it.
type webhookProbe struct {
	nonce string
	seen  chan struct{}
	once  sync.Once
}

// isProbe reports whether pod is this start's probe, and marks it seen.
func (s *Server) isProbe(pod *corev1.Pod) bool {
	p := s.probe.Load()
	if p == nil || pod.Annotations[ProbeAnnotation] != p.nonce {
		return false
	}
	p.once.Do(func() { close(p.seen) })
	return true
}

// awaitWebhook creates server-side dry-run pods in a namespace the webhook
// selects until a review of one reaches this process: a pod created
// before that is admitted by the API server without archfit. It returns
// how long that took, or ok false (and why) when it could not be shown.
func (s *Server) awaitWebhook(ctx context.Context) (took time.Duration, ok bool, why string) {
	ns := s.probeNamespace()
	if ns == "" {
		return 0, false, "no namespace the webhook selects exists yet"
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	p := &webhookProbe{nonce: hex.EncodeToString(b), seen: make(chan struct{})}
	s.probe.Store(p)
	defer s.probe.Store(nil)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	pods := s.cs.CoreV1().Pods(ns)
	why = "the API server did not call it within " + probeWait.String()
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "archfit-webhook-probe-", Namespace: ns,
				Annotations: map[string]string{ProbeAnnotation: p.nonce}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "archfit.invalid/webhook-probe:v1"}}},
		}
		_, err := pods.Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		select {
		case <-p.seen:
			// Whatever the rest of admission said of the probe (a
			// quota, a pod security level), the webhook was called.
			return time.Since(start), true, ""
		default:
		}
		if err != nil && ctx.Err() == nil {
			why = "a dry-run pod in " + ns + " was refused: " + err.Error()
		}
		select {
		case <-p.seen:
			return time.Since(start), true, ""
		case <-ctx.Done():
			return time.Since(start), false, why
		case <-time.After(delay):
		}
	}
}

// probeNamespace is a namespace whose pods the webhook reviews: "default"
// when selected, else the first selected one by name.
func (s *Server) probeNamespace() string {
	var names []string
	for _, o := range s.nsLister.List() {
		ns, ok := o.(*corev1.Namespace)
		if !ok || ns.DeletionTimestamp != nil || ns.Name == "kube-system" || ns.Name == s.cfg.Namespace {
			continue
		}
		if !s.nsSel.Empty() && !s.nsSel.Matches(labels.Set(ns.Labels)) {
			continue
		}
		if ns.Name == "default" {
			return ns.Name
		}
		names = append(names, ns.Name)
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[0]
}
