// Package serve is `archfit serve`: a mutating admission webhook that keeps
// every new pod on the architectures its images really run (the same remedy
// as `archfit patch`, merged into every nodeSelectorTerm), and a controller
// that reads images the webhook did not know (the pod waits behind a
// scheduling gate meanwhile), patches DaemonSet templates on request, and
// explains pods that crash on the wrong architecture (the diagnose judge).
// It fails open: the webhook's failurePolicy is Ignore and no pod stays
// gated past a deadline.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
)

// Mode says whether archfit changes pods.
type Mode string

// Modes.
const (
	// ModeObserve changes nothing: it records, counts and reports (events,
	// metrics, /report) what enforce would have done.
	ModeObserve Mode = "observe"
	// ModeEnforce sets the arch affinity and gates pods.
	ModeEnforce Mode = "enforce"
)

// Names archfit uses in the cluster.
const (
	// Gate is the scheduling gate that holds a pod whose images are read.
	Gate = "archfit.io/arch"
	// IgnoreKey, as a label (any value but "false") or an annotation whose
	// value is "true", keeps archfit away from a pod. Other annotation
	// values are waivers, as for audit ("single-arch-at-risk: why").
	IgnoreKey = audit.IgnoreAnnotation
	// PinnedAnnotation records on a pod the architectures archfit required.
	PinnedAnnotation = "archfit.io/pinned"
	// WebhookPath is where the API server sends pod admission reviews.
	WebhookPath = "/mutate-pods"
	// LeaseName is the leader election lease of the controller part.
	LeaseName = "archfit-controller"
	// Component names archfit in events.
	Component = "archfit"
)

// Config is everything Run needs; the CLI fills it from flags.
type Config struct {
	REST *rest.Config
	Mode Mode
	// Listen is the webhook's HTTPS address (also GET /report, to callers
	// the cluster authorizes), MetricsListen the plain HTTP one of
	// /metrics, /healthz and /readyz.
	Listen, MetricsListen string
	// CertDir holds tls.crt and tls.key (cert-manager, files); when empty
	// archfit keeps a CA and serving certificate in Secret CertSecret.
	CertDir, CertSecret string
	// Namespace is archfit's own, Service the Service the webhook
	// configuration points at, WebhookName the configuration's name.
	Namespace, Service, WebhookName string
	// Install registers the webhook with a url: pointing at Listen
	// (development and tests, out of the cluster).
	Install bool
	// NamespaceSelector selects the namespaces in scope (nil: all).
	NamespaceSelector *metav1.LabelSelector
	// GateDeadline bounds how long a pod stays gated, whatever happens.
	GateDeadline time.Duration
	// FallbackArch, when set, is pinned on a pod ungated because its
	// images could not be read.
	FallbackArch string
	// PatchOwners patches DaemonSet templates with the arch affinity.
	PatchOwners bool
	// WaiversConfigMap names a ConfigMap in Namespace whose .archfit.yaml
	// key (or config.yaml) holds waivers.
	WaiversConfigMap string
	// LeaderElect runs the controller part in one replica at a time.
	LeaderElect bool
	// Identity names this replica in the lease (default: hostname).
	Identity string
	// NewResolver builds an image resolver for the node platforms given
	// (the CLI's image flags: cache, registry config, OCI layouts...).
	NewResolver func(nodes ...specs.Platform) (*image.Resolver, error)
	// Keychain is the user's registry keychain that pull secrets join.
	Keychain authn.Keychain
	// ImageTTL is how long admission trusts what it knows of a tag.
	ImageTTL time.Duration
	// MaxImages bounds the images known in memory.
	MaxImages int
	// Retries bounds the inspections of a gated pod's images.
	Retries int
	// Workers process the controller's queue.
	Workers int
	Log     *slog.Logger
	// Ready, if set, is called once both servers listen, with their
	// addresses (tests listen on :0).
	Ready func(webhook, metrics string)
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = ModeObserve
	}
	if c.GateDeadline <= 0 {
		c.GateDeadline = 2 * time.Minute
	}
	if c.ImageTTL <= 0 {
		c.ImageTTL = 10 * time.Minute
	}
	if c.MaxImages <= 0 {
		c.MaxImages = 10000
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if c.Identity == "" {
		c.Identity, _ = os.Hostname()
		if c.Identity == "" {
			c.Identity = "archfit"
		}
	}
	if c.CertSecret == "" {
		c.CertSecret = "archfit-serving-cert"
	}
}

