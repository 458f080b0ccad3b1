package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/audit"
)

// WebhookTimeout is the API server's wait for archfit, in seconds: short,
// since a slow answer only delays the pod and then admits it unchanged.
const WebhookTimeout = 5

// Webhook is the MutatingWebhookConfiguration archfit serves: pods on
// CREATE, failurePolicy Ignore, never kube-system, archfit's namespace or
// a pod labelled archfit.io/ignore. clientConfig is the caller's (a url
// for --install, the Service in the chart).
func Webhook(name, namespace string, sel *metav1.LabelSelector, cc admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.MutatingWebhookConfiguration {
	nsSel := &metav1.LabelSelector{}
	if sel != nil {
		nsSel = sel.DeepCopy()
	}
	excluded := []string{"kube-system"}
	if namespace != "" && namespace != "kube-system" {
		excluded = append(excluded, namespace)
	}
	nsSel.MatchExpressions = append(nsSel.MatchExpressions, metav1.LabelSelectorRequirement{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: excluded})
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "archfit"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "pods.archfit.io",
			ClientConfig: cc,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
			FailurePolicy:     ptr.To(admissionregistrationv1.Ignore),
			MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector: nsSel,
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: IgnoreKey, Operator: metav1.LabelSelectorOpDoesNotExist}}},
			MatchConditions:         MatchConditions(),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](WebhookTimeout),
			AdmissionReviewVersions: []string{"v1"},
			// Reinvoked after webhooks that add containers (sidecars).
			ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
}

// MatchConditions keep the API server from calling archfit for pods it
// leaves alone whatever their images (a call costs the API server more CPU
// than evaluating these): pods bound to a node already, and pods annotated
// archfit.io/ignore: "true". They only ever skip pods the webhook would let
// through unchanged; an expression that fails to evaluate skips the call
// (failurePolicy Ignore), which is also what archfit would answer.
func MatchConditions() []admissionregistrationv1.MatchCondition {
	return []admissionregistrationv1.MatchCondition{
		{Name: "not-bound", Expression: `!has(object.spec.nodeName) || object.spec.nodeName == ""`},
		{Name: "not-opted-out", Expression: `!has(object.metadata.annotations) || !("` + IgnoreKey + `" in object.metadata.annotations) || object.metadata.annotations["` + IgnoreKey + `"] != "true"`},
	}
}

// install registers (or updates) the webhook with a url: pointing at addr.
func (s *Server) install(ctx context.Context, addr string) error {
	url := "https://" + addr + WebhookPath
	want := Webhook(s.cfg.WebhookName, s.cfg.Namespace, s.cfg.NamespaceSelector,
		admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: s.certs.caBundle()})
	api := s.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, want, metav1.CreateOptions{})
	case err == nil:
		cur.Webhooks, cur.Labels = want.Webhooks, want.Labels
		_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering webhook %s: %w", want.Name, err)
	}
	return nil
}

// keepCABundle writes the self-managed CA bundle into the webhook
// configuration (made by the chart or manifests) whenever it differs:
// at start and after every rotation.
func (s *Server) keepCABundle(ctx context.Context) {
	sync := func() {
		api := s.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
		cur, err := api.Get(ctx, s.cfg.WebhookName, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				s.cfg.Log.Warn("reading webhook configuration", "name", s.cfg.WebhookName, "error", err)
			}
			return
		}
		bundle := s.certs.caBundle()
		changed := false
		for i := range cur.Webhooks {
			if !bytes.Equal(cur.Webhooks[i].ClientConfig.CABundle, bundle) {
				cur.Webhooks[i].ClientConfig.CABundle = bundle
				changed = true
			}
		}
		if !changed {
			return
		}
		if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			s.cfg.Log.Warn("writing the CA bundle", "name", s.cfg.WebhookName, "error", err)
			return
		}
		s.cfg.Log.Info("CA bundle written", "webhook", s.cfg.WebhookName)
	}
	sync()
	every(ctx, certCheckEvery, sync)
}

// keepWaivers reads the waivers ConfigMap now and every 30 seconds; a
// ConfigMap that does not parse keeps the waivers read before.
func (s *Server) keepWaivers(ctx context.Context) {
	if s.cfg.WaiversConfigMap == "" {
		return
	}
	load := func() {
		cm, err := s.cs.CoreV1().ConfigMaps(s.cfg.Namespace).Get(ctx, s.cfg.WaiversConfigMap, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				s.cfg.Log.Warn("reading waivers", "configmap", s.cfg.WaiversConfigMap, "error", err)
			}
			s.waivers.Store(&[]audit.Waiver{})
			return
		}
		ws, err := parseWaivers(cm)
		if err != nil {
			s.cfg.Log.Warn("waivers not loaded", "configmap", s.cfg.WaiversConfigMap, "error", err)
			return
		}
		s.waivers.Store(&ws)
	}
	load()
	every(ctx, 30*time.Second, load)
}

// parseWaivers reads the .archfit.yaml of a ConfigMap (key .archfit.yaml,
// else config.yaml), with audit's checks.
func parseWaivers(cm *corev1.ConfigMap) ([]audit.Waiver, error) {
	for _, k := range []string{".archfit.yaml", "archfit.yaml", "config.yaml"} {
		if v, ok := cm.Data[k]; ok {
			c, err := audit.ParseConfig([]byte(v), "configmap "+cm.Namespace+"/"+cm.Name+" key "+k)
			if err != nil {
				return nil, err
			}
			return c.Waivers, nil
		}
	}
	return nil, fmt.Errorf("configmap %s/%s has no .archfit.yaml key", cm.Namespace, cm.Name)
}

// Uninstall removes the webhook configuration and archfit's scheduling gate
// from every pod, so that nothing waits for an archfit that is gone.
func Uninstall(ctx context.Context, cs kubernetes.Interface, webhookName string) (int, error) {
	err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, webhookName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("deleting webhook %s: %w", webhookName, err)
	}
	return ungateEvery(ctx, cs)
}

// ungateEvery removes archfit's gate from every pod that has it.
func ungateEvery(ctx context.Context, cs kubernetes.Interface) (int, error) {
	n := 0
	cont := ""
	for {
		list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return n, fmt.Errorf("listing pods: %w", err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			if !hasGate(p) {
				continue
			}
			if err := patchPod(ctx, cs, p, ungateOps(p)); err != nil && !apierrors.IsNotFound(err) {
				return n, fmt.Errorf("ungating %s/%s: %w", p.Namespace, p.Name, err)
			}
			n++
		}
		if cont = list.Continue; cont == "" {
			return n, nil
		}
	}
}

// ungateAll is ungateEvery when this process stops (--install).
func (s *Server) ungateAll(ctx context.Context, why string) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := ungateEvery(ctx, s.cs)
	if err != nil {
		s.cfg.Log.Warn("ungating on exit", "error", err)
	}
	if n > 0 {
		s.cfg.Log.Info("ungated on exit", "pods", n, "why", why)
	}
}

// patchPod sends a JSON patch to a pod.
func patchPod(ctx context.Context, cs kubernetes.Interface, p *corev1.Pod, ops any) error {
	b, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.JSONPatchType, b, metav1.PatchOptions{FieldManager: "archfit"})
	if err != nil && strings.Contains(err.Error(), "testing value") {
		return fmt.Errorf("%w (the pod changed meanwhile)", err)
	}
	return err
}
