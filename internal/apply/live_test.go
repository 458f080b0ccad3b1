package apply_test

import (
	"github.com/archfit/archfit/internal/object"

	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/apply"
	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/remedy"
	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
)

// cluster is a real kube-apiserver, scheduler and controller-manager with
// three amd64 and three arm64 node twins. Without the binaries
// (hack/testenv.sh build) the tests below skip and say so.
var cluster testenv.Shared

func TestMain(m *testing.M) {
	// testenv.Main reads testing.Short(), which needs the flags parsed.
	flag.Parse()
	os.Exit(testenv.Main(m, &cluster))
}

// archfit runs the real command against the test cluster.
func archfit(ctx context.Context, t *testing.T, env *testenv.Env, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append(args, "--kubeconfig", env.Kubeconfig, "--no-cache"))
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(&errOut, "error: %v\n", err)
	}
	t.Logf("archfit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), cli.ExitCode(err), out.String(), errOut.String())
	return out.String(), errOut.String(), cli.ExitCode(err)
}

// pushAmd64Only pushes a single-arch amd64 image (a real amd64 ELF
// entrypoint) and returns its reference.
func pushAmd64Only(t *testing.T, env *testenv.Env, repo string) string {
	t.Helper()
	ref := env.Registry + "/" + repo + ":v1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64")); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref
}

func deployment(ns, name, img string, replicas int32, labels, annotations map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: img, ImagePullPolicy: corev1.PullIfNotPresent}},
					// Spread over every node, so that without the patch some
					// pods land on arm64 and crash.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector: &metav1.LabelSelector{MatchLabels: sel},
					}},
					TerminationGracePeriodSeconds: ptr.To[int64](1),
				},
			},
		},
	}
}

func nodeArchs(ctx context.Context, t *testing.T, env *testenv.Env) map[string]string {
	t.Helper()
	nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, n := range nodes.Items {
		m[n.Name] = n.Labels["kubernetes.io/arch"]
	}
	return m
}

func archRequirement(d *appsv1.Deployment) []string {
	a := d.Spec.Template.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	var out []string
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range term.MatchExpressions {
			if r.Key == "kubernetes.io/arch" {
				out = append(out, string(r.Operator)+" "+strings.Join(r.Values, ","))
			}
		}
	}
	return out
}

func TestApplyPinsAmd64OnlyDeployment(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "patch")
	img := pushAmd64Only(t, env, "patch/web")
	deploys := env.Client.AppsV1().Deployments(ns)
	if _, err := deploys.Create(ctx, deployment(ns, "web", img, 6, nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Without --apply nothing changes. Pointed at the ReplicaSet, archfit
	// patches the Deployment that owns it.
	var rs string
	err := testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		list, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(list.Items) == 0 {
			return false, err
		}
		rs = list.Items[0].Name
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for the ReplicaSet: %v", err)
	}
	out, _, code := archfit(ctx, t, env, "patch", "rs/"+rs, "-n", ns, "--format", "kubectl")
	if want := "kubectl patch deployment.apps web -n " + ns + " --type json"; code != cli.ExitOK || !strings.Contains(out, want) || !strings.Contains(out, `"values":["amd64"]`) {
		t.Fatalf("print: exit %d, output %q, want %q", code, out, want)
	}
	d, err := deploys.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := archRequirement(d); got != nil {
		t.Fatalf("the Deployment changed without --apply: %v", got)
	}

	out, errOut, code := archfit(ctx, t, env, "patch", "deployment/web", "-n", ns, "--apply")
	if code != cli.ExitOK {
		t.Fatalf("--apply: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"server-side dry run of", "+affinity:", "+          - amd64", "patched (field manager archfit)"} {
		if !strings.Contains(out, want) {
			t.Errorf("--apply output lacks %q", want)
		}
	}

	d, err = deploys.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := archRequirement(d); len(got) != 1 || got[0] != "In amd64" {
		t.Errorf("template arch requirements %v, want [In amd64]", got)
	}
	var byArchfit bool
	for _, mf := range d.ManagedFields {
		if mf.Manager == apply.FieldManager {
			byArchfit = true
			if mf.Operation != metav1.ManagedFieldsOperationUpdate {
				t.Errorf("archfit's managedFields entry is %s, want Update (a JSON patch)", mf.Operation)
			}
			if fields := mf.FieldsV1.GetRawString(); !strings.Contains(fields, `"f:affinity"`) {
				t.Errorf("archfit does not own the affinity: %s", fields)
			}
		}
	}
	if !byArchfit {
		t.Errorf("no managedFields entry of manager %q: %+v", apply.FieldManager, d.ManagedFields)
	}

	// Running again: nothing to do, and no second patch.
	out, _, code = archfit(ctx, t, env, "patch", "deployment/web", "-n", ns, "--apply")
	if code != cli.ExitOK || !strings.Contains(out, "nothing to apply") {
		t.Errorf("second --apply: exit %d, output %q", code, out)
	}

	// The controller-manager rolls out; the node twins run the pods: all six
	// end up Running, on amd64 nodes only.
	archs := nodeArchs(ctx, t, env)
	var last string
	err = testenv.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		running := 0
		var bad []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				bad = append(bad, p.Name+" terminating")
				continue
			}
			if a := archs[p.Spec.NodeName]; a != "amd64" {
				bad = append(bad, fmt.Sprintf("%s on %q (%s)", p.Name, p.Spec.NodeName, a))
				continue
			}
			if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
				running++
				continue
			}
			state := string(p.Status.Phase)
			for _, cs := range p.Status.ContainerStatuses {
				state += fmt.Sprintf(" %+v restarts=%d", cs.State, cs.RestartCount)
			}
			bad = append(bad, fmt.Sprintf("%s on %s: %s", p.Name, p.Spec.NodeName, state))
		}
		last = fmt.Sprintf("%d running on amd64 of %d; not yet: %v", running, len(pods.Items), bad)
		return running == 6 && len(pods.Items) == 6, nil
	})
	if err != nil {
		t.Fatalf("pods after the patch: %v; last: %s", err, last)
	}
}