// Server is one running archfit serve.
type Server struct {
	cfg       Config
	cs        kubernetes.Interface
	reviews   kubernetes.Interface // for /report's token and access reviews (nil: cs)
	metrics   *serveMetrics
	knowledge *knowledge
	memo      decisions
	learner   *learner
	nsSel     labels.Selector
	recorder  record.EventRecorder
	report    *observeReport

	factory   informers.SharedInformerFactory
	podLister cache.Indexer
	nsLister  cache.Indexer
	nodes     atomic.Pointer[nodeView]
	waivers   atomic.Pointer[[]audit.Waiver]

	certs  *certSource
	auth   authCache
	ready  atomic.Bool
	leader atomic.Bool
	probe  atomic.Pointer[webhookProbe]
}

// nodeView is the nodes as admission reads them, rebuilt on change.
type nodeView struct {
	nodes     []*cluster.Node
	platforms []specs.Platform
	byName    map[string]*cluster.Node
}

// New checks cfg and builds a Server; Run starts it.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.REST == nil {
		return nil, errors.New("serve: no cluster configuration")
	}
	if cfg.Mode != ModeObserve && cfg.Mode != ModeEnforce {
		return nil, fmt.Errorf("--mode %q: want observe or enforce", cfg.Mode)
	}
	if cfg.NewResolver == nil {
		return nil, errors.New("serve: no image resolver")
	}
	rc := rest.CopyConfig(cfg.REST)
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	rc.UserAgent = "archfit-serve"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	// Token and access reviews for /report go through their own client and
	// rate limit: callers with made-up tokens must not use up the budget
	// the lease, ungating and events need.
	arc := rest.CopyConfig(rc)
	arc.QPS, arc.Burst, arc.UserAgent = 5, 10, "archfit-serve-authz"
	reviews, err := kubernetes.NewForConfig(arc)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	s := &Server{cfg: cfg, cs: cs, reviews: reviews, knowledge: newKnowledge(cfg.ImageTTL, cfg.MaxImages), report: newObserveReport(1000), learner: newLearner()}
	s.cfg.REST = rc
	s.metrics = newServeMetrics(func() float64 { return float64(s.knowledge.size()) })
	s.nsSel = labels.Everything()
	if cfg.NamespaceSelector != nil {
		if s.nsSel, err = metav1.LabelSelectorAsSelector(cfg.NamespaceSelector); err != nil {
			return nil, fmt.Errorf("--namespace-selector: %w", err)
		}
	}
	s.nodes.Store(&nodeView{byName: map[string]*cluster.Node{}})
	s.waivers.Store(&[]audit.Waiver{})
	return s, nil
}

