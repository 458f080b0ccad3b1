// Package testenv gives tests a real mixed-arch cluster: etcd,
// kube-apiserver, kube-scheduler and kube-controller-manager (built by
// hack/testenv.sh build) on loopback, an in-process OCI registry, and node
// twins (package twin) that play kubelet and container runtime for fake
// amd64 and arm64 nodes.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/archfit/archfit/internal/testenv/twin"
)

// KubeVersion is the Kubernetes release hack/testenv.sh builds.
const KubeVersion = "v1.37.2"

// Binaries the control plane needs in BinDir.
var binaries = []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"}

// BinDir is where hack/testenv.sh build puts the binaries:
// $ARCHFIT_TESTENV_BIN, else ${ARCHFIT_TESTENV_CACHE:-$HOME/.cache/archfit-testenv}/v1.37.2/bin.
func BinDir() string {
	if d := os.Getenv("ARCHFIT_TESTENV_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("ARCHFIT_TESTENV_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache", "archfit-testenv")
	}
	return filepath.Join(cache, KubeVersion, "bin")
}

// ErrNoBinaries means the control-plane binaries are not built.
var ErrNoBinaries = errors.New("control-plane binaries not built: run `hack/testenv.sh build` (or `make cluster-build`)")

// CheckBinaries reports which binaries are missing from BinDir.
func CheckBinaries() error {
	var missing []string
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (missing in %s: %s)", ErrNoBinaries, BinDir(), strings.Join(missing, ", "))
	}
	return nil
}

// Env is a running cluster with its registry and node twins.
type Env struct {
	// Dir holds certificates, kubeconfig, data and component logs.
	Dir string
	// Config is an admin (system:masters) client config.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig for kubectl and archfit.
	Kubeconfig string
	Client     kubernetes.Interface
	// Registry is host:port of the in-process OCI registry (plain HTTP).
	// Repositories under private/ need Basic auth RegistryUser:RegistryPassword.
	Registry string
	// Twin plays kubelet and runtime for the nodes; AddNode adds more.
	Twin *twin.Twin

	opts     options
	procs    []*process
	registry *httptest.Server
	cancel   context.CancelFunc
}

// Credentials of the registry's private/ repositories.
const (
	RegistryUser     = "archfit"
	RegistryPassword = "s3cret"
)

type options struct {
	nodes []twin.NodeSpec
	log   io.Writer
	keep  bool
	qps   int
}

// Option configures Start.
type Option func(*options)

// WithNodes replaces the default six-node pool (twin.DefaultPool).
func WithNodes(specs ...twin.NodeSpec) Option {
	return func(o *options) { o.nodes = specs }
}

// WithQPS sets the client rate limit (burst: twice) of the scheduler, the
// controller-manager and the twin, for tests that create thousands of pods
// (the defaults, 20 to 100 per second, make that take minutes).
func WithQPS(qps int) Option { return func(o *options) { o.qps = qps } }

// WithLog sends progress and twin logs to w (default: discarded).
func WithLog(w io.Writer) Option { return func(o *options) { o.log = w } }

// WithKeepDir keeps Dir (logs, data) after Stop.
func WithKeepDir() Option { return func(o *options) { o.keep = true } }

// Start builds the environment: it returns once the API server is ready,
// the controllers run, and every node is Ready without the not-ready taint.
// Stop it with Stop, also on error paths (Start cleans up after itself when
// it fails).
func Start(ctx context.Context, opts ...Option) (env *Env, err error) {
	o := options{nodes: twin.DefaultPool(), log: io.Discard}
	for _, f := range opts {
		f(&o)
	}
	if o.keep || os.Getenv("ARCHFIT_TESTENV_KEEP") != "" {
		o.keep = true
	}
	if err := CheckBinaries(); err != nil {
		return nil, err
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", "archfit-testenv-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, opts: o}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	begin := time.Now()
	if err := e.startControlPlane(ctx); err != nil {
		return nil, err
	}
	e.startRegistry()
	if err := e.startTwin(ctx); err != nil {
		return nil, err
	}
	e.logf("cluster ready in %s: kubeconfig %s, registry %s", time.Since(begin).Round(time.Millisecond), e.Kubeconfig, e.Registry)
	return e, nil
}

// removeStaleDirs deletes the directories of environments whose process was
// killed (SIGKILL leaves no chance to clean up; Pdeathsig already ended the
// components).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "archfit-testenv-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.opts.log, "testenv: "+format+"\n", args...)
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is chosen, so they differ.
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (e *Env) start(name string, args ...string) (*process, error) {
	p, err := startProcess(name, filepath.Join(BinDir(), name), e.Dir, args...)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	return p, nil
}

