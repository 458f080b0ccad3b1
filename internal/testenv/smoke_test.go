package testenv_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testenv/twin"
	"github.com/archfit/archfit/internal/testimage"
)

var cluster testenv.Shared

var authnBasic = authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword}

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &cluster)) }

func nodeSpecs(env *testenv.Env) map[string]twin.NodeSpec {
	m := map[string]twin.NodeSpec{}
	for _, s := range env.Twin.Nodes() {
		m[s.Name] = s
	}
	return m
}

// podsOf waits until the Deployment's pods (not terminating) are n, all
// bound, and ok accepts each; it returns them sorted by node.
func podsOf(ctx context.Context, t *testing.T, env *testenv.Env, ns, app string, n int, ok func(corev1.Pod) error) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	var last error
	err := testenv.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			if ctx.Err() == nil {
				last = err
			}
			return false, nil
		}
		pods = list.Items
		live := 0
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				live++
			}
		}
		if live != n || len(list.Items) != n {
			last = fmt.Errorf("%d pods (%d in all), want %d", live, len(list.Items), n)
			return false, nil
		}
		for _, p := range pods {
			if p.Spec.NodeName == "" {
				last = fmt.Errorf("pod %s not scheduled", p.Name)
				return false, nil
			}
			if err := ok(p); err != nil {
				last = fmt.Errorf("pod %s on %s: %w", p.Name, p.Spec.NodeName, err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var b strings.Builder
		for _, p := range pods {
			fmt.Fprintf(&b, "\n  %s on %q deleting=%v phase=%s containers=%+v", p.Name, p.Spec.NodeName, p.DeletionTimestamp != nil, p.Status.Phase, p.Status.ContainerStatuses)
		}
		t.Fatalf("waiting for pods of %s: %v; last: %v%s", app, err, last, b.String())
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Spec.NodeName < pods[j].Spec.NodeName })
	return pods
}

func running(p corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
		return fmt.Errorf("phase %s", p.Status.Phase)
	}
	s := p.Status.ContainerStatuses[0]
	if s.State.Running == nil || !s.Ready {
		return fmt.Errorf("container not running and ready: %+v", s.State)
	}
	return nil
}

func waitingReason(p corev1.Pod) (string, string) {
	if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil {
		return "", ""
	}
	w := p.Status.ContainerStatuses[0].State.Waiting
	return w.Reason, w.Message
}

