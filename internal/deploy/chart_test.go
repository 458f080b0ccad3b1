package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/release"
	"github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests/archfit.yaml from the chart")

var cluster testenv.Shared

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &cluster)) }

const (
	chartDir     = "../../deploy/helm/archfit"
	manifestFile = "../../deploy/manifests/archfit.yaml"
	// The release the plain manifests are rendered as.
	releaseName = "archfit"
	releaseNS   = "archfit"
)

// manifestHeader opens deploy/manifests/archfit.yaml: the chart does not
// create its namespace (helm install --create-namespace does), the plain
// manifests must.
const manifestHeader = `# archfit serve: the Helm chart deploy/helm/archfit rendered with its default values (release
# "archfit", namespace "archfit"). Generated: go test ./internal/deploy -run TestManifests -update
#   kubectl apply -f deploy/manifests/archfit.yaml
# The chart's uninstall hook is left out: before kubectl delete -f, run
#   archfit serve --uninstall     (deletes the webhook configuration, ungates every pod)
apiVersion: v1
kind: Namespace
metadata:
  name: archfit
  labels:
    app.kubernetes.io/name: archfit
`

func renderChart(t *testing.T, namespace string, set ...string) []byte {
	t.Helper()
	out, err := render.HelmChart(t.Context(), chartDir, nil, set, releaseName, namespace)
	if err != nil {
		t.Fatalf("rendering the chart with %q: %v", set, err)
	}
	return out
}

