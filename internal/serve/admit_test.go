package serve

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

// fixture is a Server without a cluster: nodes and known images set by
// hand, images read from an in-process registry by the real resolver.
type fixture struct {
	s   *Server
	reg string
}

func newFixture(t testing.TB, mode Mode, nodes []*corev1.Node, images map[string]any) *fixture {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	reg := strings.TrimPrefix(srv.URL, "http://")
	for repo, obj := range images {
		ref, err := name.ParseReference(reg + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		switch o := obj.(type) {
		case v1.Image:
			err = remote.Write(ref, o)
		case v1.ImageIndex:
			err = remote.WriteIndex(ref, o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{REST: &rest.Config{Host: "https://127.0.0.1:1"}, Mode: mode, Namespace: "archfit",
		NewResolver: func(nodes ...specs.Platform) (*image.Resolver, error) {
			return image.NewResolver(image.WithNodes(nodes...), image.WithVerifier(verify.Verifier))
		}})
	if err != nil {
		t.Fatal(err)
	}
	v := &nodeView{byName: map[string]*cluster.Node{}}
	for _, n := range nodes {
		cn := cluster.NodeOf(n)
		v.nodes = append(v.nodes, cn)
		v.byName[n.Name] = cn
		if !slices.ContainsFunc(v.platforms, func(p specs.Platform) bool { return p.Architecture == cn.Platform.Architecture }) {
			v.platforms = append(v.platforms, cn.Platform)
		}
	}
	s.nodes.Store(v)
	return &fixture{s: s, reg: reg}
}

// learn reads images as the controller does and keeps what it learnt.
func (f *fixture) learn(t testing.TB, pod *corev1.Pod) {
	t.Helper()
	d := f.s.decidePod(pod, false)
	res, err := f.s.cfg.NewResolver(f.s.nodes.Load().platforms...)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range d.Unknown {
		rep := res.Inspect(context.Background(), q)
		if rep.Error != nil {
			t.Fatalf("reading %s: %+v", q.Ref, rep.Error)
		}
		f.s.knowledge.put(q, credID(pod), rep)
	}
}

func node(name, arch string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"kubernetes.io/arch": arch, "kubernetes.io/os": "linux"}},
		Spec:   corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "containerd://2.1.4"}}}
}

func mixed(taints ...corev1.Taint) []*corev1.Node {
	return []*corev1.Node{node("a1", "amd64"), node("a2", "amd64"), node("r1", "arm64", taints...), node("r2", "arm64", taints...)}
}

func podOf(ns string, images ...string) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "web-", Labels: map[string]string{"app": "web"}}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: img})
	}
	return p
}

func review(t testing.TB, p *corev1.Pod) *admissionv1.AdmissionRequest {
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Namespace: p.Namespace, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
}

