package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
)

// The live source is tested against a real kube-apiserver, scheduler and
// controller-manager, with node twins that run the pods (internal/testenv).
// Without the binaries (hack/testenv.sh build) these tests skip.
var testCluster testenv.Shared

func TestMain(m *testing.M) {
	flag.Parse() // testenv.Main reads -short before m.Run would parse flags
	os.Exit(testenv.Main(m, &testCluster))
}

func podSpec(image, arch string, restart corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		Containers:                    []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent}},
		NodeSelector:                  map[string]string{"kubernetes.io/arch": arch},
		RestartPolicy:                 restart,
		TerminationGracePeriodSeconds: ptr.To[int64](1),
	}
}

func deployment(ns, name string, replicas int32, spec corev1.PodSpec) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

// liveFixture creates, in a fresh namespace, what a broken mixed-arch
// cluster holds, and waits until the pods show it:
//   - Deployment api: an amd64-only image pinned to arm64, crash-looping;
//   - Deployment web and StatefulSet db: the same image on amd64, running;
//   - CronJob report and its Job (restartPolicy Never) on arm64: terminated;
//   - a bare pod pinned to s390x: unschedulable.
func liveFixture(ctx context.Context, t *testing.T, env *testenv.Env) string {
	t.Helper()
	ns := env.Namespace(ctx, t, "collect")
	image := env.Registry + "/collect/app:amd64"
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, testimage.App("linux/amd64", "amd64")); err != nil {
		t.Fatalf("pushing %s: %v", image, err)
	}
	cs := env.Client
	create := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("creating %s: %v", what, err)
		}
	}
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "api", 2, podSpec(image, "arm64", corev1.RestartPolicyAlways)), metav1.CreateOptions{})
	create("api", err)
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "web", 1, podSpec(image, "amd64", corev1.RestartPolicyAlways)), metav1.CreateOptions{})
	create("web", err)
	dbLabels := map[string]string{"app": "db"}
	_, err = cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: dbLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: dbLabels}, Spec: podSpec(image, "amd64", corev1.RestartPolicyAlways)},
		},
	}, metav1.CreateOptions{})
	create("db", err)
	jobSpec := batchv1.JobSpec{
		BackoffLimit: ptr.To[int32](0),
		Template:     corev1.PodTemplateSpec{Spec: podSpec(image, "arm64", corev1.RestartPolicyNever)},
	}
	// A suspended CronJob, and the Job its controller would have made, so
	// the test does not wait for a schedule.
	cj, err := cs.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "report"},
		Spec: batchv1.CronJobSpec{Schedule: "0 0 1 1 *", Suspend: ptr.To(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: jobSpec}},
	}, metav1.CreateOptions{})
	create("report", err)
	_, err = cs.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "report-29147520", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: ptr.To(true),
		}}},
		Spec: jobSpec,
	}, metav1.CreateOptions{})
	create("report-29147520", err)
	_, err = cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pinned"},
		Spec:       podSpec(image, "s390x", corev1.RestartPolicyAlways),
	}, metav1.CreateOptions{})
	create("pinned", err)

	var last string
	err = testenv.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := map[string]int{}
		for i := range list.Items {
			p := &Pod{Pod: &list.Items[i]}
			if p.DeletionTimestamp != nil {
				continue
			}
			c, _ := p.Container("app")
			switch {
			case c.Running != nil && c.Ready:
				ready["running"]++
			case c.LastTerminated != nil && c.RestartCount > 0:
				ready["crashed"]++
			case c.Terminated != nil && c.Terminated.ExitCode != 0:
				ready["terminated"]++
			default:
				if ok, _ := p.Failing(); ok && p.Spec.NodeName == "" {
					ready["unschedulable"]++
				}
			}
		}
		last = fmt.Sprint(ready)
		return ready["running"] == 2 && ready["crashed"] == 2 && ready["terminated"] == 1 && ready["unschedulable"] == 1, nil
	})
	if err != nil {
		t.Fatalf("waiting for the fixture's pods: %v; last: %s", err, last)
	}
	return ns
}

