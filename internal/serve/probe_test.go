package serve

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// probeAPI is a fake API server for --install's wait: it starts calling
// the webhook (s.Admit) only from the nth pod create on, as a real one does
// once its webhook configuration cache has the new registration. A real
// API server cannot be made to lag on demand (it usually takes under 10 ms,
// and a CI run once lost that race), hence the fake. Every create it sees
// is recorded.
func probeAPI(t testing.TB, s *Server, n int) (creates *atomic.Int64, seen func() []*corev1.Pod) {
	creates = new(atomic.Int64)
	var got []*corev1.Pod
	cs := fake.NewSimpleClientset()
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		pod := ca.GetObject().(*corev1.Pod)
		got = append(got, pod.DeepCopy())
		if int(creates.Add(1)) >= n {
			s.Admit(review(t, pod))
		}
		return true, pod, nil
	})
	s.cs = cs
	return creates, func() []*corev1.Pod { return got }
}

func namespaces(t testing.TB, ns ...*corev1.Namespace) cache.Indexer {
	ix := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, n := range ns {
		if err := ix.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}

func nsNamed(name string, lbl map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl}}
}

func TestAwaitWebhookRetriesUntilCalled(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), nil)
	f.s.nsLister = namespaces(t, nsNamed("kube-system", nil), nsNamed("archfit", nil), nsNamed("default", nil), nsNamed("shop", nil))
	creates, seen := probeAPI(t, f.s, 3)
	took, ok, why := f.s.awaitWebhook(context.Background())
	if !ok {
		t.Fatalf("not shown: %s", why)
	}
	if n := creates.Load(); n != 3 {
		t.Errorf("%d probes, want 3 (the API server calls from the third on)", n)
	}
	t.Logf("called after %s", took)
	for _, p := range seen() {
		if p.Namespace != "default" || p.Annotations[ProbeAnnotation] == "" || len(p.Spec.Containers) != 1 {
			t.Errorf("probe %s/%s %v: want a one-container pod in default with the nonce", p.Namespace, p.GenerateName, p.Annotations)
		}
	}
	// The probe was answered, not judged: no decision, no report row.
	if n := len(f.s.report.snapshot().Entries); n != 0 {
		t.Errorf("%d report entries after the probes", n)
	}
	// The nonce is forgotten: a pod carrying it now is judged.
	if f.s.probe.Load() != nil {
		t.Error("the probe outlives the wait")
	}
	p := podOf("shop", f.reg+"/none:1")
	p.Annotations = map[string]string{ProbeAnnotation: seen()[0].Annotations[ProbeAnnotation]}
	if f.s.isProbe(p) {
		t.Error("a pod with an old nonce is taken for a probe")
	}
}

// A pod that merely carries the annotation with a value of its own is
// judged like any other while the wait is on.
func TestProbeNeedsTheNonce(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), nil)
	f.s.nsLister = namespaces(t, nsNamed("default", nil))
	probeAPI(t, f.s, 1<<30) // never calls: the wait goes on until ctx ends
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.s.awaitWebhook(ctx) }()
	for f.s.probe.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	p := podOf("shop", f.reg+"/none:1")
	p.Annotations = map[string]string{ProbeAnnotation: "guessed"}
	f.s.Admit(review(t, p))
	if n := len(f.s.report.snapshot().Entries); n != 1 {
		t.Errorf("a pod with a guessed nonce: %d report entries, want 1 (judged)", n)
	}
	cancel()
	<-done
}

func TestAwaitWebhookGivesUp(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), nil)
	f.s.nsLister = namespaces(t, nsNamed("default", nil))
	probeAPI(t, f.s, 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, ok, why := f.s.awaitWebhook(ctx)
	if ok || !strings.Contains(why, "did not call") {
		t.Errorf("ok %v, why %q: want not shown, not called", ok, why)
	}
}

func TestProbeNamespace(t *testing.T) {
	cases := []struct {
		name string
		sel  string
		ns   []*corev1.Namespace
		want string
	}{
		{name: "default first", ns: []*corev1.Namespace{nsNamed("a", nil), nsNamed("default", nil)}, want: "default"},
		{name: "never kube-system or archfit's", ns: []*corev1.Namespace{nsNamed("kube-system", nil), nsNamed("archfit", nil)}, want: ""},
		{name: "selected only", sel: "team=shop",
			ns: []*corev1.Namespace{nsNamed("default", nil), nsNamed("b", map[string]string{"team": "shop"}), nsNamed("a", map[string]string{"team": "shop"})}, want: "a"},
		{name: "being deleted", ns: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default", DeletionTimestamp: &metav1.Time{}}}, nsNamed("z", nil)}, want: "z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, ModeEnforce, mixed(), nil)
			f.s.nsLister = namespaces(t, c.ns...)
			if c.sel != "" {
				sel, err := labels.Parse(c.sel)
				if err != nil {
					t.Fatal(err)
				}
				f.s.nsSel = sel
			}
			if got := f.s.probeNamespace(); got != c.want {
				t.Errorf("probe namespace %q, want %q", got, c.want)
			}
		})
	}
}
