package serve

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/testimage"
)

// archfit_daemonset_at_risk has one series per DaemonSet: when the
// architectures it is excluded from change (a new pool), the series is
// replaced, not joined by another; when the DaemonSet goes, so does its
// series.
func TestDaemonSetAtRiskSeriesFollowTheDaemonSet(t *testing.T) {
	f := newFixture(t, ModeObserve, mixed(), map[string]any{"amd:1": testimage.App("linux/amd64", "amd64")})
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: "agent", UID: types.UID("u1")},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			Containers:       []corev1.Container{{Name: "agent", Image: f.reg + "/amd:1"}}}}}}
	tp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace}, Spec: ds.Spec.Template.Spec}
	f.learn(t, tp)
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := idx.Add(ds); err != nil {
		t.Fatal(err)
	}
	f.s.recorder = record.NewFakeRecorder(10) // events are not what this test reads
	c := &controller{s: f.s, dsIdx: idx, reported: map[types.UID]bool{}, crashes: map[string]bool{}, dsDone: map[types.UID]string{}}
	series := func() []string {
		var b strings.Builder
		if err := f.s.metrics.write(&b); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "archfit_daemonset_at_risk{") {
				out = append(out, l)
			}
		}
		return out
	}
	sync := func() {
		t.Helper()
		if err := c.syncDaemonSet(context.Background(), itemDS+"agents/agent", "agents/agent"); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	if got := series(); len(got) != 1 || !strings.Contains(got[0], `excluded="arm64"} 1`) {
		t.Fatalf("at-risk series %q, want one excluding arm64", got)
	}
	// A ppc64le pool joins the cluster: the DaemonSet is excluded from it
	// too.
	v := f.s.nodes.Load()
	nv := &nodeView{byName: v.byName, platforms: v.platforms, nodes: append(v.nodes[:len(v.nodes):len(v.nodes)], cluster.NodeOf(node("p1", "ppc64le")))}
	f.s.nodes.Store(nv)
	sync()
	if got := series(); len(got) != 1 || !strings.Contains(got[0], `excluded="arm64,ppc64le"} 1`) {
		t.Fatalf("after a new pool, at-risk series %q, want only the one excluding arm64,ppc64le", got)
	}
	if err := idx.Delete(ds); err != nil {
		t.Fatal(err)
	}
	sync()
	if got := series(); len(got) != 0 {
		t.Fatalf("after deletion, at-risk series %q, want none", got)
	}
}