// admitted applies the response's patch to the pod, as the API server does.
func admitted(t testing.TB, p *corev1.Pod, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("pod refused: %+v", resp.Result)
	}
	if resp.Patch == nil {
		return p
	}
	doc, _ := json.Marshal(p)
	out, err := applyJSONPatch(doc, resp.Patch)
	if err != nil {
		t.Fatalf("patch %s: %v", resp.Patch, err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func archReq(p *corev1.Pod) [][]string {
	var out [][]string
	if p.Spec.Affinity == nil || p.Spec.Affinity.NodeAffinity == nil || p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	for _, term := range p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		var vs []string
		for _, r := range term.MatchExpressions {
			if r.Key == "kubernetes.io/arch" && r.Operator == corev1.NodeSelectorOpIn {
				vs = append(vs, r.Values...)
			}
		}
		sort.Strings(vs)
		out = append(out, vs)
	}
	return out
}

func TestAdmit(t *testing.T) {
	archTaint := corev1.Taint{Key: "kubernetes.io/arch", Value: "arm64", Effect: corev1.TaintEffectNoSchedule}
	images := map[string]any{
		"amd:1":   testimage.App("linux/amd64", "amd64"),
		"arm:1":   testimage.MultiArch("linux/arm64/v8"),
		"multi:1": testimage.MultiArch("linux/amd64", "linux/arm64/v8"),
		// An index entry that says arm64 but holds an amd64 binary: the
		// verified image runs on amd64 only.
		"liar:1": testimage.Index(testimage.For(testimage.App("linux/amd64", "amd64"), "linux/amd64"),
			testimage.For(testimage.App("linux/arm64/v8", "amd64"), "linux/arm64/v8")),
	}
	type tc struct {
		name    string
		mode    Mode
		nodes   []*corev1.Node
		pod     func(reg string) *corev1.Pod
		learn   bool
		outcome Outcome
		// want: the arch values of every term after admission; nil: none.
		want        [][]string
		gated       bool
		tolerations int
	}
	cases := []tc{
		{name: "single-arch image pinned", pod: func(r string) *corev1.Pod { return podOf("shop", r+"/amd:1") }, learn: true,
			outcome: OutcomePinned, want: [][]string{{"amd64"}}},
		{name: "mislabeled entry: verified binary decides", pod: func(r string) *corev1.Pod { return podOf("shop", r+"/liar:1") }, learn: true,
			outcome: OutcomePinned, want: [][]string{{"amd64"}}},
		{name: "multi-arch image unchanged", pod: func(r string) *corev1.Pod { return podOf("shop", r+"/multi:1") }, learn: true,
			outcome: OutcomeUnchanged},
		{name: "unknown image gated", pod: func(r string) *corev1.Pod { return podOf("shop", r+"/amd:1") },
			outcome: OutcomeGated, gated: true},
		{name: "sidecar narrows: intersection of containers", pod: func(r string) *corev1.Pod { return podOf("shop", r+"/multi:1", r+"/arm:1") }, learn: true,
			outcome: OutcomePinned, want: [][]string{{"arm64"}}},
		{name: "tainted arm pool gets its toleration", nodes: mixed(archTaint), pod: func(r string) *corev1.Pod { return podOf("shop", r+"/arm:1") }, learn: true,
			outcome: OutcomePinned, want: [][]string{{"arm64"}}, tolerations: 1},
		{name: "merged into every existing term", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
					{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
				}}}}
			return p
		}, learn: true, outcome: OutcomePinned, want: [][]string{{"amd64"}, {"amd64"}}},
		{name: "pinned to an arch the image cannot run: conflict, no rewrite", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
			return p
		}, learn: true, outcome: OutcomeConflict},
		{name: "already pinned: unchanged", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "amd64"}
			return p
		}, learn: true, outcome: OutcomeUnchanged},
		{name: "waived by annotation", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.Annotations = map[string]string{IgnoreKey: "single-arch-at-risk: emulated on arm64 by qemu on purpose"}
			return p
		}, learn: true, outcome: OutcomeWaived},
		{name: "opt-out label", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.Labels[IgnoreKey] = "true"
			return p
		}, learn: true, outcome: OutcomeSkipped},
		{name: "kube-system skipped", pod: func(r string) *corev1.Pod { return podOf("kube-system", r+"/amd:1") }, outcome: OutcomeSkipped},
		{name: "nodeName skipped", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.Spec.NodeName = "r1"
			return p
		}, outcome: OutcomeSkipped},
		{name: "DaemonSet pod without --patch-owners left alone", pod: func(r string) *corev1.Pod {
			p := podOf("shop", r+"/amd:1")
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "x", Controller: ptr.To(true)}}
			return p
		}, learn: true, outcome: OutcomeDaemonSet},
		{name: "observe mode changes nothing", mode: ModeObserve, pod: func(r string) *corev1.Pod { return podOf("shop", r+"/amd:1") }, learn: true,
			outcome: OutcomePinned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == "" {
				mode = ModeEnforce
			}
			nodes := c.nodes
			if nodes == nil {
				nodes = mixed()
			}
			f := newFixture(t, mode, nodes, images)
			p := c.pod(f.reg)
			if c.learn {
				f.learn(t, p)
			}
			before := f.s.report.snapshot().Counts
			resp := f.s.Admit(review(t, p))
			got := admitted(t, p, resp)
			after := f.s.report.snapshot()
			if c.outcome == OutcomeSkipped {
				if len(after.Entries) != 0 || resp.Patch != nil {
					t.Fatalf("out of scope pod judged: %+v, patch %s", after.Entries, resp.Patch)
				}
				return
			}
			if after.Counts[c.outcome] != before[c.outcome]+1 {
				t.Fatalf("outcome counts %v, want one more %s; entries %+v", after.Counts, c.outcome, after.Entries)
			}
			if mode == ModeObserve {
				if resp.Patch != nil {
					t.Fatalf("observe mode patched: %s", resp.Patch)
				}
				return
			}
			if diff := archReq(got); !slices.EqualFunc(diff, c.want, slices.Equal) {
				t.Errorf("arch requirement per term %v, want %v (patch %s)", diff, c.want, resp.Patch)
			}
			if g := hasGate(got); g != c.gated {
				t.Errorf("gated %v, want %v", g, c.gated)
			}
			if n := len(got.Spec.Tolerations); n != c.tolerations {
				t.Errorf("%d tolerations, want %d: %+v", n, c.tolerations, got.Spec.Tolerations)
			}
			if c.outcome == OutcomePinned && got.Annotations[PinnedAnnotation] == "" {
				t.Errorf("no %s annotation", PinnedAnnotation)
			}
			if c.outcome != OutcomePinned && c.outcome != OutcomeGated && resp.Patch != nil {
				t.Errorf("outcome %s but a patch: %s", c.outcome, resp.Patch)
			}
		})
	}
}