func TestLoadLive(t *testing.T) {
	env := testCluster.Env(t)
	ctx := t.Context()
	ns := liveFixture(ctx, t, env)

	t.Run("whole namespace, one item per page", func(t *testing.T) {
		s, err := LoadConfig(ctx, env.Config, ns, LiveOptions{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range s.Workloads {
			got = append(got, fmt.Sprintf("%s pods=%d via=%d orig=%v", w.Ref, len(w.Pods), len(w.Intermediates), w.Original != nil))
		}
		want := []string{
			ns + "/CronJob/report pods=1 via=1 orig=true",
			ns + "/Deployment/api pods=2 via=1 orig=true",
			ns + "/Deployment/web pods=1 via=1 orig=true",
			ns + "/Pod/pinned pods=1 via=0 orig=true",
			ns + "/StatefulSet/db pods=1 via=0 orig=true",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("workloads (-want +got):\n%s", diff)
		}
		if len(s.Warnings) > 0 {
			t.Errorf("warnings: %v (an absent Rollout CRD must be skipped silently)", s.Warnings)
		}

		var failing []string
		for _, p := range s.FailingPods() {
			_, c := p.Failing()
			failing = append(failing, p.Workload.Name+"/"+c)
		}
		if diff := cmp.Diff([]string{"api/app", "api/app", "pinned/", "report/app"}, sortedCopy(failing)); diff != "" {
			t.Errorf("failing pods (-want +got):\n%s", diff)
		}

		// Logs: only the crashed containers', previous for the restarted
		// ones, current for the Job's; never the running pods'.
		var logs []string
		for _, l := range s.Logs {
			// runc prints "exec format error", crun (CRI-O) "Exec format error".
			execFormat := strings.Contains(strings.ToLower(l.Text), "exec format error")
			logs = append(logs, fmt.Sprintf("%s previous=%v exec-format=%v", strings.SplitN(l.Pod, "-", 2)[0], l.Previous, execFormat))
		}
		wantLogs := []string{"api previous=true exec-format=true", "api previous=true exec-format=true", "report previous=false exec-format=true"}
		if diff := cmp.Diff(wantLogs, sortedCopy(logs)); diff != "" {
			t.Errorf("logs (-want +got):\n%s", diff)
		}
		// The pods of one ReplicaSet, read on pages of their own, share
		// one container list (and labels); another workload's do not.
		api := s.Workload(Ref{Kind: KindDeployment, Namespace: ns, Name: "api"}).Pods
		web := s.Workload(Ref{Kind: KindDeployment, Namespace: ns, Name: "web"}).Pods
		if len(api) != 2 || &api[0].Spec.Containers[0] != &api[1].Spec.Containers[0] || &api[0].Spec.Containers[0] == &web[0].Spec.Containers[0] {
			t.Errorf("the api pods do not share their containers, or share web's")
		}
		for _, p := range api {
			if p.Spec.Containers[0].Name != "app" || p.Labels["app"] != "api" || len(p.Spec.Volumes) != 0 || len(p.Spec.Containers[0].VolumeMounts) != 0 {
				t.Errorf("pod %s: containers %+v labels %v volumes %v", p.Name, p.Spec.Containers, p.Labels, p.Spec.Volumes)
			}
		}
		// A pod of its own keeps the token volume the API server gave it.
		if bare := s.Workload(Ref{Kind: KindPod, Namespace: ns, Name: "pinned"}).Pods[0]; len(bare.Spec.Volumes) == 0 || len(bare.Spec.Containers[0].VolumeMounts) == 0 {
			t.Errorf("pod pinned lost its volumes: %v", bare.Spec.Volumes)
		}
		for _, p := range api {
			if p.PreviousLog("app") == nil {
				t.Errorf("pod %s: previous log not attached", p.Name)
			}
			if p.Node == nil || p.Node.Arch() != "arm64" {
				t.Errorf("pod %s: node %+v, want an arm64 node", p.Name, p.Node)
			}
			// The container was started before it crashed, so its events
			// (fieldPath spec.containers{app}) exist; BackOff may lag.
			var reasons []string
			for _, e := range p.ContainerEvents("app") {
				reasons = append(reasons, e.Reason)
			}
			if !strings.Contains(strings.Join(reasons, ","), "Started") || len(p.Events) <= len(reasons) {
				t.Errorf("pod %s: container events %v of %d, want Started among them and a pod-level event", p.Name, reasons, len(p.Events))
			}
		}

		var pools []string
		for _, p := range s.Pools() {
			pools = append(pools, fmt.Sprintf("%s %s %d", p, p.Label, len(p.Nodes)))
		}
		wantPools := []string{
			"arm (linux/arm64/v8) karpenter.sh/nodepool 1",
			"default (linux/amd64) karpenter.sh/nodepool 1",
			"general-amd64 (linux/amd64) eks.amazonaws.com/nodegroup 2",
			"general-arm64 (linux/arm64/v8) eks.amazonaws.com/nodegroup 2",
		}
		if diff := cmp.Diff(wantPools, pools); diff != "" {
			t.Errorf("pools (-want +got):\n%s", diff)
		}

		// Every list is paginated: with one item per page, each list costs
		// one request per item (one for an empty list), plus one discovery
		// request for Argo Rollouts and one per log. Nothing is fetched one
		// object at a time beyond that.
		pages := func(n int) int64 { return int64(max(n, 1)) }
		count := map[string]int{}
		for _, w := range s.Workloads {
			if w.Kind != KindPod {
				count[w.Kind]++
			}
			for _, r := range w.Intermediates {
				count[r.Kind]++
			}
		}
		want64 := pages(len(s.Nodes)) + pages(len(s.Pods)) + pages(len(s.Events)) + 1 /* discovery */ + logReads(s)
		for _, k := range []string{KindDeployment, KindReplicaSet, KindStatefulSet, KindDaemonSet, KindJob, KindCronJob, KindPodTemplate} {
			want64 += pages(count[k])
		}
		if s.APIRequests != want64 {
			t.Errorf("%d API requests, want %d (nodes %d, pods %d, events %d, logs %d, workloads %v)",
				s.APIRequests, want64, len(s.Nodes), len(s.Pods), len(s.Events), len(s.Logs), count)
		}
	})

	t.Run("events for a diagnosis, or none", func(t *testing.T) {
		all, err := LoadConfig(ctx, env.Config, ns, LiveOptions{Logs: LogsNone})
		if err != nil {
			t.Fatal(err)
		}
		diag, err := LoadConfig(ctx, env.Config, ns, LiveOptions{Logs: LogsNone, Events: EventsDiagnosis, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		// What diagnose reads, in the order one list gives it: the same
		// events as listing all and keeping Warning and Normal BackOff
		// (events are only added while the test runs, never removed).
		want := map[string]bool{}
		var wanted int
		for _, e := range all.Events {
			if e.Type == corev1.EventTypeWarning || e.Reason == "BackOff" {
				want[e.Namespace+"/"+e.Name] = true
				wanted++
			}
		}
		var normal, backOff int
		for _, e := range diag.Events {
			switch {
			case e.Type != corev1.EventTypeWarning && e.Reason != "BackOff":
				normal++
			case e.Reason == "BackOff":
				backOff++
			}
			if !want[e.Namespace+"/"+e.Name] && e.LastTimestamp.Time.Before(time.Now().Add(-time.Minute)) {
				t.Errorf("event %s %s not among all events' warnings", e.Reason, e.Name)
			}
		}
		if normal != 0 || backOff == 0 || len(diag.Events) < wanted || len(diag.Events) >= len(all.Events) {
			t.Errorf("diagnosis events: %d of %d (%d Normal, %d BackOff), want the %d Warning and BackOff ones", len(diag.Events), len(all.Events), normal, backOff, wanted)
		}
		// One page per event, in two lists (one request for an empty one);
		// a field-selected list may also return a page that the selector
		// emptied (the API server filters after reading a page's worth),
		// at most one per event not selected.
		count := map[string]int{}
		for _, w := range diag.Workloads {
			if w.Kind != KindPod {
				count[w.Kind]++
			}
			for _, r := range w.Intermediates {
				count[r.Kind]++
			}
		}
		var warnings int
		for _, e := range diag.Events {
			if e.Type == corev1.EventTypeWarning {
				warnings++
			}
		}
		pages := func(n int) int64 { return int64(max(n, 1)) }
		want64 := pages(len(diag.Nodes)) + pages(len(diag.Pods)) + pages(warnings) + pages(len(diag.Events)-warnings) + 1
		for _, k := range []string{KindDeployment, KindReplicaSet, KindStatefulSet, KindDaemonSet, KindJob, KindCronJob, KindPodTemplate} {
			want64 += pages(count[k])
		}
		if diag.APIRequests < want64 || diag.APIRequests > want64+int64(len(all.Events)-len(diag.Events)) {
			t.Errorf("%d API requests, want %d plus at most one per event left out (nodes %d, pods %d, events %d of which %d Warning, workloads %v)",
				diag.APIRequests, want64, len(diag.Nodes), len(diag.Pods), len(diag.Events), warnings, count)
		}

		none, err := LoadConfig(ctx, env.Config, ns, LiveOptions{Logs: LogsNone, Events: EventsNone})
		if err != nil {
			t.Fatal(err)
		}
		if len(none.Events) != 0 || len(none.Pods) != len(all.Pods) {
			t.Errorf("EventsNone: %d events, %d pods (want 0, %d)", len(none.Events), len(none.Pods), len(all.Pods))
		}
	})

	t.Run("target through kubectl flags", func(t *testing.T) {
		flags := genericclioptions.NewConfigFlags(false)
		flags.KubeConfig = ptr.To(env.Kubeconfig)
		flags.Namespace = ptr.To(ns)
		target, err := ParseTarget("deploy/api")
		if err != nil {
			t.Fatal(err)
		}
		s, err := LoadLive(ctx, flags, LiveOptions{Target: &target})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Workloads) != 1 || s.Workloads[0].Ref != (Ref{Kind: KindDeployment, Namespace: ns, Name: "api"}) || len(s.Pods) != 2 || len(s.Logs) != 2 {
			t.Errorf("got workloads %v, %d pods, %d logs; want deployment api, 2 pods, 2 logs", s.Workloads, len(s.Pods), len(s.Logs))
		}
		// nodes, the deployment, its pods, its replica sets, events, and the
		// logs read (two, or one when both pods crashed the same way on
		// nodes of one architecture: see logsNeeded): no other kind is listed.
		if want := 5 + logReads(s); s.APIRequests != want {
			t.Errorf("%d API requests, want %d", s.APIRequests, want)
		}

		missing := Target{Kind: KindDeployment, Name: "nope"}
		if _, err := LoadLive(ctx, flags, LiveOptions{Target: &missing}); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("missing target: err = %v", err)
		}
	})

	t.Run("other targets", func(t *testing.T) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("db pod: %v %v", err, pods)
		}
		tests := []struct {
			target string
			want   string // workload and pods
		}{
			{"pod/" + pods.Items[0].Name, "StatefulSet/db [db-0]"},
			{"sts/db", "StatefulSet/db [db-0]"},
			{"cj/report", "CronJob/report [report-29147520-"},
			{"job/report-29147520", "CronJob/report [report-29147520-"},
			{"po/pinned", "Pod/pinned [pinned]"},
		}
		for _, tt := range tests {
			t.Run(tt.target, func(t *testing.T) {
				target, err := ParseTarget(tt.target)
				if err != nil {
					t.Fatal(err)
				}
				s, err := LoadConfig(ctx, env.Config, ns, LiveOptions{Target: &target})
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, p := range s.Pods {
					names = append(names, p.Name)
				}
				if len(s.Workloads) != 1 {
					t.Fatalf("workloads %v, want one", s.Workloads)
				}
				got := fmt.Sprintf("%s/%s %v", s.Workloads[0].Kind, s.Workloads[0].Name, names)
				if !strings.HasPrefix(got, tt.want) {
					t.Errorf("got %q, want %q...", got, tt.want)
				}
			})
		}
	})

	t.Run("a namespace viewer cannot list nodes", func(t *testing.T) {
		_, err := env.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "viewer", APIGroup: rbacv1.GroupName}},
			RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "view", APIGroup: rbacv1.GroupName},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "viewer"}
		testenv.WaitAllowed(ctx, t, env.Client, "viewer", ns, "", "pods", "list")
		s, err := LoadConfig(ctx, cfg, ns, LiveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Nodes) != 0 || len(s.Pods) != 6 {
			t.Errorf("%d nodes, %d pods; want 0 and 6", len(s.Nodes), len(s.Pods))
		}
		// The built-in view role allows neither nodes nor podtemplates.
		want := []string{"nodes is forbidden", "podtemplates is forbidden"}
		var got []string
		for _, w := range s.Warnings {
			for _, x := range want {
				if strings.Contains(w, x) {
					got = append(got, x)
				}
			}
		}
		if diff := cmp.Diff(want, sortedCopy(got)); diff != "" || len(s.Warnings) != 2 {
			t.Errorf("warnings %q, want one about nodes and one about podtemplates", s.Warnings)
		}
	})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestLoadLiveRollouts installs the Argo Rollouts CRD (no controller), a
