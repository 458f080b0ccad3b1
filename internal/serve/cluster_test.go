package serve_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/serve"
	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

var cluster testenv.Shared

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &cluster)) }

// running is a started archfit serve --install.
type running struct {
	webhook, metrics string
	stop             func()
	done             chan error
}

// startServe runs archfit serve --install in this process, scoped to the
// test's namespace, and stops it (and uninstalls) when the test ends.
func startServe(t testing.TB, env *testenv.Env, ns string, edit func(*serve.Config)) *running {
	t.Helper()
	cacheDir := t.TempDir()
	cfg := serve.Config{
		REST: env.Config, Mode: serve.ModeEnforce, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Namespace: "archfit-system", Service: "archfit", WebhookName: "archfit-" + ns, Install: true,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
		GateDeadline:      time.Minute, Retries: 3, Identity: "test",
		Keychain: authn.NewMultiKeychain(),
		Log:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		NewResolver: func(nodes ...specs.Platform) (*image.Resolver, error) {
			return image.NewResolver(image.WithNodes(nodes...), image.WithCacheDir(cacheDir), image.WithVerifier(verify.Verifier),
				image.WithRegistryClient(registry.New(registry.WithRetry(1, time.Second, 100*time.Millisecond))))
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	ready := make(chan [2]string, 1)
	cfg.Ready = func(w, m string) { ready <- [2]string{w, m} }
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	r := &running{done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	stopped := false
	r.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-r.done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}
	t.Cleanup(func() {
		r.stop()
		if _, err := serve.Uninstall(context.Background(), env.Client, cfg.WebhookName); err != nil {
			t.Errorf("uninstall: %v", err)
		}
	})
	select {
	case a := <-ready:
		r.webhook, r.metrics = a[0], a[1]
	case err := <-r.done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("serve not ready within a minute")
	}
	if cfg.Install {
		webhookCalledAtOnce(t, env, ns, r.metrics)
	}
	return r
}

// webhookCalledAtOnce checks what --install promises once it says it is
// serving: the API server already calls the webhook it registered (it does
// once its configuration cache has it; a pod created 7 ms after the
// registration used to be admitted unreviewed). One server-side dry-run
// pod, no retry: it must be reviewed. No pod is made, none is reported.
func webhookCalledAtOnce(t testing.TB, env *testenv.Env, ns, metrics string) {
	t.Helper()
	before := admissionReviews(t, metrics)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "first-"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: env.Registry + "/serve/first:v1"}}}}
	if _, err := env.Client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if got := admissionReviews(t, metrics) - before; got != 1 {
		t.Fatalf("the first pod after serve said it was ready got %d reviews, want 1", got)
	}
}

// admissionReviews is how many pod reviews the server has answered.
func admissionReviews(t testing.TB, metrics string) int {
	for _, line := range strings.Split(scrape(t, metrics), "\n") {
		if v, ok := strings.CutPrefix(line, "archfit_admission_duration_seconds_count "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func archOf(t *testing.T, env *testenv.Env) map[string]string {
	m := map[string]string{}
	for _, s := range env.Twin.Nodes() {
		m[s.Name] = s.Arch
	}
	return m
}

// waitPods waits until the pods with label app=name are n, and ok accepts
// every one.
func waitPods(ctx context.Context, t *testing.T, env *testenv.Env, ns, app string, n int, timeout time.Duration, ok func(corev1.Pod) error) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	var last error
	err := testenv.Poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, nil
		}
		pods = nil
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if len(pods) != n {
			last = fmt.Errorf("%d pods, want %d", len(pods), n)
			return false, nil
		}
		for _, p := range pods {
			if err := ok(p); err != nil {
				last = fmt.Errorf("pod %s on %q: %w", p.Name, p.Spec.NodeName, err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var b strings.Builder
		for _, p := range pods {
			fmt.Fprintf(&b, "\n  %s node=%q gates=%v phase=%s affinity=%v", p.Name, p.Spec.NodeName, p.Spec.SchedulingGates, p.Status.Phase, p.Spec.Affinity != nil)
		}
		t.Fatalf("waiting for pods of %s: %v; last: %v%s", app, err, last, b.String())
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Spec.NodeName < pods[j].Spec.NodeName })
	return pods
}

func runningReady(p corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return fmt.Errorf("phase %s", p.Status.Phase)
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil || !s.Ready {
			return fmt.Errorf("container %s not running and ready", s.Name)
		}
	}
	return nil
}

func events(ctx context.Context, t *testing.T, env *testenv.Env, ns, reason string) []corev1.Event {
	t.Helper()
	list, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.Reason == reason && e.Source.Component == serve.Component {
			out = append(out, e)
		}
	}
	return out
}

