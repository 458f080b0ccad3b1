package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/pflag"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/report"
	"github.com/archfit/archfit/internal/verify"
)

// imageOptions are the flags of every command that reads images.
type imageOptions struct {
	ociLayouts     []string
	layouts        []image.Layout
	registryConfig string
	insecure       bool
	insecureRegs   []string
	cacheDir       string
	noCache        bool
	concurrency    int
	tagTTL         time.Duration
	timeout        time.Duration
	retries        int

	// pullSecrets are the pods' imagePullSecrets (live cluster), each pod's
	// given to its own images only (withCredentials), after the user's own.
	pullSecrets *cluster.PullSecrets
}

func (o *imageOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&o.ociLayouts, "oci-layout", nil, "read images from this OCI image layout instead of registries (air-gapped use): DIR, or REPO=DIR when its index.json names only tags (skopeo copy ... oci:DIR:TAG); repeatable")
	fs.StringVar(&o.registryConfig, "registry-config", "", "docker config.json with registry credentials (default: ~/.docker/config.json, $DOCKER_CONFIG, podman auth.json, credential helpers)")
	fs.BoolVar(&o.insecure, "plain-http", false, "allow plain HTTP, and credentials over it, to every registry (HTTPS is still tried first)")
	fs.StringArrayVar(&o.insecureRegs, "insecure-registry", nil, "allow plain HTTP, and credentials over it, to this registry, HOST (any port) or HOST:PORT; repeatable (loopback registries get plain HTTP without credentials anyway)")
	fs.StringVar(&o.cacheDir, "cache-dir", image.DefaultCacheDir(), "where manifests, configs and verdicts are cached by digest")
	fs.BoolVar(&o.noCache, "no-cache", false, "do not read or write the on-disk cache")
	fs.IntVar(&o.concurrency, "concurrency", 16, "registry requests in flight at once")
	fs.DurationVar(&o.tagTTL, "tag-ttl", time.Minute, "how long a cached tag->digest answer is trusted before a HEAD re-checks it")
	fs.DurationVar(&o.timeout, "registry-timeout", registry.DefaultTimeout, "how long a registry may take to start answering a request (connect at most 10s, TLS 10s, response headers), and the longest pause within a response body; a timeout is not retried, and after 3 failures in a row to reach a registry its remaining images fail at once")
	fs.IntVar(&o.retries, "registry-retries", 5, "retries of a 429 (honouring Retry-After), 5xx or network error")
}

func (o *imageOptions) validate() error {
	if o.concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1")
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--registry-timeout must be positive")
	}
	if o.retries < 0 {
		return fmt.Errorf("--registry-retries must not be negative")
	}
	o.layouts = o.layouts[:0]
	for _, l := range o.ociLayouts {
		pl, err := image.ParseLayout(l)
		if err != nil {
			return fmt.Errorf("--oci-layout: %w", err)
		}
		o.layouts = append(o.layouts, pl)
	}
	for _, r := range o.insecureRegs {
		if _, err := name.NewRegistry(r, name.StrictValidation); err != nil || strings.ContainsAny(r, "/@") {
			return fmt.Errorf("--insecure-registry %q: want HOST or HOST:PORT", r)
		}
	}
	return nil
}

// offline reports whether images come from OCI layouts, not registries.
func (o *imageOptions) offline() bool { return len(o.ociLayouts) > 0 }

// resolver builds the image resolver these flags describe, with a
// progress line on errOut when it is a terminal; nodes are the
// cluster's node platforms to predict pulls for (none: linux/amd64 and
// linux/arm64/v8).
func (o *imageOptions) resolver(errOut io.Writer, verifyEntries bool, nodes ...specs.Platform) (*image.Resolver, error) {
	opts := []image.Option{image.WithConcurrency(o.concurrency), image.WithTagTTL(o.tagTTL)}
	if p := newImageProgress(errOut); p != nil {
		opts = append(opts, image.WithProgress(p))
	}
	if len(nodes) > 0 {
		opts = append(opts, image.WithNodes(nodes...))
	}
	if !o.noCache {
		opts = append(opts, image.WithCacheDir(o.cacheDir))
	}
	if verifyEntries {
		// One cache per run: layers shared by its images are read once.
		opts = append(opts, image.WithVerifier(verify.NewCache(verify.CacheLimits{}).Verifier))
	}
	if o.offline() {
		opts = append(opts, image.WithOCILayouts(o.layouts...))
	} else {
		kc, err := registry.Keychain(o.registryConfig)
		if err != nil {
			return nil, err
		}
		copts := []registry.Option{registry.WithKeychain(kc), registry.WithTimeout(o.timeout),
			registry.WithRetry(o.retries, time.Minute, 250*time.Millisecond), registry.WithUserAgent("archfit/" + versionString()),
			registry.WithInsecureRegistries(o.insecureRegs...)}
		if o.insecure {
			copts = append(copts, registry.WithPlainHTTP())
		}
		c := registry.New(copts...)
		opts = append(opts, image.WithRegistryClient(c))
	}
	return image.NewResolver(opts...)
}

// withCredentials gives each request the credentials of the pods that run
// its image (live cluster; nothing otherwise).
func (o *imageOptions) withCredentials(reqs []image.Request, errOut io.Writer) error {
	if o.pullSecrets == nil || o.offline() {
		return nil
	}
	kc, err := registry.Keychain(o.registryConfig)
	if err != nil {
		return err
	}
	o.pullSecrets.Attach(reqs, kc, errOut)
	return nil
}

// render writes doc in format and maps findings to the exit code (3);
// the caller then checks for unread images (incomplete, 4).
func render(w io.Writer, format string, failOn finding.Severity, doc *report.Document) error {
	f, err := report.For(format)
	if err != nil {
		return err
	}
	if err := f(w, doc); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if failOn == finding.Never {
		return nil
	}
	n := 0
	for _, fd := range doc.Findings {
		// An unread image is no finding about the workload but an
		// incomplete answer: exit 4, not 3 (see incomplete).
		if fd.Waived == "" && fd.Severity.Rank() >= failOn.Rank() && fd.Code != finding.ImageUninspectable {
			n++
		}
	}
	if n > 0 {
		return &FindingsError{Count: n}
	}
	return nil
}