// decode splits rendered YAML into objects.
func decode(t *testing.T, rendered []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decoding the rendered chart: %v", err)
		}
		if m == nil {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// TestManifests holds deploy/manifests/archfit.yaml to the chart: it is the
// chart rendered with its default values. -update rewrites it.
func TestManifests(t *testing.T) {
	want := append([]byte(manifestHeader), withoutHooks(t, renderChart(t, releaseNS))...)
	if *update {
		if err := os.WriteFile(manifestFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatalf("%v (go test ./internal/deploy -run TestManifests -update writes it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("deploy/manifests/archfit.yaml is not the chart rendered with its default values (-want +got); rewrite it with -update and review:\n%s", d)
	}
}

// withoutHooks drops the helm hooks from a render: the uninstall Job must
// not run when the plain manifests are applied.
func withoutHooks(t *testing.T, rendered []byte) []byte {
	t.Helper()
	var out []byte
	for _, doc := range regexp.MustCompile(`(?m)^---\n`).Split(string(rendered), -1) {
		var meta struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("reading a rendered document: %v\n%s", err, doc)
		}
		if strings.TrimSpace(doc) == "" || meta.Metadata.Annotations["helm.sh/hook"] != "" {
			continue
		}
		out = append(out, "---\n"+doc...)
	}
	return out
}

// rendered is a render's objects by kind, typed.
type rendered struct {
	objs                []*unstructured.Unstructured
	deployment          appsv1.Deployment
	webhook             admissionregistrationv1.MutatingWebhookConfiguration
	service             corev1.Service
	pdb                 policyv1.PodDisruptionBudget
	clusterRole, role   rbacv1.ClusterRole // role's rules read into the same shape
	certificate, issuer *unstructured.Unstructured
	configMaps          []string
	// hooks are the helm hooks (the uninstall Job and its account).
	hooks []*unstructured.Unstructured
}

func isHook(o *unstructured.Unstructured) bool { return o.GetAnnotations()["helm.sh/hook"] != "" }

func typed(t *testing.T, objs []*unstructured.Unstructured) rendered {
	t.Helper()
	r := rendered{objs: objs}
	seen := map[string]int{}
	for _, o := range objs {
		if isHook(o) {
			r.hooks = append(r.hooks, o)
			continue
		}
		seen[o.GetKind()]++
		var into any
		switch o.GetKind() {
		case "Deployment":
			into = &r.deployment
		case "MutatingWebhookConfiguration":
			into = &r.webhook
		case "Service":
			into = &r.service
		case "PodDisruptionBudget":
			into = &r.pdb
		case "ClusterRole":
			into = &r.clusterRole
		case "Role":
			into = &r.role
		case "Certificate":
			r.certificate = o
		case "Issuer":
			r.issuer = o
		case "ConfigMap":
			r.configMaps = append(r.configMaps, o.GetName())
		}
		if into != nil {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
				t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	for _, k := range []string{"Deployment", "MutatingWebhookConfiguration", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		if seen[k] != 1 {
			t.Errorf("%d %s objects, want 1", seen[k], k)
		}
	}
	return r
}

func (r rendered) args() []string { return r.deployment.Spec.Template.Spec.Containers[0].Args }

func (r rendered) arg(flag string) (string, bool) {
	for _, a := range r.args() {
		if a == flag {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// rule finds the rule of rules on resource in group.
func rule(rules []rbacv1.PolicyRule, group, resource string, verb string) []rbacv1.PolicyRule {
	var found []rbacv1.PolicyRule
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && (verb == "" || slices.Contains(r.Verbs, verb)) {
			found = append(found, r)
		}
	}
	return found
}

// checkCommon is what every variant of the chart must be: two replicas a
// drain cannot both take, locked down, probed, fail-open webhook that
// never sees kube-system, archfit's namespace or an opted-out pod, and no
// architecture pinned (the image is multi-arch).
func checkCommon(t *testing.T, r rendered, ns string) {
	t.Helper()
	d := r.deployment
	if *d.Spec.Replicas != 2 || r.pdb.Spec.MinAvailable == nil || r.pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("replicas %d, PDB minAvailable %v; want 2 and 1", *d.Spec.Replicas, r.pdb.Spec.MinAvailable)
	}
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	psc, sc := ps.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || !*psc.RunAsNonRoot || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		!*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("security context: pod %+v, container %+v", psc, sc)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %s, readiness %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	if len(ps.TopologySpreadConstraints) == 0 || ps.TopologySpreadConstraints[0].LabelSelector == nil {
		t.Errorf("topology spread: %+v", ps.TopologySpreadConstraints)
	}
	if ps.Affinity != nil || len(ps.NodeSelector) > 0 {
		t.Errorf("the pod is pinned (affinity %+v, nodeSelector %v): the image is multi-arch", ps.Affinity, ps.NodeSelector)
	}
	if v, _ := r.arg("--service"); v != r.service.Name {
		t.Errorf("--service=%s, the Service is %s", v, r.service.Name)
	}
	if v, _ := r.arg("--webhook-name"); v != r.webhook.Name {
		t.Errorf("--webhook-name=%s, the webhook is %s", v, r.webhook.Name)
	}
	ports := map[string]int32{}
	for _, p := range r.service.Spec.Ports {
		ports[p.Name] = p.Port
		if p.Name == "webhook" && p.TargetPort.StrVal != "webhook" {
			t.Errorf("webhook port targets %v", p.TargetPort)
		}
	}
	if ports["webhook"] != 443 || ports["metrics"] == 0 {
		t.Errorf("service ports %v", ports)
	}

	if len(r.webhook.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(r.webhook.Webhooks))
	}
	w := r.webhook.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		*w.TimeoutSeconds > 5 || len(w.ClientConfig.CABundle) != 0 {
		t.Errorf("webhook: failurePolicy %s, sideEffects %s, timeout %d, caBundle %d bytes", *w.FailurePolicy, *w.SideEffects, *w.TimeoutSeconds, len(w.ClientConfig.CABundle))
	}
	if s := w.ClientConfig.Service; s == nil || s.Name != r.service.Name || s.Namespace != ns || *s.Port != 443 {
		t.Errorf("webhook client config %+v", w.ClientConfig)
	}
	if len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) ||
		!slices.Equal(w.Rules[0].Resources, []string{"pods"}) {
		t.Errorf("webhook rules %+v", w.Rules)
	}
	excluded := false
	for _, e := range w.NamespaceSelector.MatchExpressions {
		if e.Key == corev1.LabelMetadataName && e.Operator == metav1.LabelSelectorOpNotIn &&
			slices.Contains(e.Values, "kube-system") && slices.Contains(e.Values, ns) {
			excluded = true
		}
	}
	if !excluded {
		t.Errorf("namespaceSelector %+v does not leave out kube-system and %s", w.NamespaceSelector, ns)
	}
	if sel := w.ObjectSelector; sel == nil || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != "archfit.io/ignore" {
		t.Errorf("objectSelector %+v", w.ObjectSelector)
	}

	// RBAC: no wildcard, nothing that deletes, Secrets never listed, the
	// webhook configuration only by name.
	for _, rr := range append(slices.Clone(r.clusterRole.Rules), r.role.Rules...) {
		for _, v := range rr.Verbs {
			if v == "*" || v == "delete" || v == "deletecollection" || v == "escalate" || v == "bind" || v == "impersonate" {
				t.Errorf("rule %+v grants %s", rr, v)
			}
		}
		if slices.Contains(rr.Resources, "*") || slices.Contains(rr.APIGroups, "*") {
			t.Errorf("rule %+v has a wildcard", rr)
		}
	}
	checkUninstallHook(t, r)
	if rs := rule(r.clusterRole.Rules, "", "secrets", ""); len(rs) != 1 || !slices.Equal(rs[0].Verbs, []string{"get"}) {
		t.Errorf("cluster-wide secrets rules %+v, want get only", rs)
	}
	for _, rr := range rule(r.clusterRole.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "") {
		if !slices.Equal(rr.ResourceNames, []string{r.webhook.Name}) {
			t.Errorf("webhook configuration rule %+v is not limited to %s", rr, r.webhook.Name)
		}
	}
	for _, rr := range r.role.Rules {
		if len(rr.ResourceNames) == 0 && !slices.Equal(rr.Verbs, []string{"create"}) {
			t.Errorf("namespaced rule %+v is not limited by name", rr)
		}
	}
}

// checkUninstallHook: helm uninstall first runs archfit serve --uninstall
// for this release's webhook, with an account that may delete only that
// webhook configuration and ungate pods.
func checkUninstallHook(t *testing.T, r rendered) {
	t.Helper()
	var job batchv1.Job
	var role rbacv1.ClusterRole
	kinds := map[string]bool{}
	for _, o := range r.hooks {
		kinds[o.GetKind()] = true
		if o.GetAnnotations()["helm.sh/hook"] != "pre-delete" {
			t.Errorf("hook %s %s runs at %q", o.GetKind(), o.GetName(), o.GetAnnotations()["helm.sh/hook"])
		}
		var into any
		switch o.GetKind() {
		case "Job":
			into = &job
		case "ClusterRole":
			into = &role
		}
		if into != nil {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(kinds) != 4 || !kinds["Job"] || !kinds["ServiceAccount"] || !kinds["ClusterRole"] || !kinds["ClusterRoleBinding"] {
		t.Fatalf("uninstall hook kinds %v", kinds)
	}
	args := job.Spec.Template.Spec.Containers[0].Args
	if want := []string{"serve", "--uninstall", "--webhook-name=" + r.webhook.Name}; !slices.Equal(args, want) {
		t.Errorf("uninstall Job args %q, want %q", args, want)
	}
	if job.Spec.Template.Spec.ServiceAccountName == r.deployment.Spec.Template.Spec.ServiceAccountName {
		t.Error("the uninstall Job runs as the server's account")
	}
	for _, rr := range role.Rules {
		if slices.Contains(rr.Verbs, "delete") && !slices.Equal(rr.ResourceNames, []string{r.webhook.Name}) {
			t.Errorf("uninstall rule %+v deletes more than the webhook configuration %s", rr, r.webhook.Name)
		}
	}
}

func TestChartVariants(t *testing.T) {
	const ns = "archfit-test"
	t.Run("default", func(t *testing.T) {
		r := typed(t, decode(t, renderChart(t, ns)))
		checkCommon(t, r, ns)
		if v, _ := r.arg("--mode"); v != "observe" {
			t.Errorf("--mode=%s, want observe", v)
		}
		if v, _ := r.arg("--cert-secret"); v != "archfit-serving-cert" {
			t.Errorf("--cert-secret=%q", v)
		}
		for _, f := range []string{"--cert-dir", "--patch-owners", "--fallback-arch", "--waivers-configmap", "--namespace-selector"} {
			if _, ok := r.arg(f); ok {
				t.Errorf("%s given by default: %q", f, r.args())
			}
		}
		if rs := rule(r.role.Rules, "", "secrets", "update"); len(rs) != 1 || !slices.Equal(rs[0].ResourceNames, []string{"archfit-serving-cert"}) {
			t.Errorf("the serving certificate Secret's rule: %+v", rs)
		}
		if rs := rule(r.clusterRole.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update"); len(rs) != 1 {
			t.Error("archfit cannot write its CA bundle into its webhook configuration")
		}
		if rs := rule(r.clusterRole.Rules, "apps", "daemonsets", "patch"); len(rs) != 0 {
			t.Errorf("DaemonSets patched without patchOwners: %+v", rs)
		}
		if r.certificate != nil || r.issuer != nil || len(r.webhook.Annotations) != 0 {
			t.Error("cert-manager objects without certManager.enabled")
		}
	})
	t.Run("enforce", func(t *testing.T) {
		r := typed(t, decode(t, renderChart(t, ns, "mode=enforce", "patchOwners=true", "fallbackArch=amd64", "gateDeadline=90s",
			"namespaceSelector.matchLabels.team=shop", "namespaceSelector.matchExpressions[0].key=tier",
			"namespaceSelector.matchExpressions[0].operator=In", "namespaceSelector.matchExpressions[0].values={web,api}",
			"waivers.config=waivers: []")))
		checkCommon(t, r, ns)
		for flag, want := range map[string]string{"--mode": "enforce", "--fallback-arch": "amd64", "--gate-deadline": "90s",
			"--patch-owners": "", "--waivers-configmap": "archfit-waivers", "--namespace-selector": "team=shop,tier in (web,api)"} {
			if v, ok := r.arg(flag); !ok || v != want {
				t.Errorf("%s=%q (given %v), want %q", flag, v, ok, want)
			}
		}
		if rs := rule(r.clusterRole.Rules, "apps", "daemonsets", "patch"); len(rs) != 1 {
			t.Error("patchOwners without patch on DaemonSets")
		}
		if !slices.Equal(r.configMaps, []string{"archfit-waivers"}) {
			t.Errorf("ConfigMaps %v", r.configMaps)
		}
		if rs := rule(r.role.Rules, "", "configmaps", "get"); len(rs) != 1 || !slices.Equal(rs[0].ResourceNames, []string{"archfit-waivers"}) {
			t.Errorf("waivers rule %+v", rs)
		}
		w := r.webhook.Webhooks[0].NamespaceSelector
		if w.MatchLabels["team"] != "shop" || len(w.MatchExpressions) != 2 {
			t.Errorf("the user's namespaceSelector is not in the webhook's: %+v", w)
		}
	})
	t.Run("certManager", func(t *testing.T) {
		r := typed(t, decode(t, renderChart(t, ns, "certManager.enabled=true")))
		checkCommon(t, r, ns)
		checkCertManager(t, r, ns)
	})
	t.Run("one replica", func(t *testing.T) {
		// A PodDisruptionBudget of minAvailable 1 over one pod would block
		// every drain of its node.
		for _, o := range decode(t, renderChart(t, ns, "replicaCount=1")) {
			if o.GetKind() == "PodDisruptionBudget" {
				t.Error("a PodDisruptionBudget for a single replica")
			}
		}
	})
	// Bad values are refused with the value named, before anything is
	// rendered (values.schema.json).
	for _, bad := range []struct{ set, want string }{
		{"mode=audit", "/mode"},
		{"fallbackArch=s390x", "/fallbackArch"},
		{"gateDeadline=soon", "/gateDeadline"},
		{"image.digest=latest", "/image/digest"},
		{"namespaceSelector.matchExpressions[0].key=tier,namespaceSelector.matchExpressions[0].operator=Gt", "/namespaceSelector/matchExpressions/0/operator"},
		{"webhook.timeoutSeconds=30", "/webhook/timeoutSeconds"},
		{"service.metricsPort=8443", "/service/metricsPort"},
	} {
		t.Run("refused "+bad.set, func(t *testing.T) {
			_, err := render.HelmChart(t.Context(), chartDir, nil, []string{bad.set}, releaseName, ns)
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("%s: %v, want a refusal naming %s", bad.set, err, bad.want)
			}
		})
	}
}

// checkCertManager validates the cert-manager objects by structure (the
// test cluster has no cert-manager CRDs): the Certificate names the
// Secret the pods mount, covers the Service's names, is issued by the
// chart's Issuer, and the webhook asks the CA injector for its CA.
func checkCertManager(t *testing.T, r rendered, ns string) {
	t.Helper()
	c := r.certificate
	if c == nil || r.issuer == nil || c.GetAPIVersion() != "cert-manager.io/v1" || r.issuer.GetAPIVersion() != "cert-manager.io/v1" {
		t.Fatalf("certificate %v, issuer %v", c, r.issuer)
	}
	if v, _ := r.arg("--cert-dir"); v != "/certs" {
		t.Errorf("--cert-dir=%q", v)
	}
	if _, ok := r.arg("--cert-secret"); ok {
		t.Error("--cert-secret with cert-manager")
	}
	secret, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
	mounted := ""
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			mounted = v.Secret.SecretName
		}
	}
	if secret == "" || secret != mounted {
		t.Errorf("the Certificate writes Secret %q, the pods mount %q", secret, mounted)
	}
	dns, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
	if want := r.service.Name + "." + ns + ".svc"; !slices.Contains(dns, want) {
		t.Errorf("dnsNames %v lack %s", dns, want)
	}
	issuer, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name")
	kind, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "kind")
	if issuer != r.issuer.GetName() || kind != "Issuer" {
		t.Errorf("issuerRef %s/%s, the chart's Issuer is %s", kind, issuer, r.issuer.GetName())
	}
	if _, ok, _ := unstructured.NestedMap(r.issuer.Object, "spec", "selfSigned"); !ok {
		t.Errorf("issuer spec %v", r.issuer.Object["spec"])
	}
	if got, want := r.webhook.Annotations["cert-manager.io/inject-ca-from"], ns+"/"+c.GetName(); got != want {
		t.Errorf("inject-ca-from %q, want %q", got, want)
	}
	if rs := rule(r.role.Rules, "", "secrets", ""); len(rs) != 0 {
		t.Errorf("secrets rules in the namespace with cert-manager: %+v", rs)
	}
	if rs := rule(r.clusterRole.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", ""); len(rs) != 0 {
		t.Errorf("webhook configuration rules with cert-manager (the CA injector writes it): %+v", rs)
	}
}

// TestChartDryRun sends every object of each variant to the real API
// server with a server-side dry run: schema, defaulting, validation and
// RBAC's escalation check all run, nothing is stored. cert-manager's and
// prometheus-operator's kinds are not served by the test cluster; they are
// checked by structure (TestChartVariants).
func TestChartDryRun(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, v := range []struct {
		name string
		set  []string
	}{
		{"default", nil},
		{"enforce", []string{"mode=enforce", "patchOwners=true", "fallbackArch=arm64", "waivers.config=waivers: []",
			"namespaceSelector.matchLabels.team=shop", "image.digest=sha256:" + strings.Repeat("ab", 32)}},
		{"certManager", []string{"certManager.enabled=true", "serviceMonitor.enabled=true"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			ns := env.Namespace(ctx, t, "archfit-"+strings.ToLower(v.name))
			objs := decode(t, renderChart(t, ns, v.set...))
			if v.name == "default" {
				// The plain manifests' own Namespace, as kubectl apply sends it.
				objs = append(decode(t, []byte(manifestHeader)), objs...)
			}
			sent := 0
			for _, o := range objs {
				gvk := o.GroupVersionKind()
				switch gvk.Group {
				case "cert-manager.io", "monitoring.coreos.com":
					continue
				}
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Errorf("%s %s: %v", gvk, o.GetName(), err)
					continue
				}
				var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
				if m.Scope.Name() == "namespace" {
					if o.GetNamespace() != ns {
						t.Errorf("%s %s in namespace %q, want the release's %s", gvk.Kind, o.GetName(), o.GetNamespace(), ns)
					}
					ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
				}
				if _, err := ri.Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
					t.Errorf("dry-run create of %s %s: %v", gvk.Kind, o.GetName(), err)
				}
				sent++
			}
			t.Logf("%d objects accepted by the API server (dry run)", sent)
			if sent < 9 {
				t.Errorf("only %d objects sent", sent)
			}
		})
	}
}

