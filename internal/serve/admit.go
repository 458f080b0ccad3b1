package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/remedy"
)

var clientScheme = scheme.Scheme

// maxReviewBytes bounds an admission review body (the API server's own
// request limit is 3 MiB; a pod is far smaller).
const maxReviewBytes = 3 << 20

func (s *Server) webhookMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(WebhookPath, s.serveAdmission)
	mux.HandleFunc("GET "+ReportPath, s.authorized(ReportPath, s.report.serve))
	return mux
}

// podReview is the part of an admission.k8s.io/v1 AdmissionReview archfit
// reads, with the object decoded as a pod in the same pass: one decoding
// of the body, not one of the review and another of its object. Fields
// archfit does not read (oldObject, userInfo, options) are skipped.
type podReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID         types.UID               `json:"uid"`
		Kind        metav1.GroupVersionKind `json:"kind"`
		SubResource string                  `json:"subResource,omitempty"`
		Namespace   string                  `json:"namespace,omitempty"`
		Operation   admissionv1.Operation   `json:"operation"`
		Object      *corev1.Pod             `json:"object,omitempty"`
	} `json:"request"`
}

func (s *Server) serveAdmission(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxReviewBytes+1)); err != nil || buf.Len() > maxReviewBytes {
		http.Error(w, "unreadable or too large admission review", http.StatusRequestEntityTooLarge)
		return
	}
	var resp *admissionv1.AdmissionResponse
	var review podReview
	if err := json.Unmarshal(buf.Bytes(), &review); err == nil && review.Request != nil {
		q := review.Request
		resp = s.admitPod(&admissionv1.AdmissionRequest{UID: q.UID, Kind: q.Kind, SubResource: q.SubResource, Namespace: q.Namespace, Operation: q.Operation}, q.Object)
	} else {
		// Not a pod's review (or not one archfit can decode as such):
		// the general path answers it, allowed.
		var full admissionv1.AdmissionReview
		if err := json.Unmarshal(buf.Bytes(), &full); err != nil || full.Request == nil {
			http.Error(w, "not an admission.k8s.io/v1 AdmissionReview", http.StatusBadRequest)
			return
		}
		resp = s.Admit(full.Request)
	}
	out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp}
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(out); err != nil {
		http.Error(w, "encoding the review", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// bodyBuffers hold review bodies and answers between requests.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBuffer returns a buffer to the pool unless one large review grew it.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 256<<10 {
		bodyBuffers.Put(b)
	}
}

// Admit answers one admission request. It always allows the pod: archfit
// only adds constraints (or a gate) and never refuses a pod.
func (s *Server) Admit(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	var pod *corev1.Pod
	if req.Kind.Kind == "Pod" && req.Operation == admissionv1.Create && req.SubResource == "" {
		pod = new(corev1.Pod)
		if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
			s.cfg.Log.Warn("admission: unreadable pod", "namespace", req.Namespace, "error", err)
			s.metrics.add(s.metrics.decisions, 1, string(s.cfg.Mode), string(OutcomeError))
			return &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
		}
	}
	return s.admitPod(req, pod)
}