// A server-side dry run (kubectl create --dry-run=server) gets the same
// answer as the real create, and leaves no row in /report: no pod is made.
func TestAdmitDryRunLeavesNoReport(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), map[string]any{"amd:1": testimage.App("linux/amd64", "amd64")})
	p := podOf("shop", f.reg+"/amd:1")
	f.learn(t, p)
	dry := review(t, p)
	dry.DryRun = ptr.To(true)
	dresp := f.s.Admit(dry)
	if n := len(f.s.report.snapshot().Entries); n != 0 {
		t.Fatalf("a dry run left %d report entries", n)
	}
	resp := f.s.Admit(review(t, p))
	if string(dresp.Patch) != string(resp.Patch) || dresp.Allowed != resp.Allowed {
		t.Errorf("dry run answered %s (allowed %v), the create %s (allowed %v)", dresp.Patch, dresp.Allowed, resp.Patch, resp.Allowed)
	}
	if got := archReq(admitted(t, p, dresp)); len(got) != 1 || len(got[0]) != 1 || got[0][0] != "amd64" {
		t.Errorf("dry run pinned to %v, want amd64", got)
	}
	if n := len(f.s.report.snapshot().Entries); n != 1 {
		t.Errorf("the create left %d report entries, want 1", n)
	}
}

// When full, knowledge evicts the image used least recently, not the one
// read first: an image every pod of a busy workload uses stays known.
func TestKnowledgeEvictsLeastRecentlyUsed(t *testing.T) {
	k := newKnowledge(time.Hour, 3)
	now := time.Unix(1000, 0)
	k.now = func() time.Time { now = now.Add(time.Second); return now }
	rep := &image.Report{Architectures: []string{"amd64"}}
	q := func(n string) image.Request { return image.Request{Ref: "r.example/" + n + ":1"} }
	k.put(q("hot"), "", rep) // read first
	k.put(q("b"), "", rep)
	k.put(q("c"), "", rep)
	if k.get(q("hot"), "") == nil { // and used since
		t.Fatal("hot not known")
	}
	k.put(q("d"), "", rep)
	if k.get(q("hot"), "") == nil {
		t.Error("the most recently used image was evicted")
	}
	if k.get(q("b"), "") != nil {
		t.Error("the least recently used image was kept")
	}
	if k.size() != 3 {
		t.Errorf("size %d, want 3", k.size())
	}
	// Reading an image again refreshes it in place.
	k.put(q("c"), "", rep)
	k.put(q("e"), "", rep)
	if k.get(q("c"), "") == nil || k.get(q("d"), "") != nil || k.size() != 3 {
		t.Errorf("after refreshing c and adding e: c %v, d %v, size %d", k.get(q("c"), "") != nil, k.get(q("d"), "") != nil, k.size())
	}
}

// A tag is trusted for ImageTTL; a digest for good.
func TestKnowledgeExpiry(t *testing.T) {
	k := newKnowledge(time.Minute, 2)
	now := time.Unix(1000, 0)
	k.now = func() time.Time { return now }
	rep := &image.Report{Architectures: []string{"amd64"}}
	tag := image.Request{Ref: "r.example/a:1"}
	dig := image.Request{Ref: "r.example/a@sha256:" + strings.Repeat("a", 64)}
	k.put(tag, "", rep)
	k.put(dig, "", rep)
	if k.get(tag, "") == nil || k.get(dig, "") == nil {
		t.Fatal("fresh entries not found")
	}
	if k.get(tag, "ns/secret") != nil {
		t.Fatal("an entry read with no credentials answered for another credential set")
	}
	now = now.Add(2 * time.Minute)
	if k.get(tag, "") != nil {
		t.Error("a tag is trusted past the TTL")
	}
	if k.get(dig, "") == nil {
		t.Error("a digest expired")
	}
	k.put(image.Request{Ref: "r.example/b:1"}, "", rep)
	if k.size() != 2 {
		t.Errorf("size %d, want the bound 2", k.size())
	}
	k.put(image.Request{Ref: "r.example/c:1"}, "", &image.Report{Error: &image.Failure{Reason: "unreachable"}})
	if k.get(image.Request{Ref: "r.example/c:1"}, "") != nil {
		t.Error("a failure was kept")
	}
}