// TestChartAudit runs archfit's own audit on its chart against an OCI
// layout of archfit's own image, built from this checkout: the chart must
// come out clean, its image runnable on both pools.
func TestChartAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds archfit's image (binaries cached after the first run)")
	}
	repo, version := chartImage(t)
	tag, err := name.NewTag(repo + ":" + version)
	if err != nil {
		t.Fatal(err)
	}
	idx := ownImage(t)
	dir := filepath.Join(t.TempDir(), "image")
	if err := release.WriteLayout(dir, idx, tag); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	cmd := cli.NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs([]string{"audit", "--helm-chart", chartDir, "--oci-layout", dir, "--no-cache", "-o", "json"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("archfit audit --helm-chart %s: %v (exit %d)\n%s\n%s", chartDir, err, cli.ExitCode(err), out.String(), errOut.String())
	}
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
		Images   []struct {
			Reference string `json:"reference"`
			Entries   []struct {
				Platform   struct{ Architecture string }
				Entrypoint *struct{ Arch, Verdict string }
			} `json:"entries"`
		} `json:"images"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != 0 {
		t.Errorf("findings on archfit's own chart:\n%s", out.String())
	}
	if len(doc.Images) == 0 {
		t.Fatalf("no images in the audit of the chart:\n%s", out.String())
	}
	// The Deployment and the uninstall Job run the same image.
	for _, im := range doc.Images {
		if im.Reference != tag.String() {
			t.Errorf("image %s, want %s", im.Reference, tag)
		}
		var ok []string
		for _, e := range im.Entries {
			if e.Entrypoint != nil && e.Entrypoint.Verdict == "ok" && e.Entrypoint.Arch == e.Platform.Architecture {
				ok = append(ok, e.Platform.Architecture)
			}
		}
		if fmt.Sprint(ok) != "[amd64 arm64]" {
			t.Errorf("%s: entries verified genuine: %v, want amd64 and arm64\n%s", im.Reference, ok, out.String())
		}
	}
}

// chartImage is the image the chart runs by default: values.yaml's
// repository and Chart.yaml's appVersion.
func chartImage(t *testing.T) (repository, version string) {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct{ Repository string } `json:"image"`
	}
	for file, into := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		b, err := os.ReadFile(filepath.Join(chartDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	return values.Image.Repository, chart.AppVersion
}

var built struct {
	sync.Mutex
	idx v1.ImageIndex
}

// ownImage is archfit's image built from this checkout at the chart's
// appVersion, once per test binary (its binaries cached across runs under
// the Go build cache).
func ownImage(t *testing.T) v1.ImageIndex {
	t.Helper()
	if testing.Short() {
		t.Skip("builds archfit's image (binaries cached after the first run)")
	}
	built.Lock()
	defer built.Unlock()
	if built.idx != nil {
		return built.idx
	}
	cache, err := release.DefaultBinaryCache(t.Context())
	if err != nil {
		t.Skip(err)
	}
	root, _ := filepath.Abs("../..")
	begin := time.Now()
	// The version linked in is internal/release's test's, so both tests
	// share the cached binaries.
	idx, err := release.BuildImage(t.Context(), release.ImageOptions{ModuleRoot: root, Version: "v0.0.0-test",
		Epoch: time.Unix(0, 0).UTC(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("archfit's image built in %s", time.Since(begin).Round(time.Millisecond))
	built.idx = idx
	return idx
}

// TestChartRunsOnEveryNode installs the chart for real in the test
// cluster, its image pushed to the cluster's registry, with one replica
// per node (three amd64 and three arm64 nodes, containerd 1.7, 2.1 and
// CRI-O): every pod must pull the right entry and find a binary it can
// run (the node twin checks the ELF against the node), with no
// architecture pinned anywhere. With the webhook registered and nothing
// answering it (the twin runs no processes), a pod elsewhere is still
// admitted: failurePolicy Ignore.
func TestChartRunsOnEveryNode(t *testing.T) {
	env := cluster.Env(t)
	idx := ownImage(t)
	ctx := t.Context()
	_, version := chartImage(t)
	repo := env.Registry + "/archfit/archfit"
	ref, err := name.NewTag(repo + ":" + version)
	if err != nil {
		t.Fatal(err)
	}
	if err := release.Push(ctx, ref, idx); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(ctx, t, "archfit-install")
	objs := decode(t, renderChart(t, ns, "image.repository="+repo, "replicaCount=6",
		"topologySpreadConstraints[0].maxSkew=1", "topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
		"topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"))

	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, o := range objs {
		if isHook(o) {
			continue
		}
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(ns)
		} else {
			name := o.GetName()
			t.Cleanup(func() {
				if err := ri.Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{}); err != nil {
					t.Errorf("deleting %s %s: %v", gvk.Kind, name, err)
				}
			})
		}
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("creating %s %s: %v", gvk.Kind, o.GetName(), err)
		}
	}

	var pods []corev1.Pod
	err = testenv.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + releaseName})
		if err != nil {
			return false, err
		}
		pods = list.Items
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == 6, nil
	})
	nodes := map[string]string{}
	for _, p := range pods {
		var why []string
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				why = append(why, w.Reason+": "+w.Message)
			}
		}
		t.Logf("%s on %s: %s %s", p.Name, p.Spec.NodeName, p.Status.Phase, strings.Join(why, "; "))
		if p.Status.Phase == corev1.PodRunning {
			nodes[p.Spec.NodeName] = p.Spec.NodeName
		}
	}
	if err != nil {
		t.Fatalf("waiting for 6 running archfit pods: %v", err)
	}
	archs := map[string]int{}
	for n := range nodes {
		node, err := env.Client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		archs[node.Labels[corev1.LabelArchStable]]++
	}
	if len(nodes) != 6 || archs["amd64"] != 3 || archs["arm64"] != 3 {
		t.Errorf("running on %d nodes, by arch %v; want all six, three of each", len(nodes), archs)
	}

	// Fail open: the webhook is registered and nothing serves it.
	other := env.Namespace(ctx, t, "archfit-admitted")
	begin := time.Now()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "admitted"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: ref.String()}}}}
	if _, err := env.Client.CoreV1().Pods(other).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a pod with archfit's webhook registered and not answering: %v", err)
	}
	t.Logf("pod admitted in %s with the webhook not answering", time.Since(begin).Round(time.Millisecond))
}
