package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/serve"
)

type serveOptions struct {
	streams     genericiooptions.IOStreams
	configFlags *genericclioptions.ConfigFlags
	images      imageOptions

	mode, listen, metricsListen string
	certDir, certSecret         string
	service, webhookName        string
	install, uninstall          bool
	nsSelector                  string
	gateDeadline, imageTTL      time.Duration
	fallbackArch                string
	patchOwners                 bool
	waiversConfigMap            string
	leaderElect                 bool
	logFormat                   string

	cfg serve.Config
}

// NewCmdServe builds `archfit serve`.
func NewCmdServe(streams genericiooptions.IOStreams) *cobra.Command {
	o := &serveOptions{streams: streams, configFlags: newConfigFlags()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admission webhook and controller that keep every new pod on the architectures its images run",
		Long: `serve is a mutating admission webhook for pod CREATE and a controller.

When a pod's images are known (read before; the on-disk cache has the
CLI's format) the webhook sets the required kubernetes.io/arch affinity at
once, merged into every nodeSelectorTerm exactly as "archfit patch" does,
with tolerations for tainted pools of an allowed architecture. Otherwise
it adds the scheduling gate archfit.io/arch; the controller reads the
images (with the pod's pull secrets and its service account's), sets the
affinity and removes the gate. A constraint is never loosened: a pod that
pins an architecture its images cannot run gets an event, not a rewrite.

It fails open: failurePolicy Ignore, a 5 s webhook timeout, and a gated
pod is ungated after --registry-retries failed reads or --gate-deadline
(with an event, and --fallback-arch if set). --uninstall removes the
webhook and every archfit.io/arch gate.

Out of scope: kube-system, archfit's namespace, pods with nodeName, pods
labelled archfit.io/ignore (or annotated archfit.io/ignore: "true"),
namespaces --namespace-selector does not select. Waivers of
single-arch-at-risk (the ConfigMap's .archfit.yaml, or the pod's
archfit.io/ignore annotation as audit reads it) leave a pod alone.

DaemonSet pods are not pinned (an affinity only leaves them Pending): an
event and the archfit_daemonset_at_risk metric name the DaemonSet, and with
--patch-owners (enforce) its template gets the affinity, refused for
objects Helm, Argo CD, Flux or an operator manage, as "patch --apply"
refuses them. Pods failing with exec format error or a platform pull
failure get an event on the pod and its workload with the root cause and
the remedy, judged as "archfit diagnose" judges them.

--mode observe (the default) changes nothing: events, metrics and GET
/report say what enforce would have done. /report names pods and images:
it is served on the HTTPS port (--listen) to a bearer token the cluster
authenticates and authorizes for get on the non-resource URL /report;
--metrics-listen serves /metrics, /healthz and /readyz.`,
		Example: `  # development: run out of the cluster, register the webhook at this process
  archfit serve --kubeconfig ~/.kube/config --listen 127.0.0.1:8443 --install --leader-elect=false
  # remove the webhook and every archfit.io/arch scheduling gate
  archfit serve --kubeconfig ~/.kube/config --uninstall
  # in the cluster (the Helm chart runs this)
  archfit serve --mode enforce --cert-dir /tls --patch-owners --namespace-selector archfit.io/enabled=true`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(cmd); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	o.configFlags.AddFlags(cmd.Flags())
	o.images.addFlags(cmd.Flags())
	fs := cmd.Flags()
	if f := fs.Lookup("namespace"); f != nil {
		f.Usage = "archfit's own namespace: its Lease, certificate Secret and waivers ConfigMap (default $POD_NAMESPACE, else archfit)"
	}
	fs.StringVar(&o.mode, "mode", string(serve.ModeObserve), "observe (change nothing: events, metrics and /report say what enforce would do) or enforce")
	fs.StringVar(&o.listen, "listen", ":8443", "the webhook's HTTPS address (also GET /report, to tokens authorized for it)")
	fs.StringVar(&o.metricsListen, "metrics-listen", ":8080", "plain HTTP address of /metrics, /healthz and /readyz")
	fs.StringVar(&o.certDir, "cert-dir", "", "serve DIR/tls.crt and DIR/tls.key (cert-manager or files, reloaded when they change); the CA bundle is left alone")
	fs.StringVar(&o.certSecret, "cert-secret", "archfit-serving-cert", "without --cert-dir: the Secret in --namespace that holds archfit's own CA and serving certificate (created, renewed before expiry, its CA bundle written into the webhook configuration)")
	fs.StringVar(&o.service, "service", "archfit", "the Service the webhook configuration points at (names in the serving certificate)")
	fs.StringVar(&o.webhookName, "webhook-name", "archfit", "the MutatingWebhookConfiguration's name")
	fs.BoolVar(&o.install, "install", false, "development and tests: register the webhook with url: https://<--listen>, pointing at this process (an ephemeral CA); pods this process gated are ungated when it stops")
	fs.BoolVar(&o.uninstall, "uninstall", false, "remove the webhook configuration and every archfit.io/arch scheduling gate, then exit")
	fs.StringVar(&o.nsSelector, "namespace-selector", "", "label selector of the namespaces in scope (default: all but kube-system and archfit's)")
	fs.DurationVar(&o.gateDeadline, "gate-deadline", 2*time.Minute, "a gated pod is ungated by then, whatever happens")
	fs.StringVar(&o.fallbackArch, "fallback-arch", "", "architecture to pin on a pod whose images cannot be read by the deadline (default: ungate it unchanged)")
	fs.BoolVar(&o.patchOwners, "patch-owners", false, "enforce: give DaemonSet templates the arch affinity (refused for Helm-, Argo CD-, Flux- or operator-managed objects)")
	fs.StringVar(&o.waiversConfigMap, "waivers-configmap", "", "ConfigMap in --namespace whose .archfit.yaml key holds waivers (audit's format)")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect one replica (Lease "+serve.LeaseName+" in --namespace) for the controller part; every replica serves the webhook")
	fs.DurationVar(&o.imageTTL, "image-ttl", 10*time.Minute, "how long admission trusts what it read of an image tag before it gates the pod to read it again (digests never expire)")
	fs.StringVar(&o.logFormat, "log-format", "json", "log format on stderr: json or text")
	return cmd
}

func (o *serveOptions) complete(cmd *cobra.Command) error {
	if err := o.images.validate(); err != nil {
		return err
	}
	ns := os.Getenv("POD_NAMESPACE")
	if cmd.Flags().Changed("namespace") && o.configFlags.Namespace != nil && *o.configFlags.Namespace != "" {
		ns = *o.configFlags.Namespace
	}
	if ns == "" {
		ns = "archfit"
	}
	var sel *metav1.LabelSelector
	if o.nsSelector != "" {
		var err error
		if sel, err = metav1.ParseToLabelSelector(o.nsSelector); err != nil {
			return fmt.Errorf("--namespace-selector %q: %w", o.nsSelector, err)
		}
	}
	fallback := ""
	if o.fallbackArch != "" {
		p, err := platform.Parse(o.fallbackArch)
		if err != nil {
			return fmt.Errorf("--fallback-arch %q: %w", o.fallbackArch, err)
		}
		fallback = platform.Arch(p)
	}
	if o.mode != string(serve.ModeObserve) && o.mode != string(serve.ModeEnforce) {
		return fmt.Errorf("--mode %q: want observe or enforce", o.mode)
	}
	if o.gateDeadline <= 0 {
		return fmt.Errorf("--gate-deadline must be positive")
	}
	if o.install && o.uninstall {
		return fmt.Errorf("--install and --uninstall do not go together")
	}
	var h slog.Handler
	switch o.logFormat {
	case "json":
		h = slog.NewJSONHandler(o.streams.ErrOut, nil)
	case "text":
		h = slog.NewTextHandler(o.streams.ErrOut, nil)
	default:
		return fmt.Errorf("--log-format %q: want json or text", o.logFormat)
	}
	rc, err := o.configFlags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	kc, err := registry.Keychain(o.images.registryConfig)
	if err != nil {
		return err
	}
	o.cfg = serve.Config{
		REST: rc, Mode: serve.Mode(o.mode), Listen: o.listen, MetricsListen: o.metricsListen,
		CertDir: o.certDir, CertSecret: o.certSecret, Namespace: ns, Service: o.service, WebhookName: o.webhookName,
		Install: o.install, NamespaceSelector: sel, GateDeadline: o.gateDeadline, FallbackArch: fallback,
		PatchOwners: o.patchOwners, WaiversConfigMap: o.waiversConfigMap, LeaderElect: o.leaderElect,
		ImageTTL: o.imageTTL, Retries: max(o.images.retries, 1), Keychain: kc, Log: slog.New(h),
		NewResolver: func(nodes ...specs.Platform) (*image.Resolver, error) {
			return o.images.resolver(io.Discard, true, nodes...)
		},
	}
	return nil
}

func (o *serveOptions) run(ctx context.Context) error {
	if o.uninstall {
		cs, err := kubernetes.NewForConfig(o.cfg.REST)
		if err != nil {
			return err
		}
		n, err := serve.Uninstall(ctx, cs, o.webhookName)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "webhook %s removed; archfit.io/arch gate removed from %d pod(s)\n", o.webhookName, n)
		return nil
	}
	s, err := serve.New(o.cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