// Rollout, and a ReplicaSet it owns (what the Argo controller would make):
// the live source finds the CRD by discovery and the owner chain by UID.
func TestLoadLiveRollouts(t *testing.T) {
	env := testCluster.Env(t)
	ctx := t.Context()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "rollouts.argoproj.io"},
		"spec": map[string]any{
			"group": "argoproj.io",
			"names": map[string]any{"kind": "Rollout", "listKind": "RolloutList", "plural": "rollouts", "singular": "rollout", "shortNames": []any{"ro"}},
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the Rollout CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(crdGVR).Delete(context.WithoutCancel(ctx), crd.GetName(), metav1.DeleteOptions{})
	})
	ns := env.Namespace(ctx, t, "rollout")
	var rollout *unstructured.Unstructured
	err = testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) { // until the CRD is served
		rollout, err = dyn.Resource(rolloutGVR).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
			"metadata": map[string]any{"name": "canary"},
			"spec": map[string]any{
				"replicas": int64(1),
				"selector": map[string]any{"matchLabels": map[string]any{"app": "canary"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "canary"}},
					"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "example.invalid/canary:1"}}},
				},
			},
		}}, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("creating a Rollout: %v", err)
	}
	labels := map[string]string{"app": "canary", "rollouts-pod-template-hash": "6d7f8c9b5"}
	_, err = env.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-6d7f8c9b5", Labels: labels, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "canary", UID: rollout.GetUID(), Controller: ptr.To(true),
		}}},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: podSpec("example.invalid/canary:1", "amd64", corev1.RestartPolicyAlways)},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var s *Snapshot
	err = testenv.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		s, err = LoadConfig(ctx, env.Config, ns, LiveOptions{})
		if err != nil {
			return false, err
		}
		return len(s.Pods) == 1, nil
	})
	if err != nil {
		t.Fatalf("waiting for the ReplicaSet's pod: %v", err)
	}
	var got []string
	for _, w := range s.Workloads {
		got = append(got, fmt.Sprintf("%s pods=%d via=%v inferred=%q path=%s containers=%d", w.Ref, len(w.Pods), w.Intermediates, w.Inferred, w.TemplatePath, len(w.Containers)))
	}
	want := []string{fmt.Sprintf("%s/Rollout/canary pods=1 via=[%s/ReplicaSet/canary-6d7f8c9b5] inferred=\"\" path=spec.template containers=1", ns, ns)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
}