// admitPod answers a request whose object is decoded (nil when the
// request is not a pod's creation).
func (s *Server) admitPod(req *admissionv1.AdmissionRequest, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if pod != nil && s.isProbe(pod) {
		return resp // --install's own check that the webhook is called
	}
	start := time.Now()
	outcome := OutcomeSkipped
	defer func() {
		s.metrics.since(s.metrics.admissionSeconds, start)
		s.metrics.add(s.metrics.decisions, 1, string(s.cfg.Mode), string(outcome))
	}()
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.SubResource != "" || pod == nil {
		return resp
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if why := s.outOfScope(pod); why != "" {
		return resp
	}
	d := s.decidePod(pod, true)
	outcome = d.Outcome
	if len(d.Unknown) > 0 {
		// Mark the ones not known yet as misses (the hits were counted),
		// and learn them: the controller runs in the leader only, and
		// this replica's next admission should know them.
		s.metrics.add(s.metrics.cacheLookups, float64(len(d.Unknown)), "miss")
		s.learn(pod, d.Unknown)
	}
	if req.DryRun == nil || !*req.DryRun {
		// A dry run (kubectl --dry-run=server) is answered in full but
		// leaves no pod behind, so it leaves no row in /report either.
		s.report.add(pod, d, s.cfg.Mode)
	}
	if s.cfg.Mode != ModeEnforce {
		return resp
	}
	var ops []remedy.Operation
	switch d.Outcome {
	case OutcomePinned:
		ops = append(d.Ops, annotationOps(pod, PinnedAnnotation, strings.Join(d.Allowed, ","))...)
	case OutcomeGated:
		if !hasGate(pod) {
			ops = gateOps(pod)
		}
	}
	if len(ops) == 0 {
		return resp
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		outcome = OutcomeError
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	if d.Outcome == OutcomePinned {
		resp.Warnings = []string{"archfit: " + truncate(d.Message, 200)}
	}
	return resp
}

// decidePod judges a pod with what admission knows (counting hits when
// count is set), and treats DaemonSet pods as the flags say.
func (s *Server) decidePod(pod *corev1.Pod, count bool) Decision {
	nv, ws, gen := s.nodes.Load(), s.waivers.Load(), s.knowledge.generation()
	key, keyed := keyOf(pod)
	d, hit := s.memo.get(key, nv, ws, gen)
	if hit {
		if count {
			s.metrics.add(s.metrics.cacheLookups, float64(len(pod.Spec.InitContainers)+len(pod.Spec.Containers)), "hit")
		}
	} else {
		cred := credID(pod)
		d = decide(pod, nv.nodes, func(q image.Request) *image.Report {
			rep := s.knowledge.get(q, cred)
			if count && rep != nil {
				s.metrics.add(s.metrics.cacheLookups, 1, "hit")
			}
			return rep
		}, *ws)
		if keyed && d.Outcome != OutcomeGated {
			s.memo.put(key, d, nv, ws, gen)
		}
	}
	d.Owner = ownerOf(pod)
	if isDaemonSetPod(pod) && !(s.cfg.PatchOwners && s.cfg.Mode == ModeEnforce) {
		// An affinity only leaves a DaemonSet pod Pending: without owner
		// patching the controller raises an event on the DaemonSet.
		switch d.Outcome {
		case OutcomePinned:
			d.Outcome, d.Ops = OutcomeDaemonSet, nil
			d.Message = "DaemonSet pod not changed (its owner is patched only with --patch-owners): " + d.Message
		case OutcomeGated:
			d.Outcome = OutcomeDaemonSet
		}
	}
	return d
}

// outOfScope says why archfit leaves a pod alone, "" when it judges it.
func (s *Server) outOfScope(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return "nodeName is set: the scheduler is bypassed"
	}
	return s.excluded(pod)
}

// excluded says why archfit keeps away from a pod whatever its state
// (namespace, opt-out), "" when it may look at it: a crash of a scheduled
// pod is explained when the pod is not excluded.
func (s *Server) excluded(pod *corev1.Pod) string {
	switch {
	case pod.Namespace == "kube-system":
		return "kube-system"
	case pod.Namespace == s.cfg.Namespace:
		return "archfit's own namespace"
	case ignored(pod.Labels[IgnoreKey], true) || ignored(pod.Annotations[IgnoreKey], false):
		return IgnoreKey
	}
	if !s.nsSel.Empty() {
		o, ok, _ := s.nsLister.GetByKey(pod.Namespace)
		ns, _ := o.(*corev1.Namespace)
		if !ok || ns == nil || !s.nsSel.Matches(labels.Set(ns.Labels)) {
			return "namespace not selected"
		}
	}
	return ""
}

// ignored reads the opt-out: a label of any value but "false", an
// annotation "true" (other annotation values are waivers).
func ignored(v string, label bool) bool {
	v = strings.TrimSpace(strings.ToLower(v))
	if label {
		return v != "" && v != "false"
	}
	return v == "true"
}

func isDaemonSetPod(p *corev1.Pod) bool {
	for _, or := range p.OwnerReferences {
		if or.Controller != nil && *or.Controller && or.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

func hasGate(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == Gate })
}

func gateOps(p *corev1.Pod) []remedy.Operation {
	g := corev1.PodSchedulingGate{Name: Gate}
	if len(p.Spec.SchedulingGates) == 0 {
		return []remedy.Operation{remedy.NewOp("add", "/spec/schedulingGates", []corev1.PodSchedulingGate{g})}
	}
	return []remedy.Operation{remedy.NewOp("add", "/spec/schedulingGates/-", g)}
}

// ungateOps remove archfit's gate, guarded by a test of its position.
func ungateOps(p *corev1.Pod) []remedy.Operation {
	for i, g := range p.Spec.SchedulingGates {
		if g.Name == Gate {
			path := fmt.Sprintf("/spec/schedulingGates/%d", i)
			return []remedy.Operation{remedy.NewOp("test", path, g), remedy.NewOp("remove", path, nil)}
		}
	}
	return nil
}

func annotationOps(p *corev1.Pod, key, value string) []remedy.Operation {
	if len(p.Annotations) == 0 {
		return []remedy.Operation{remedy.NewOp("add", "/metadata/annotations", map[string]string{key: value})}
	}
	return []remedy.Operation{remedy.NewOp("add", "/metadata/annotations/"+remedy.PointerToken(key), value)}
}

// credID names the pull secrets a pod's images are read with (what the
// kubelet would use: the pod's own, its service account's already merged
// in at admission), so that one namespace's credentials never answer for
// another's pod.
func credID(p *corev1.Pod) string {
	var ids []string
	for _, s := range p.Spec.ImagePullSecrets {
		if s.Name != "" {
			ids = append(ids, p.Namespace+"/"+s.Name)
		}
	}
	slices.Sort(ids)
	return strings.Join(slices.Compact(ids), ",")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
