// Package twin plays the kubelet and the container runtime of fake nodes
// against a real API server: it registers nodes, keeps their leases fresh,
// and for every pod the scheduler binds to one of them it pulls each image
// from the registry, picks the index entry the way that node's runtime would,
// reads the entrypoint's ELF header and writes the status, events and logs a
// real node would write.
//
// It deliberately shares no code with archfit (see TestTwinIsIndependent):
// the tests compare archfit's reasoning against this second implementation.
package twin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Options configure a Twin.
type Options struct {
	// ServingCert is the kubelet serving certificate (for 127.0.0.1) the API
	// server must trust (--kubelet-certificate-authority).
	ServingCert tls.Certificate
	// ClientCAs, when set, is the pool the API server's kubelet client
	// certificate (--kubelet-client-certificate) must chain to.
	ClientCAs *x509.CertPool
	// Log receives one line per notable action; nil discards.
	Log io.Writer
	// PullBackOff is how long an image pull failure stays ErrImagePull before
	// the first ImagePullBackOff (the kubelet re-syncs almost at once). Default 1s.
	PullBackOff time.Duration
	// QPS is the twin's API client rate limit (burst: twice). Default 100.
	QPS int
}

// Twin is a set of fake nodes and the kubelet/runtime behaviour behind them.
type Twin struct {
	cs   kubernetes.Interface
	opts Options

	broadcaster record.EventBroadcaster

	mu      sync.Mutex
	nodes   map[string]*node
	pods    map[types.UID]*podWorker
	logs    map[string]string // container ID -> log
	servers []*http.Server
	store   cache.Store
	factory informers.SharedInformerFactory

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type node struct {
	spec     NodeSpec
	port     int
	recorder record.EventRecorder
	index    int // for pod IPs 10.244.<index>.x
	podSeq   int
	images   map[string]*pulled // image cache by the image string of the spec
}

// New makes a Twin talking to the API server of cfg. Call Start, then AddNode.
func New(cfg *rest.Config, opts Options) (*Twin, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "archfit-node-twin"
	cfg.QPS, cfg.Burst = 100, 200
	if opts.QPS > 0 {
		cfg.QPS, cfg.Burst = float32(opts.QPS), 2*opts.QPS
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("making client: %w", err)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.PullBackOff == 0 {
		opts.PullBackOff = time.Second
	}
	return &Twin{
		cs:    cs,
		opts:  opts,
		nodes: map[string]*node{},
		pods:  map[types.UID]*podWorker{},
		logs:  map[string]string{},
	}, nil
}

func (t *Twin) logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.opts.Log, "twin: "+format+"\n", args...)
}

// Start begins watching pods. It returns once the pod informer has synced;
// the twin runs until ctx ends or Stop is called.
func (t *Twin) Start(ctx context.Context) error {
	t.ctx, t.cancel = context.WithCancel(ctx)
	t.broadcaster = record.NewBroadcaster(record.WithContext(t.ctx))
	t.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: t.cs.CoreV1().Events("")})

	factory := informers.NewSharedInformerFactory(t.cs, 0)
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.onPod(obj) },
		UpdateFunc: func(_, obj any) { t.onPod(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				t.forget(p.UID)
			}
		},
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	t.store = inf.GetStore()
	t.factory = factory
	factory.Start(t.ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(t.ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing %v informer", typ)
		}
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.heartbeat()
	}()
	return nil
}

// Stop ends every goroutine and server the twin started. Nodes stay in the
// API server (they would, when a kubelet stops).
func (t *Twin) Stop() {
	if t.cancel == nil {
		return
	}
	t.cancel()
	t.mu.Lock()
	servers := t.servers
	t.servers = nil
	t.mu.Unlock()
	for _, s := range servers {
		_ = s.Close()
	}
	t.wg.Wait()
	t.factory.Shutdown()
	t.broadcaster.Shutdown()
}

// AddNode registers a node (or takes over an existing one of that name),
// starts its kubelet endpoint and makes it Ready.
func (t *Twin) AddNode(ctx context.Context, spec NodeSpec) error {
	spec = spec.withDefaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for node %s: %w", spec.Name, err)
	}
	n := &node{
		spec:     spec,
		port:     ln.Addr().(*net.TCPAddr).Port,
		recorder: t.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: spec.Name}),
	}
	srv := &http.Server{
		Handler:           t.kubeletHandler(n),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         t.tlsConfig(),
		ErrorLog:          discardLogger(),
	}
	t.mu.Lock()
	if _, dup := t.nodes[spec.Name]; dup {
		t.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("node %s already added", spec.Name)
	}
	n.index = len(t.nodes) + 1
	n.images = map[string]*pulled{}
	t.nodes[spec.Name] = n
	t.servers = append(t.servers, srv)
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		_ = srv.ServeTLS(ln, "", "")
	}()
	if err := t.register(ctx, n); err != nil {
		return err
	}
	t.logf("node %s ready (%s/%s, %s, kubelet port %d)", spec.Name, spec.OS, spec.Arch, spec.Runtime, n.port)
	// Pods may already be bound to this node (a restart of the twin).
	for _, obj := range t.store.List() {
		t.onPod(obj)
	}
	return nil
}

// Nodes lists the specs of the nodes added so far.
func (t *Twin) Nodes() []NodeSpec {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]NodeSpec, 0, len(t.nodes))
	for _, n := range t.nodes {
		out = append(out, n.spec)
	}
	return out
}

func (t *Twin) node(name string) *node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes[name]
}

func (t *Twin) tlsConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{t.opts.ServingCert},
	}
	if t.opts.ClientCAs != nil {
		c.ClientCAs = t.opts.ClientCAs
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}

func (t *Twin) cached(n *node, image string) *pulled {
	t.mu.Lock()
	defer t.mu.Unlock()
	return n.images[image]
}

func (t *Twin) cache(n *node, image string, p *pulled) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n.images[image] = p
}

func (t *Twin) setLog(containerID, log string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.logs[containerID] = log
}

func (t *Twin) log(containerID string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.logs[containerID]
}