func waitEvent(ctx context.Context, t *testing.T, env *testenv.Env, ns, reason, contains string) corev1.Event {
	t.Helper()
	var got corev1.Event
	err := testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		for _, e := range events(ctx, t, env, ns, reason) {
			if strings.Contains(e.Message, contains) {
				got = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event containing %q: %v", reason, contains, err)
	}
	return got
}

// An amd64-only Deployment spread over both pools ends with every pod
// Running on amd64 and no manual patch; a multi-arch one still spreads.
func TestEnforceKeepsSingleArchDeploymentOnAmd64(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-enforce")
	arch := archOf(t, env)
	single := env.Registry + "/serve/single:v1"
	multi := env.Registry + "/serve/multi:v1"
	testenv.Push(t, single, testimage.App("linux/amd64", "amd64"))
	testenv.Push(t, multi, testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	srv := startServe(t, env, ns, nil)

	deploys := env.Client.AppsV1().Deployments(ns)
	if _, err := deploys.Create(ctx, testenv.SpreadDeployment(ns, "single", single, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(ctx, t, env, ns, "single", 6, 2*time.Minute, func(p corev1.Pod) error {
		if a := arch[p.Spec.NodeName]; a != "amd64" {
			return fmt.Errorf("on %q (%s)", p.Spec.NodeName, a)
		}
		return runningReady(p)
	})
	for _, p := range pods {
		if got := p.Annotations[serve.PinnedAnnotation]; got != "amd64" {
			t.Errorf("pod %s: annotation %s=%q, want amd64", p.Name, serve.PinnedAnnotation, got)
		}
		if len(p.Spec.SchedulingGates) > 0 {
			t.Errorf("pod %s still gated: %v", p.Name, p.Spec.SchedulingGates)
		}
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || !slices.ContainsFunc(terms[0].MatchExpressions, func(r corev1.NodeSelectorRequirement) bool {
			return r.Key == "kubernetes.io/arch" && r.Operator == corev1.NodeSelectorOpIn && slices.Equal(r.Values, []string{"amd64"})
		}) {
			t.Errorf("pod %s: affinity terms %+v, want kubernetes.io/arch In [amd64]", p.Name, terms)
		}
	}
	// The Deployment itself was not touched: archfit changes pods.
	d, err := deploys.Get(ctx, "single", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Spec.Affinity != nil {
		t.Errorf("the Deployment's template got an affinity: %+v", d.Spec.Template.Spec.Affinity)
	}
	waitEvent(ctx, t, env, ns, "ArchPinned", `container "app"`)

	// The image is known now: a new pod is pinned at admission, not gated.
	if _, err := deploys.Create(ctx, testenv.SpreadDeployment(ns, "again", single, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(ctx, t, env, ns, "again", 1, time.Minute, func(p corev1.Pod) error {
		if len(p.Spec.SchedulingGates) > 0 || p.Annotations[serve.PinnedAnnotation] != "amd64" {
			return fmt.Errorf("gates %v, annotations %v", p.Spec.SchedulingGates, p.Annotations)
		}
		return runningReady(p)
	})

	if _, err := deploys.Create(ctx, testenv.SpreadDeployment(ns, "multi", multi, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods = waitPods(ctx, t, env, ns, "multi", 6, 2*time.Minute, runningReady)
	archs := map[string]int{}
	for _, p := range pods {
		archs[arch[p.Spec.NodeName]]++
		if _, ok := p.Annotations[serve.PinnedAnnotation]; ok || p.Spec.Affinity != nil {
			t.Errorf("multi-arch pod %s was constrained: annotations %v affinity %+v", p.Name, p.Annotations, p.Spec.Affinity)
		}
	}
	if archs["amd64"] == 0 || archs["arm64"] == 0 {
		t.Errorf("multi-arch pods by arch %v, want both", archs)
	}
	m := scrape(t, srv.metrics)
	for _, want := range []string{`archfit_admission_decisions_total{mode="enforce",outcome="pinned"}`, `archfit_admission_decisions_total{mode="enforce",outcome="gated"}`,
		`outcome="unchanged"}`, "archfit_admission_duration_seconds_count", `archfit_image_cache_lookups_total{result="hit"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func scrape(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// An amd64-only DaemonSet with --patch-owners: its template gets the
// affinity, its pods run on every amd64 node, and none ever starts on
// arm64.
func TestPatchOwnersKeepsDaemonSetOffArm64(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-ds")
	arch := archOf(t, env)
	img := env.Registry + "/serve/agent:v1"
	testenv.Push(t, img, testimage.App("linux/amd64", "amd64"))
	startServe(t, env, ns, func(c *serve.Config) { c.PatchOwners = true })

	labels := map[string]string{"app": "agent"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: img}},
					TerminationGracePeriodSeconds: ptr.To[int64](1)},
			},
		},
	}
	if _, err := env.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Watch every pod of the DaemonSet the whole time: none on arm64 may
	// ever have a started or failed container.
	bad := make(chan string, 100)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		for wctx.Err() == nil {
			list, err := env.Client.CoreV1().Pods(ns).List(wctx, metav1.ListOptions{LabelSelector: "app=agent"})
			if err == nil {
				for _, p := range list.Items {
					if arch[p.Spec.NodeName] != "arm64" {
						continue
					}
					for _, s := range p.Status.ContainerStatuses {
						if s.RestartCount > 0 || s.State.Running != nil || s.State.Terminated != nil || s.State.Waiting != nil && s.State.Waiting.Reason != "ContainerCreating" {
							select {
							case bad <- fmt.Sprintf("%s on %s: %+v", p.Name, p.Spec.NodeName, s.State):
							default:
							}
						}
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	waitPods(ctx, t, env, ns, "agent", 3, 2*time.Minute, func(p corev1.Pod) error {
		if a := arch[p.Spec.NodeName]; a != "amd64" {
			return fmt.Errorf("on %q (%s)", p.Spec.NodeName, a)
		}
		return runningReady(p)
	})
	got, err := env.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	aff := got.Spec.Template.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		t.Fatalf("DaemonSet template not patched: %+v", aff)
	}
	if mf := got.ManagedFields; !slices.ContainsFunc(mf, func(e metav1.ManagedFieldsEntry) bool { return e.Manager == "archfit" }) {
		t.Errorf("no managedFields entry of archfit: %+v", mf)
	}
	waitEvent(ctx, t, env, ns, "ArchPatched", "amd64")

	// A Helm-managed DaemonSet is not patched: the event says where the
	// change belongs, as patch --apply would.
	helm := ds.DeepCopy()
	helm.Name = "helm-agent"
	helm.Labels = map[string]string{"app.kubernetes.io/managed-by": "Helm"}
	helm.Annotations = map[string]string{"meta.helm.sh/release-name": "agents", "meta.helm.sh/release-namespace": ns}
	helm.Spec.Selector.MatchLabels = map[string]string{"app": "helm-agent"}
	helm.Spec.Template.Labels = map[string]string{"app": "helm-agent"}
	if _, err := env.Client.AppsV1().DaemonSets(ns).Create(ctx, helm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, env, ns, "ArchNotPatched", "Helm")
	got, err = env.Client.AppsV1().DaemonSets(ns).Get(ctx, "helm-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Template.Spec.Affinity != nil {
		t.Errorf("the Helm-managed DaemonSet was patched: %+v", got.Spec.Template.Spec.Affinity)
	}
	wcancel()
	select {
	case s := <-bad:
		t.Fatalf("a DaemonSet pod started on arm64: %s", s)
	default:
	}
}

// An image that cannot be read leaves its pod gated no longer than the
// retries allow (well within the deadline), with an event.
func TestUnreadableImageIsUngated(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-unread")
	startServe(t, env, ns, func(c *serve.Config) { c.GateDeadline = 20 * time.Second; c.Retries = 2 })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost", Labels: map[string]string{"app": "ghost"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: env.Registry + "/serve/does-not-exist:v1"}}},
	}
	start := time.Now()
	created, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Spec.SchedulingGates) != 1 || created.Spec.SchedulingGates[0].Name != serve.Gate {
		t.Fatalf("created pod's gates %v, want %s", created.Spec.SchedulingGates, serve.Gate)
	}
	waitPods(ctx, t, env, ns, "ghost", 1, 40*time.Second, func(p corev1.Pod) error {
		if len(p.Spec.SchedulingGates) > 0 {
			return fmt.Errorf("still gated")
		}
		if p.Spec.NodeName == "" {
			return fmt.Errorf("not scheduled")
		}
		return nil
	})
	took := time.Since(start)
	if took > 25*time.Second {
		t.Errorf("ungated after %s, deadline 20s", took)
	}
	t.Logf("ungated and scheduled %s after creation", took.Round(time.Millisecond))
	waitEvent(ctx, t, env, ns, "ArchUngated", "could not be read")
}

// With archfit stopped (its webhook still registered), pods are admitted
// unchanged: failurePolicy Ignore.
func TestStoppedServeStillAdmits(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-stopped")
	srv := startServe(t, env, ns, nil)
	srv.stop()
	if _, err := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "archfit-"+ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("the webhook configuration should stay registered: %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: env.Registry + "/serve/whatever:v1"}}},
	}
	start := time.Now()
	got, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("pod not admitted with archfit down: %v", err)
	}
	if len(got.Spec.SchedulingGates) > 0 || got.Spec.Affinity != nil {
		t.Errorf("pod changed although archfit is down: %+v", got.Spec)
	}
	t.Logf("admitted in %s with the webhook down", time.Since(start).Round(time.Millisecond))
}

// Observe mode changes nothing, and says what enforce would have done:
// events, metrics and /report. The arm64 pods crash, and the crash events
// carry diagnose's root cause.
func TestObserveChangesNothing(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-observe")
	arch := archOf(t, env)
	img := env.Registry + "/serve/observed:v1"
	testenv.Push(t, img, testimage.App("linux/amd64", "amd64"))
	srv := startServe(t, env, ns, func(c *serve.Config) { c.Mode = serve.ModeObserve })
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, testenv.SpreadDeployment(ns, "web", img, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(ctx, t, env, ns, "web", 6, 2*time.Minute, func(p corev1.Pod) error {
		if p.Spec.NodeName == "" {
			return fmt.Errorf("not scheduled")
		}
		return nil
	})
	onArm := 0
	for _, p := range pods {
		if len(p.Spec.SchedulingGates) > 0 || p.Spec.Affinity != nil || p.Annotations[serve.PinnedAnnotation] != "" {
			t.Errorf("observe mode changed pod %s: gates %v affinity %+v", p.Name, p.Spec.SchedulingGates, p.Spec.Affinity)
		}
		if arch[p.Spec.NodeName] == "arm64" {
			onArm++
		}
	}
	if onArm == 0 {
		t.Fatalf("no pod on arm64: the spread should put some there")
	}
	waitEvent(ctx, t, env, ns, "ArchWouldPin", "kubernetes.io/arch in (amd64)")
	crash := waitEvent(ctx, t, env, ns, "ArchCrash", "wrong-arch-binary")
	t.Logf("crash event: %s", crash.Message)
	code, body := getReport(t, srv.webhook, env.Config.BearerToken)
	if code != http.StatusOK {
		t.Fatalf("GET /report with an admin's token: %d %s", code, body)
	}
	var rep serve.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	pinned := 0
	for _, e := range rep.Entries {
		if e.Outcome == serve.OutcomePinned && e.Mode == serve.ModeObserve && slices.Equal(e.Allowed, []string{"amd64"}) {
			pinned++
		}
	}
	if pinned == 0 {
		t.Errorf("the report has no would-pin entry: %+v", rep)
	}
}

// getReport GETs /report from archfit's HTTPS port with a bearer token
// ("": none).
func getReport(t *testing.T, addr, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+serve.ReportPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The serving certificate is the test's ephemeral CA's; what is tested
	// here is who may read the report.
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see above
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// /report names pods and images: it is served on the HTTPS port only, to
// a token the cluster authenticates and authorizes for GET /report; never
// on the plain metrics port.
func TestReportNeedsAuthorization(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-report")
	srv := startServe(t, env, ns, func(c *serve.Config) { c.Mode = serve.ModeObserve })
	if code, _ := getReport(t, srv.webhook, ""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	if code, _ := getReport(t, srv.webhook, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("with a bad token: %d, want 401", code)
	}
	// A service account nobody granted anything.
	sa, err := env.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := getReport(t, srv.webhook, tok.Status.Token); code != http.StatusForbidden {
		t.Errorf("with an unprivileged service account's token: %d, want 403", code)
	}
	// Granted get on /report, it reads it.
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "archfit-report-" + ns},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{serve.ReportPath}, Verbs: []string{"get"}}}}
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa.Name}}}
	if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	// The denial is remembered for 10 s.
	err = testenv.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		code, _ := getReport(t, srv.webhook, tok.Status.Token)
		return code == http.StatusOK, nil
	})
	if err != nil {
		t.Errorf("granted get on /report, the service account still cannot read it: %v", err)
	}
	resp, err := http.Get("http://" + srv.metrics + serve.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/report on the plain metrics port: %d, want 404", resp.StatusCode)
	}
}

// --uninstall removes the webhook and every archfit.io/arch gate.
func TestUninstallRemovesGates(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-uninstall")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"},
		Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{{Name: "example.com/other"}, {Name: serve.Gate}},
			Containers: []corev1.Container{{Name: "app", Image: env.Registry + "/serve/whatever:v1"}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := serve.Uninstall(ctx, env.Client, "archfit-absent")
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Errorf("ungated %d pods, want at least 1", n)
	}
	got, err := env.Client.CoreV1().Pods(ns).Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []corev1.PodSchedulingGate{{Name: "example.com/other"}}; !slices.Equal(got.Spec.SchedulingGates, want) {
		t.Errorf("gates %v, want %v (only archfit's removed)", got.Spec.SchedulingGates, want)
	}
}

// A registry that accepts connections and never answers: the pod is
// ungated at the deadline, and kept on the fallback architecture.
func TestSilentRegistryUngatedAtDeadlineWithFallback(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-silent")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	arch := archOf(t, env)
	const deadline = 8 * time.Second
	startServe(t, env, ns, func(c *serve.Config) { c.GateDeadline = deadline; c.Retries = 100; c.FallbackArch = "amd64" })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "silent", Labels: map[string]string{"app": "silent"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: l.Addr().String() + "/silent/app:v1"}}},
	}
	start := time.Now()
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitPods(ctx, t, env, ns, "silent", 1, 30*time.Second, func(p corev1.Pod) error {
		if len(p.Spec.SchedulingGates) > 0 {
			return fmt.Errorf("still gated")
		}
		if p.Spec.NodeName == "" {
			return fmt.Errorf("not scheduled")
		}
		return nil
	})[0]
	took := time.Since(start)
	t.Logf("ungated and scheduled %s after creation (deadline %s)", took.Round(time.Millisecond), deadline)
	if took < deadline-time.Second || took > deadline+5*time.Second {
		t.Errorf("ungated after %s, want about the deadline %s", took, deadline)
	}
	if a := arch[got.Spec.NodeName]; a != "amd64" || got.Annotations[serve.PinnedAnnotation] != "amd64" {
		t.Errorf("on %s (%s), annotation %q: want the fallback amd64", got.Spec.NodeName, a, got.Annotations[serve.PinnedAnnotation])
	}
	waitEvent(ctx, t, env, ns, "ArchUngated", "fallback architecture amd64")
}

// A private image is read with the namespace's pull secret, which the
// pods get from their service account.
func TestPrivateImageReadWithServiceAccountPullSecret(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-private")
	arch := archOf(t, env)
	img := env.Registry + "/private/serve/api:v1"
	testenv.Push(t, img, testimage.App("linux/amd64", "amd64"))
	auth := base64.StdEncoding.EncodeToString([]byte(testenv.RegistryUser + ":" + testenv.RegistryPassword))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, env.Registry, auth)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	if _, err := env.Client.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	startServe(t, env, ns, func(c *serve.Config) {
		// Credentials go over plain HTTP only to a registry named
		// insecure (--insecure-registry).
		c.NewResolver = func(nodes ...specs.Platform) (*image.Resolver, error) {
			return image.NewResolver(image.WithNodes(nodes...), image.WithCacheDir(cacheDir), image.WithVerifier(verify.Verifier),
				image.WithRegistryClient(registry.New(registry.WithInsecureRegistries(env.Registry), registry.WithRetry(1, time.Second, 100*time.Millisecond))))
		}
	})
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, testenv.SpreadDeployment(ns, "private", img, 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(ctx, t, env, ns, "private", 3, 2*time.Minute, func(p corev1.Pod) error {
		if a := arch[p.Spec.NodeName]; a != "amd64" || p.Annotations[serve.PinnedAnnotation] != "amd64" {
			return fmt.Errorf("on %q (%s), annotations %v", p.Spec.NodeName, a, p.Annotations)
		}
		return nil
	})
}

// Two replicas: both serve the webhook, one leads the controller; when it
// stops, the other takes over and gated pods are still released.
func TestLeaderElection(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-leader")
	arch := archOf(t, env)
	leaseNS := "archfit-" + ns
	a := startServe(t, env, ns, func(c *serve.Config) { c.LeaderElect, c.Identity, c.Namespace = true, "replica-a", leaseNS })
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), leaseNS, metav1.DeleteOptions{})
	})
	holder := func() string {
		l, err := env.Client.CoordinationV1().Leases(leaseNS).Get(ctx, serve.LeaseName, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	if err := testenv.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) { return holder() == "replica-a", nil }); err != nil {
		t.Fatalf("replica-a, alone, does not lead: %v", err)
	}
	// b registers the webhook at itself (the last --install wins) and
	// waits for the lease.
	startServe(t, env, ns, func(c *serve.Config) { c.LeaderElect, c.Identity, c.Namespace = true, "replica-b", leaseNS })
	pinned := func(app, img string) {
		if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, testenv.SpreadDeployment(ns, app, img, 3), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPods(ctx, t, env, ns, app, 3, 2*time.Minute, func(p corev1.Pod) error {
			if a := arch[p.Spec.NodeName]; a != "amd64" || p.Annotations[serve.PinnedAnnotation] != "amd64" {
				return fmt.Errorf("on %q (%s), annotations %v", p.Spec.NodeName, a, p.Annotations)
			}
			return nil
		})
	}
	img1, img2 := env.Registry+"/serve/leader:v1", env.Registry+"/serve/leader:v2"
	testenv.Push(t, img1, testimage.App("linux/amd64", "amd64"))
	testenv.Push(t, img2, testimage.Must(testimage.Spec{Platform: "linux/amd64", Entrypoint: []string{"/app"}, Env: []string{"V=2"},
		Layers: [][]testimage.File{{{Path: "/app", Data: testimage.ELF("amd64")}}}}.Build()))
	// The webhook is b's, the controller a's: both are at work.
	pinned("one", img1)
	// b, which does not lead, learnt the image its webhook gated: it pins
	// the next pod at admission.
	err := testenv.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img1}}}}
		got, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return len(got.Spec.SchedulingGates) == 0 && got.Annotations[serve.PinnedAnnotation] == "amd64", nil
	})
	if err != nil {
		t.Fatalf("the non-leader's webhook never pinned a known image at admission: %v", err)
	}
	if h := holder(); h != "replica-a" {
		t.Fatalf("leader %q, want replica-a still", h)
	}
	a.stop()
	if err := testenv.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) { return holder() == "replica-b", nil }); err != nil {
		t.Fatalf("replica-b did not take over: %v", err)
	}
	pinned("two", img2)
}

// In the cluster (no --install, no --cert-dir) archfit keeps its CA and
// serving certificate in a Secret and writes the CA bundle into the
// webhook configuration the chart made; a second replica uses the same.
func TestSelfManagedCertificate(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-certs") // archfit's own namespace here
	name := "archfit-" + ns
	// What the chart applies: the Service reference, no caBundle, and a
	// selector that matches nothing (no Service runs in the test cluster).
	wh := serve.Webhook(name, ns, &metav1.LabelSelector{MatchLabels: map[string]string{"archfit.io/none": "x"}},
		admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "archfit", Path: ptr.To(serve.WebhookPath)}})
	if _, err := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, wh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := func(id string) {
		startServe(t, env, ns, func(c *serve.Config) {
			c.Install, c.Namespace, c.WebhookName, c.Identity, c.NamespaceSelector = false, ns, name, id, nil
		})
	}
	start("one")
	var bundle []byte
	err := testenv.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		got, err := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		bundle = got.Webhooks[0].ClientConfig.CABundle
		return len(bundle) > 0, nil
	})
	if err != nil {
		t.Fatalf("no CA bundle written: %v", err)
	}
	sec, err := env.Client.CoreV1().Secrets(ns).Get(ctx, "archfit-serving-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["ca.crt"]) != string(bundle) {
		t.Error("the webhook's CA bundle is not the Secret's")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("unreadable bundle")
	}
	blk, _ := pem.Decode(sec.Data["tls.crt"])
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "archfit." + ns + ".svc"}); err != nil {
		t.Errorf("serving certificate does not verify for the Service: %v", err)
	}
	// A second replica keeps the same certificate.
	rv := sec.ResourceVersion
	start("two")
	again, err := env.Client.CoreV1().Secrets(ns).Get(ctx, "archfit-serving-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != rv {
		t.Errorf("the second replica rewrote the Secret")
	}
	t.Cleanup(func() {
		_ = env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
	})
}

// Without --patch-owners a DaemonSet that would fail on a pool gets an
// event and the at-risk metric; nothing is changed.
func TestDaemonSetAtRiskReported(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-ds-risk")
	img := env.Registry + "/serve/risky-agent:v1"
	testenv.Push(t, img, testimage.App("linux/amd64", "amd64"))
	srv := startServe(t, env, ns, nil) // enforce, no --patch-owners
	labels := map[string]string{"app": "risky"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "risky"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: img}}, TerminationGracePeriodSeconds: ptr.To[int64](1)}}},
	}
	if _, err := env.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(ctx, t, env, ns, "ArchAtRisk", "arm64")
	if e.InvolvedObject.Kind != "DaemonSet" || e.InvolvedObject.Name != "risky" {
		t.Errorf("event on %+v, want the DaemonSet", e.InvolvedObject)
	}
	want := fmt.Sprintf(`archfit_daemonset_at_risk{namespace=%q,name="risky",excluded="arm64"} 1`, ns)
	if m := scrape(t, srv.metrics); !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
	got, err := env.Client.AppsV1().DaemonSets(ns).Get(ctx, "risky", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Template.Spec.Affinity != nil {
		t.Errorf("DaemonSet patched without --patch-owners: %+v", got.Spec.Template.Spec.Affinity)
	}
	list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=risky"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if len(p.Spec.SchedulingGates) > 0 || p.Annotations[serve.PinnedAnnotation] != "" {
			t.Errorf("DaemonSet pod %s changed: gates %v annotations %v", p.Name, p.Spec.SchedulingGates, p.Annotations)
		}
	}
}

// The webhook's matchConditions keep the API server from calling archfit
// for pods it leaves alone anyway (bound to a node, annotated
// archfit.io/ignore: "true"); every other pod is still reviewed.
func TestMatchConditionsSkipCalls(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "serve-match")
	srv := startServe(t, env, ns, nil)
	reviews := func() int { return admissionReviews(t, srv.metrics) }
	hold := []corev1.PodSchedulingGate{{Name: "archfit.io/test-hold"}}
	mk := func(name string, edit func(*corev1.Pod)) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.PodSpec{SchedulingGates: hold, Containers: []corev1.Container{{Name: "app", Image: env.Registry + "/serve/none:v1"}}}}
		if edit != nil {
			edit(p)
		}
		if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before := reviews()
	mk("bound", func(p *corev1.Pod) { p.Spec.SchedulingGates, p.Spec.NodeName = nil, "nowhere" })
	mk("opted-out", func(p *corev1.Pod) { p.Annotations = map[string]string{serve.IgnoreKey: "true"} })
	mk("waiver", func(p *corev1.Pod) { p.Annotations = map[string]string{serve.IgnoreKey: "single-arch-at-risk: reason"} })
	mk("plain", nil)
	if got := reviews() - before; got != 2 {
		t.Errorf("%d reviews for a bound, an opted-out, a waived and a plain pod; want 2 (the waived and the plain)", got)
	}
}