func (e *Env) startControlPlane(ctx context.Context) error {
	p, err := newPKI(e.Dir)
	if err != nil {
		return fmt.Errorf("making certificates: %w", err)
	}
	if _, err := p.issue("apiserver", "kube-apiserver", nil, true); err != nil {
		return err
	}
	if _, err := p.issue("kubelet", "kubelet", nil, true); err != nil {
		return err
	}
	if _, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, false); err != nil {
		return err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	if err := os.WriteFile(p.path("tokens.csv"), []byte(token+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd, err := e.start("etcd",
		"--name=default",
		"--data-dir="+filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := etcd.waitFor(ectx, func(ctx context.Context) error { return httpOK(ctx, http.DefaultClient, etcdURL+"/health") }); err != nil {
		return err
	}

	api, err := e.start("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(e.Dir, "apiserver-certs"),
		"--tls-cert-file="+p.path("apiserver.crt"),
		"--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--token-auth-file="+p.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--kubelet-certificate-authority="+p.path("ca.crt"),
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		// ARCHFIT_TESTENV_PROFILING=1 serves /debug/pprof (benchmarks).
		"--profiling="+strconv.FormatBool(os.Getenv("ARCHFIT_TESTENV_PROFILING") != ""),
	)
	if err != nil {
		return err
	}
	e.Config = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(apiPort),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: p.path("ca.crt")},
		QPS:             50,
		Burst:           100,
	}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return err
	}
	tr, err := rest.TransportFor(e.Config)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	actx, cancel2 := context.WithTimeout(ctx, 90*time.Second)
	defer cancel2()
	if err := api.waitFor(actx, func(ctx context.Context) error { return httpOK(ctx, hc, e.Config.Host+"/readyz") }); err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	if err := writeKubeconfig(e.Kubeconfig, e.Config.Host, p.path("ca.crt"), token); err != nil {
		return err
	}

	var qps []string
	if e.opts.qps > 0 {
		qps = []string{"--kube-api-qps=" + strconv.Itoa(e.opts.qps), "--kube-api-burst=" + strconv.Itoa(2*e.opts.qps)}
	}
	if _, err := e.start("kube-scheduler", append([]string{
		"--kubeconfig=" + e.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	}, qps...)...); err != nil {
		return err
	}
	kcm, err := e.start("kube-controller-manager", append(qps,
		"--kubeconfig="+e.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+p.path("sa.key"),
		"--root-ca-file="+p.path("ca.crt"),
		"--use-service-account-credentials=false",
		"--controllers=*,-csrsigning,-csrapproving,-csrcleaner,-bootstrapsigner,-tokencleaner",
	)...)
	if err != nil {
		return err
	}
	// The service-account controller creating "default" proves the
	// controller-manager is up; pods need it (ServiceAccount admission).
	kctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	defer cancel3()
	return kcm.waitFor(kctx, func(ctx context.Context) error {
		_, err := e.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

func httpOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func writeKubeconfig(path, server, caFile, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["archfit-testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["archfit-testenv"] = &clientcmdapi.Context{Cluster: "archfit-testenv", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "archfit-testenv"
	return clientcmd.WriteToFile(*cfg, path)
}

func (e *Env) startTwin(ctx context.Context) error {
	p := &pki{dir: e.Dir}
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	pool := newPool(ca)
	kubelet, err := tls.LoadX509KeyPair(p.path("kubelet.crt"), p.path("kubelet.key"))
	if err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	tw, err := twin.New(e.Config, twin.Options{ServingCert: kubelet, ClientCAs: pool, Log: e.opts.log, QPS: e.opts.qps})
	if err != nil {
		return err
	}
	if err := tw.Start(tctx); err != nil {
		return err
	}
	e.Twin = tw
	for _, n := range e.opts.nodes {
		if err := e.AddNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// AddNode registers a node twin and waits until the scheduler can use it
// (Ready, and the node lifecycle controller removed the not-ready taint).
func (e *Env) AddNode(ctx context.Context, spec twin.NodeSpec) error {
	if err := e.Twin.AddNode(ctx, spec); err != nil {
		return err
	}
	return Poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		n, err := e.Client.CoreV1().Nodes().Get(ctx, spec.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
				return false, nil
			}
		}
		return true, nil
	})
}

// Poll calls cond every 200ms until it returns true or an error, or timeout.
func Poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop ends the twin, the registry and every component (in reverse start
// order) and removes Dir unless kept. Safe to call more than once.
func (e *Env) Stop() {
	if e.Twin != nil {
		e.Twin.Stop()
		e.Twin = nil
	}
	if e.cancel != nil {
		e.cancel()
	}
	if e.registry != nil {
		e.registry.Close()
		e.registry = nil
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop(10 * time.Second)
	}
	e.procs = nil
	if e.Dir != "" && !e.opts.keep {
		_ = os.RemoveAll(e.Dir)
	}
}

// Namespace creates a namespace with a generated name and waits for its
// default service account; it is deleted when the test ends.
func (e *Env) Namespace(ctx context.Context, t interface {
	Helper()
	Cleanup(func())
	Fatalf(string, ...any)
}, prefix string) string {
	t.Helper()
	ns, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		err := e.Client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	err = Poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for the default service account in %s: %v", ns.Name, err)
	}
	return ns.Name
}