func TestMetricsText(t *testing.T) {
	m := newServeMetrics(func() float64 { return 3 })
	m.observe(m.admissionSeconds, 0.0007)
	m.add(m.decisions, 2, "enforce", "pinned")
	m.add(m.inspectionErrors, 1, `r"eg`, "not\nfound")
	var b strings.Builder
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`archfit_admission_duration_seconds_bucket{le="0.0005"} 0`,
		`archfit_admission_duration_seconds_bucket{le="0.001"} 1`,
		`archfit_admission_duration_seconds_bucket{le="+Inf"} 1`,
		`archfit_admission_duration_seconds_count 1`,
		`archfit_admission_decisions_total{mode="enforce",outcome="pinned"} 2`,
		`archfit_inspection_errors_total{registry="r\"eg",reason="not\nfound"} 1`,
		`archfit_image_cache_entries 3`,
		"# TYPE archfit_admission_duration_seconds histogram",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestCertificateRenewal(t *testing.T) {
	s := &Server{cfg: Config{Service: "archfit", Namespace: "archfit"}}
	sec := &corev1.Secret{}
	t0 := time.Now()
	if err := s.renew(sec, t0); err != nil {
		t.Fatal(err)
	}
	if due(sec.Data, t0) {
		t.Fatal("a fresh certificate is due")
	}
	leaf, _ := firstCert(sec.Data[secretCert])
	if !slices.Contains(leaf.DNSNames, "archfit.archfit.svc") {
		t.Errorf("DNS names %v lack the Service's", leaf.DNSNames)
	}
	// Serving certificate due after two thirds of its life: same CA.
	later := t0.Add(serveRenewAfter + time.Hour)
	if !due(sec.Data, later) {
		t.Fatal("not due after two thirds of its life")
	}
	oldCA := string(sec.Data[secretCACert])
	if err := s.renew(sec, later); err != nil {
		t.Fatal(err)
	}
	if string(sec.Data[secretCACert]) != oldCA {
		t.Error("the CA changed on a serving renewal")
	}
	// CA within a year of expiry: a new one, the old kept in the bundle.
	caLate := t0.Add(caLifetime - caRenewBefore + time.Hour)
	if err := s.renew(sec, caLate); err != nil {
		t.Fatal(err)
	}
	if string(sec.Data[secretCACert]) == oldCA {
		t.Fatal("CA not renewed")
	}
	if n := strings.Count(string(sec.Data[secretCA]), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("bundle has %d certificates, want the new and the old CA", n)
	}
}

func applyJSONPatch(doc, patch []byte) ([]byte, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	return p.Apply(doc)
}

// Waivers from the ConfigMap, in audit's format, leave a pod alone; a
// ConfigMap that does not parse is an error (the old waivers are kept).
func TestWaiversConfigMap(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), map[string]any{"amd:1": testimage.App("linux/amd64", "amd64")})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "archfit", Name: "waivers"}, Data: map[string]string{".archfit.yaml": `
waivers:
- code: single-arch-at-risk
  namespace: shop
  kind: Deployment
  name: legacy-*
  reason: runs under qemu on arm64 by design
`}}
	ws, err := parseWaivers(cm)
	if err != nil {
		t.Fatal(err)
	}
	f.s.waivers.Store(&ws)
	for _, c := range []struct {
		owner string
		want  Outcome
	}{{"legacy-api", OutcomeWaived}, {"api", OutcomePinned}} {
		p := podOf("shop", f.reg+"/amd:1")
		p.Labels["pod-template-hash"] = "abc12"
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: c.owner + "-abc12", UID: "u", Controller: ptr.To(true)}}
		f.learn(t, p)
		if d := f.s.decidePod(p, false); d.Outcome != c.want {
			t.Errorf("owner %s: outcome %s (%s), want %s", c.owner, d.Outcome, d.Message, c.want)
		}
	}
	for _, bad := range []string{"waivers:\n- code: '*'\n  reason: all\n", "waivers:\n- code: single-arch-at-risk\n", "nope: 1\n"} {
		cm.Data[".archfit.yaml"] = bad
		if _, err := parseWaivers(cm); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestServeAdmissionHTTP sends reviews as the API server does, over HTTP:
// the one-pass decoding of a pod's review answers what Admit answers, and
// a review whose object is not a pod archfit can read is allowed.
func TestServeAdmissionHTTP(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), map[string]any{"amd:1": testimage.App("linux/amd64", "amd64")})
	p := podOf("shop", f.reg+"/amd:1")
	p.Annotations = map[string]string{"team": "a/b"}
	f.learn(t, p)
	srv := httptest.NewServer(f.s.webhookMux())
	defer srv.Close()
	post := func(body []byte) (int, *admissionv1.AdmissionReview) {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+WebhookPath, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, &out
	}
	req := review(t, p)
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
	code, got := post(body)
	want := f.s.Admit(review(t, p))
	if code != 200 || got.Response == nil || got.Response.UID != req.UID || !got.Response.Allowed {
		t.Fatalf("HTTP %d, response %+v", code, got.Response)
	}
	if string(got.Response.Patch) != string(want.Patch) || string(want.Patch) == "" {
		t.Errorf("patch over HTTP %s, Admit's %s", got.Response.Patch, want.Patch)
	}
	if got := archReq(admitted(t, p, got.Response)); !slices.EqualFunc(got, [][]string{{"amd64"}}, slices.Equal) {
		t.Errorf("admitted pod's arch terms %v", got)
	}
	// An object that does not decode as a pod: allowed, unchanged.
	bad := strings.Replace(string(body), `"containers":[`, `"containers":7,"x":[`, 1)
	if code, got := post([]byte(bad)); code != 200 || got.Response == nil || !got.Response.Allowed || got.Response.Patch != nil {
		t.Errorf("unreadable pod: HTTP %d, %+v", code, got.Response)
	}
	if code, _ := post([]byte(`{"kind":"AdmissionReview"}`)); code != 400 {
		t.Errorf("review without a request: HTTP %d, want 400", code)
	}
}