// TestLoadLiveOperatorOwner installs a Prometheus CRD (no operator), a
// Prometheus, and the StatefulSet the Prometheus Operator would make from
// it: the live source reads the owner through discovery and attributes the
// StatefulSet's pod to the Prometheus, and a target prometheus/NAME finds it.
func TestLoadLiveOperatorOwner(t *testing.T) {
	env := testCluster.Env(t)
	ctx := t.Context()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "prometheuses.monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com",
			"names": map[string]any{"kind": "Prometheus", "listKind": "PrometheusList", "plural": "prometheuses", "singular": "prometheus"},
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the Prometheus CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(crdGVR).Delete(context.WithoutCancel(ctx), crd.GetName(), metav1.DeleteOptions{})
	})
	ns := env.Namespace(ctx, t, "operator")
	image := env.Registry + "/operator/prometheus:v3"
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, testimage.App("linux/amd64", "amd64")); err != nil {
		t.Fatalf("pushing %s: %v", image, err)
	}
	promGVR := schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheuses"}
	var prom *unstructured.Unstructured
	err = testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) { // until the CRD is served
		prom, err = dyn.Resource(promGVR).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
			"metadata": map[string]any{"name": "k8s"},
			"spec":     map[string]any{"image": image, "replicas": int64(1), "nodeSelector": map[string]any{"kubernetes.io/os": "linux"}},
		}}, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("creating a Prometheus: %v", err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": "k8s"}
	spec := podSpec(image, "amd64", corev1.RestartPolicyAlways)
	spec.Containers[0].Name = "prometheus"
	_, err = env.Client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-k8s", Labels: labels, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "monitoring.coreos.com/v1", Kind: "Prometheus", Name: "k8s", UID: prom.GetUID(), Controller: ptr.To(true),
		}}},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: "prometheus-operated",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template:    corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var s *Snapshot
	err = testenv.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		s, err = LoadConfig(ctx, env.Config, ns, LiveOptions{Logs: LogsNone})
		if err != nil {
			return false, err
		}
		return len(s.Pods) == 1, nil
	})
	if err != nil {
		t.Fatalf("waiting for the StatefulSet's pod: %v", err)
	}
	describe := func(s *Snapshot) []string {
		var got []string
		for _, w := range s.Workloads {
			var cs []string
			for _, c := range w.Containers {
				cs = append(cs, fmt.Sprintf("%s=%s injected=%v", c.Name, c.Image, c.Injected))
			}
			got = append(got, fmt.Sprintf("%s %s pods=%d via=%v managedBy=%v nodeSelector=%v containers=%v", w.APIVersion, w.Ref, len(w.Pods), w.Intermediates, w.ManagedBy, w.Template.Spec.NodeSelector, cs))
		}
		return got
	}
	want := []string{fmt.Sprintf("monitoring.coreos.com/v1 %s/Prometheus/k8s pods=1 via=[%s/StatefulSet/prometheus-k8s] managedBy=<nil> nodeSelector=map[kubernetes.io/os:linux] containers=[prometheus=%s injected=false]", ns, ns, image)}
	if diff := cmp.Diff(want, describe(s)); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	if len(s.Warnings) > 0 {
		t.Errorf("warnings: %v", s.Warnings)
	}

	target, err := ParseTarget("prometheus/k8s")
	if err != nil {
		t.Fatal(err)
	}
	sel, err := LoadConfig(ctx, env.Config, ns, LiveOptions{Target: &target, Logs: LogsNone})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, describe(sel)); diff != "" {
		t.Errorf("target %s (-want +got):\n%s", target, diff)
	}
	if w := sel.Workloads[0]; w.Original == nil || w.Original.GetKind() != "Prometheus" {
		t.Errorf("the target's object is %v, want the Prometheus as read", w.Original)
	}
}

// logReads counts the logs read from the API server: a log shared with a
// pod that crashed the same way (ReadFrom set) cost no request.
func logReads(s *Snapshot) int64 {
	n := int64(0)
	for _, l := range s.Logs {
		if l.ReadFrom == "" {
			n++
		}
	}
	return n
}