// Run serves until ctx ends. With Install it registers the webhook first;
// the registration is left in place on exit (failurePolicy Ignore: the API
// server admits pods unchanged while archfit is away), but the pods this
// process gated are ungated.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.Log
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cs.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	s.recorder = broadcaster.NewRecorder(clientScheme, corev1.EventSource{Component: Component})

	s.factory = informers.NewSharedInformerFactory(s.cs, 0)
	pods := s.factory.Core().V1().Pods().Informer()
	nodes := s.factory.Core().V1().Nodes().Informer()
	nss := s.factory.Core().V1().Namespaces().Informer()
	dss := s.factory.Apps().V1().DaemonSets().Informer()
	// managedFields are most of a pod's size and archfit reads none.
	_ = pods.SetTransform(func(o any) (any, error) {
		if m, ok := o.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return o, nil
	})
	s.podLister, s.nsLister = pods.GetIndexer(), nss.GetIndexer()
	_, _ = nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.refreshNodes(nodes.GetIndexer()) },
		UpdateFunc: func(_, n any) { s.refreshNodes(nodes.GetIndexer()) },
		DeleteFunc: func(any) { s.refreshNodes(nodes.GetIndexer()) },
	})
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("serve: the %v cache did not sync", typ)
		}
	}
	s.refreshNodes(nodes.GetIndexer())
	_ = dss

	var err error
	if s.certs, err = s.setupCerts(ctx); err != nil {
		return err
	}
	wl, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webhook listen %s: %w", s.cfg.Listen, err)
	}
	ml, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		wl.Close()
		return fmt.Errorf("metrics listen %s: %w", s.cfg.MetricsListen, err)
	}
	webhook := &http.Server{
		Handler:           s.webhookMux(),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.get},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	webhook.IdleTimeout = 2 * time.Minute // the API server keeps one HTTP/2 connection
	metricsSrv := &http.Server{
		Handler:           s.metricsMux(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 2)
	go func() { errc <- webhook.ServeTLS(wl, "", "") }()
	go func() { errc <- metricsSrv.Serve(ml) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = webhook.Shutdown(sctx)
		_ = metricsSrv.Shutdown(sctx)
	}()

	if s.cfg.Install {
		if s.cfg.LeaderElect {
			// The lease lives in archfit's namespace, which an
			// out-of-cluster run may be the first to need.
			_, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.Namespace}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating namespace %s for the lease: %w", s.cfg.Namespace, err)
			}
		}
		if err := s.install(ctx, wl.Addr().String()); err != nil {
			return err
		}
		log.Info("webhook registered", "name", s.cfg.WebhookName, "url", "https://"+wl.Addr().String()+WebhookPath)
		// The API server calls a new webhook once its configuration
		// cache has it: until then pods are admitted without archfit.
		if took, ok, why := s.awaitWebhook(ctx); ok {
			log.Info("webhook called by the API server", "after", took.Round(time.Millisecond))
		} else if ctx.Err() == nil {
			log.Warn("not shown that the API server calls the webhook: pods created now may be admitted without archfit", "why", why)
		}
		defer s.ungateAll(context.WithoutCancel(ctx), "archfit serve stopped")
	} else if s.cfg.CertDir == "" {
		// Self-managed certificate: the configuration made by the chart
		// gets our CA bundle.
		go s.keepCABundle(ctx)
	}
	go s.keepWaivers(ctx)
	go s.runLearner(ctx)
	s.ready.Store(true)
	log.Info("serving", "mode", s.cfg.Mode, "webhook", wl.Addr().String(), "metrics", ml.Addr().String())
	if s.cfg.Ready != nil {
		s.cfg.Ready(wl.Addr().String(), ml.Addr().String())
	}

	ctrlDone := make(chan struct{})
	go func() {
		defer close(ctrlDone)
		s.runController(ctx, pods, dss)
	}()
	select {
	case <-ctx.Done():
		<-ctrlDone
		return nil
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	}
}

func (s *Server) refreshNodes(idx cache.Indexer) {
	v := &nodeView{byName: map[string]*cluster.Node{}}
	seen := map[string]bool{}
	for _, o := range idx.List() {
		n, ok := o.(*corev1.Node)
		if !ok {
			continue
		}
		cn := cluster.NodeOf(n)
		v.nodes = append(v.nodes, cn)
		v.byName[n.Name] = cn
		if cn.Platform.Architecture != "" {
			k := cn.Platform.OS + "/" + cn.Platform.Architecture + "/" + cn.Platform.Variant
			if !seen[k] {
				seen[k] = true
				v.platforms = append(v.platforms, cn.Platform)
			}
		}
	}
	s.nodes.Store(v)
}

func (s *Server) metricsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = s.metrics.write(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: caches or certificate not loaded", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}