// Waivers name workloads: a pod's owner is inferred as the cluster package
// infers it, so waivers of Rollouts, CronJobs and StatefulSets match their
// pods, not only Deployments'.
func TestWaiversMatchInferredOwners(t *testing.T) {
	f := newFixture(t, ModeEnforce, mixed(), map[string]any{"amd:1": testimage.App("linux/amd64", "amd64")})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "archfit", Name: "waivers"}, Data: map[string]string{".archfit.yaml": `
waivers:
- {code: single-arch-at-risk, kind: Rollout, name: canary, reason: r}
- {code: single-arch-at-risk, kind: CronJob, name: nightly, reason: r}
- {code: single-arch-at-risk, kind: StatefulSet, name: db, reason: r}
- {code: single-arch-at-risk, kind: Deployment, name: web, reason: r}
`}}
	ws, err := parseWaivers(cm)
	if err != nil {
		t.Fatal(err)
	}
	f.s.waivers.Store(&ws)
	ctl := ptr.To(true)
	for _, c := range []struct {
		name   string
		labels map[string]string
		owner  metav1.OwnerReference
		want   object.Ref
		out    Outcome
	}{
		{"rollout", map[string]string{"rollouts-pod-template-hash": "7f9c"}, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "canary-7f9c", Controller: ctl},
			object.Ref{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Namespace: "shop", Name: "canary"}, OutcomeWaived},
		{"cronjob", nil, metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "nightly-29400000", Controller: ctl},
			object.Ref{APIVersion: "batch/v1", Kind: "CronJob", Namespace: "shop", Name: "nightly"}, OutcomeWaived},
		{"statefulset", nil, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ctl},
			object.Ref{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: "shop", Name: "db"}, OutcomeWaived},
		{"deployment", map[string]string{"pod-template-hash": "abc12"}, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc12", Controller: ctl},
			object.Ref{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"}, OutcomeWaived},
		{"job named like a date, not a CronJob's", nil, metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "nightly-20240101", Controller: ctl},
			object.Ref{APIVersion: "batch/v1", Kind: "Job", Namespace: "shop", Name: "nightly-20240101"}, OutcomePinned},
	} {
		p := podOf("shop", f.reg+"/amd:1")
		maps.Copy(p.Labels, c.labels)
		p.OwnerReferences = []metav1.OwnerReference{c.owner}
		f.learn(t, p)
		d := f.s.decidePod(p, false)
		if d.Owner != c.want || d.Outcome != c.out {
			t.Errorf("%s: owner %+v outcome %s, want %+v %s", c.name, d.Owner, d.Outcome, c.want, c.out)
		}
	}
}