func TestSingleArchImageOnMixedCluster(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "smoke")
	nodes := nodeSpecs(env)
	image := env.Registry + "/smoke/app:v1"
	testenv.Push(t, image, testimage.App("linux/amd64", "amd64"))

	deploys := env.Client.AppsV1().Deployments(ns)
	if _, err := deploys.Create(ctx, testenv.SpreadDeployment(ns, "web", image, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := podsOf(ctx, t, env, ns, "web", 6, func(p corev1.Pod) error {
		if nodes[p.Spec.NodeName].Arch == "amd64" {
			return running(p)
		}
		reason, _ := waitingReason(p)
		if reason != "CrashLoopBackOff" {
			return fmt.Errorf("waiting reason %q", reason)
		}
		return nil
	})
	used := map[string]bool{}
	for _, p := range pods {
		used[p.Spec.NodeName] = true
	}
	if len(used) != 6 {
		t.Fatalf("pods on %d nodes, want all 6: %v", len(used), used)
	}

	for _, p := range pods {
		node := nodes[p.Spec.NodeName]
		if node.Arch != "arm64" {
			continue
		}
		t.Run(node.Name, func(t *testing.T) {
			s := p.Status.ContainerStatuses[0]
			term := s.LastTerminationState.Terminated
			wantExit, wantLog := int32(255), "exec /app: exec format error\n"
			if strings.HasPrefix(node.Runtime, "cri-o") { // CRI-O runs crun
				wantExit, wantLog = 1, "exec container process `/app`: Exec format error\n"
			}
			if term == nil || term.Reason != "Error" || term.ExitCode != wantExit || s.RestartCount < 1 {
				t.Fatalf("lastState %+v restartCount %d, want terminated Error exit %d, restarts > 0", term, s.RestartCount, wantExit)
			}
			_, msg := waitingReason(p)
			wantMsg := fmt.Sprintf("back-off 10s restarting failed container=app pod=%s_%s(%s)", p.Name, ns, p.UID)
			if msg != wantMsg && !strings.HasPrefix(msg, "back-off ") {
				t.Errorf("waiting message %q, want %q", msg, wantMsg)
			}
			logs, err := env.Client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "app", Previous: true}).DoRaw(ctx)
			if err != nil {
				t.Fatalf("previous logs through the API server: %v", err)
			}
			if string(logs) != wantLog {
				t.Errorf("previous log %q, want %q", logs, wantLog)
			}
			wantEvent(ctx, t, env, ns, p.UID, "BackOff",
				fmt.Sprintf("Back-off restarting failed container app in pod %s_%s(%s)", p.Name, ns, p.UID))
		})
	}

	// The interim fix archfit proposes: require amd64. The controller-manager
	// rolls the Deployment out and every pod ends up Running on amd64.
	patch := `{"spec":{"template":{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":` +
		`{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["amd64"]}]}]}}}}}}}`
	if _, err := deploys.Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	podsOf(ctx, t, env, ns, "web", 6, func(p corev1.Pod) error {
		if a := nodes[p.Spec.NodeName].Arch; a != "amd64" {
			return fmt.Errorf("on a %s node", a)
		}
		return running(p)
	})
	err := testenv.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		d, err := deploys.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 6 &&
			d.Status.ReadyReplicas == 6 && d.Status.AvailableReplicas == 6 && d.Status.Replicas == 6, nil
	})
	if err != nil {
		t.Fatalf("rollout: %v", err)
	}
}

func TestIndexWithoutArm64(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "noarm")
	nodes := nodeSpecs(env)
	image := env.Registry + "/smoke/indexed:v1"
	app := testimage.App("linux/amd64", "amd64")
	idx := testenv.Push(t, image, testimage.Index(testimage.For(app, "linux/amd64"), testimage.Attestation(app)))

	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, testenv.SpreadDeployment(ns, "api", image, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cause := func(node twin.NodeSpec) string {
		switch node.Runtime {
		case "containerd://2.1.4":
			return fmt.Sprintf("rpc error: code = NotFound desc = get image config descriptor: no match for platform in manifest %s: not found", idx)
		case "containerd://1.7.27":
			return fmt.Sprintf(`rpc error: code = NotFound desc = failed to pull and unpack image "%s": no match for platform in manifest: not found`, image)
		default:
			return fmt.Sprintf(`rpc error: code = Unknown desc = choosing an image from manifest list docker://%s: no image found in image index for architecture "arm64", variant "v8", OS "linux"`, image)
		}
	}
	pods := podsOf(ctx, t, env, ns, "api", 6, func(p corev1.Pod) error {
		node := nodes[p.Spec.NodeName]
		if node.Arch == "amd64" {
			return running(p)
		}
		reason, msg := waitingReason(p)
		want := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", image, cause(node))
		if reason != "ImagePullBackOff" || msg != want {
			return fmt.Errorf("waiting %s %q, want ImagePullBackOff %q", reason, msg, want)
		}
		return nil
	})
	for _, p := range pods {
		node := nodes[p.Spec.NodeName]
		if node.Arch != "arm64" {
			continue
		}
		wantEvent(ctx, t, env, ns, p.UID, "Failed", fmt.Sprintf("Failed to pull image %q: %s", image, cause(node)))
		wantEvent(ctx, t, env, ns, p.UID, "BackOff", fmt.Sprintf("Back-off pulling image %q", image))
		// What kubectl logs prints: the kubelet's refusal, through the API server.
		_, err := env.Client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "app"}).Stream(ctx)
		want := fmt.Sprintf(`container "app" in pod %q is waiting to start: trying and failing to pull image`, p.Name)
		if !apierrors.IsBadRequest(err) || err.Error() != want {
			t.Errorf("logs of %s: %v, want BadRequest %q", p.Name, err, want)
		}
	}
}