func TestApplyRefusesHelmRelease(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "helm")
	img := pushAmd64Only(t, env, "patch/chart")
	deploys := env.Client.AppsV1().Deployments(ns)
	d := deployment(ns, "shop", img, 1,
		map[string]string{"app.kubernetes.io/managed-by": "Helm"},
		map[string]string{"meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": ns})
	if _, err := deploys.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	out, _, code := archfit(ctx, t, env, "patch", "deployment/shop", "-n", ns, "--apply")
	if code != cli.ExitFailure {
		t.Errorf("--apply on a Helm release: exit %d, want %d", code, cli.ExitFailure)
	}
	for _, want := range []string{"managed by Helm", "values of Helm release " + ns + "/shop", "affinity:", "- amd64"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal lacks %q", want)
		}
	}
	got, err := deploys.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := archRequirement(got); r != nil {
		t.Fatalf("a Helm-managed Deployment was patched without --force: %v", r)
	}

	out, _, code = archfit(ctx, t, env, "patch", "deployment/shop", "-n", ns, "--apply", "--force")
	if code != cli.ExitOK || !strings.Contains(out, "patched") {
		t.Fatalf("--apply --force: exit %d, output %q", code, out)
	}
	if got, err = deploys.Get(ctx, "shop", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := archRequirement(got); len(r) != 1 || r[0] != "In amd64" {
		t.Errorf("after --force: %v, want [In amd64]", r)
	}
}

func TestApplyBarePodIsNeverDeleted(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "pod")
	img := pushAmd64Only(t, env, "patch/pod")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo"},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: img}},
			TerminationGracePeriodSeconds: ptr.To[int64](1),
		},
	}
	created, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := archfit(ctx, t, env, "patch", "pod/solo", "-n", ns, "--apply")
	if code != cli.ExitFailure {
		t.Errorf("--apply on a bare Pod: exit %d, want %d", code, cli.ExitFailure)
	}
	if !strings.Contains(errOut, "must be recreated") {
		t.Errorf("stderr does not say the pod must be recreated")
	}
	for _, want := range []string{"kind: Pod", "name: solo", "- amd64"} {
		if !strings.Contains(out, want) {
			t.Errorf("the printed manifest lacks %q", want)
		}
	}
	if strings.Contains(out, "nodeName:") || strings.Contains(out, "resourceVersion:") {
		t.Errorf("the printed manifest keeps nodeName or resourceVersion")
	}
	got, err := env.Client.CoreV1().Pods(ns).Get(ctx, "solo", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		t.Fatal("the pod was deleted")
	case err != nil:
		t.Fatal(err)
	case got.UID != created.UID || got.DeletionTimestamp != nil:
		t.Errorf("the pod was replaced or is being deleted")
	case got.Spec.Affinity != nil:
		t.Errorf("the pod was changed: %+v", got.Spec.Affinity)
	}
}

// A JSON patch computed from one version of the object must not land on
// another: the API server rejects it and Apply says the object changed.
func TestApplyRefusesConcurrentEdit(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "race")
	deploys := env.Client.AppsV1().Deployments(ns)
	if _, err := deploys.Create(ctx, deployment(ns, "web", env.Registry+"/patch/none:v1", 0, nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dc, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.Client.Discovery()))
	a := &apply.Applier{Client: dc, Mapper: mapper}
	live, err := a.Get(ctx, object.Ref{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := remedy.Patch(live, []string{"amd64"})
	if err != nil {
		t.Fatal(err)
	}

	// Someone else sets an affinity in between.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deploys.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}},
			}}},
		}}
		_, err = deploys.Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := a.DryRun(ctx, live, res); !errors.Is(err, apply.ErrChanged) {
		t.Errorf("DryRun after a concurrent edit: %v, want ErrChanged", err)
	}
	if _, err := a.Apply(ctx, live, res); !errors.Is(err, apply.ErrChanged) {
		t.Errorf("Apply after a concurrent edit: %v, want ErrChanged", err)
	}
	d, err := deploys.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	terms := d.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || terms[0].MatchExpressions[0].Key != "topology.kubernetes.io/zone" {
		t.Errorf("the concurrent edit was overwritten: %+v", terms)
	}
}