func wantEvent(ctx context.Context, t *testing.T, env *testenv.Env, ns string, uid types.UID, reason, message string) {
	t.Helper()
	var seen []string
	err := testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(uid)})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			if e.Reason == reason && e.Message == message && e.Source.Component == "kubelet" {
				return true, nil
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no event %s %q; seen:\n%s", reason, message, strings.Join(seen, "\n"))
	}
}

// pinned is a bare pod on one node.
func pinned(ns, name, node string, init []corev1.Container, main ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
			InitContainers:                init,
			Containers:                    main,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
		},
	}
}

func waitPod(ctx context.Context, t *testing.T, env *testenv.Env, ns, name string, ok func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	var last error
	err := testenv.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		p, err = env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		last = ok(p)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("pod %s: %v; last: %v", name, err, last)
	}
	return p
}

func TestInitContainerBlocksMain(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "init")
	amd := env.Registry + "/smoke/init-amd64:v1"
	multi := env.Registry + "/smoke/multi:v1"
	testenv.Push(t, amd, testimage.App("linux/amd64", "amd64"))
	testenv.Push(t, multi, testimage.MultiArch("linux/amd64", "linux/arm64"))

	pod := pinned(ns, "migrate", "arm64-containerd21",
		[]corev1.Container{{Name: "migrate", Image: amd}},
		corev1.Container{Name: "app", Image: multi})
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(ctx, t, env, ns, "migrate", func(p *corev1.Pod) error {
		if len(p.Status.InitContainerStatuses) != 1 || p.Status.InitContainerStatuses[0].State.Waiting == nil ||
			p.Status.InitContainerStatuses[0].State.Waiting.Reason != "CrashLoopBackOff" {
			return fmt.Errorf("init statuses %+v", p.Status.InitContainerStatuses)
		}
		return nil
	})
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
	if s := p.Status.ContainerStatuses[0]; s.State.Waiting == nil || s.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("main container %+v, want waiting PodInitializing", s.State)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodInitialized && (c.Status != corev1.ConditionFalse || c.Message != "containers with incomplete status: [migrate]") {
			t.Errorf("Initialized condition %+v", c)
		}
	}
	logs, err := env.Client.CoreV1().Pods(ns).GetLogs("migrate", &corev1.PodLogOptions{Container: "migrate", Previous: true}).DoRaw(ctx)
	if err != nil || string(logs) != "exec /app: exec format error\n" {
		t.Errorf("previous log of the init container: %q, %v", logs, err)
	}
}

func TestPullFailuresThatAreNotArch(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "notarch")
	missing := env.Registry + "/smoke/app:does-not-exist"
	private := env.Registry + "/private/app:v1"
	testenv.Push(t, env.Registry+"/smoke/app:v1", testimage.App("linux/amd64", "amd64"))
	r, _ := name.ParseReference(private)
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64"), remote.WithAuth(&authnBasic)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ pod, node, image, want string }{
		{"missing-c17", "amd64-containerd17", missing, fmt.Sprintf(
			`rpc error: code = NotFound desc = failed to pull and unpack image "%s": failed to resolve reference "%s": %s: not found`, missing, missing, missing)},
		{"missing-crio", "amd64-crio", missing, fmt.Sprintf(
			`rpc error: code = Unknown desc = reading manifest does-not-exist in %s/smoke/app: manifest unknown: Unknown manifest`, env.Registry)},
		{"private-c21", "amd64-containerd21", private, fmt.Sprintf(
			`rpc error: code = Unknown desc = failed to pull and unpack image "%s": failed to resolve image: pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials`, private)},
	} {
		pod := pinned(ns, tc.pod, tc.node, nil, corev1.Container{Name: "app", Image: tc.image})
		if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", tc.image, tc.want)
		waitPod(ctx, t, env, ns, tc.pod, func(p *corev1.Pod) error {
			if reason, msg := waitingReason(*p); reason != "ImagePullBackOff" || msg != want {
				return fmt.Errorf("waiting %s %q, want %q", reason, msg, want)
			}
			return nil
		})
	}
}
