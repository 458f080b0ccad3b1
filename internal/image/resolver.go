package image

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/registry"
)

const (
	mediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeDockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeSchema1       = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeSchema1Plain  = "application/vnd.docker.distribution.manifest.v1+json"
	annotationRefType      = "vnd.docker.reference.type"
	annotationRefDigest    = "vnd.docker.reference.digest"
	annotationBaseName     = "org.opencontainers.image.base.name"
	annotationBaseDigest   = "org.opencontainers.image.base.digest"
	maxNestedIndexDepth    = 4
	defaultConcurrency     = 16
	imagesInFlight         = 8 // per concurrency slot, in InspectAll
	defaultTagTTL          = time.Minute
	attestationManifestRef = "attestation-manifest"
)

// Bounds on one image's index tree: nested indexes are walked at most
// maxNestedIndexDepth deep, MaxNestedIndexes of them, and MaxManifestsPerImage
// entries in all (a hostile registry can otherwise fan out 30 entries on
// each of four levels: 810,000 manifests). Real images have a few dozen.
const (
	MaxManifestsPerImage = 1000
	MaxNestedIndexes     = 64
)

func isIndex(mt string) bool    { return mt == mediaTypeOCIIndex || mt == mediaTypeDockerList }
func isManifest(mt string) bool { return mt == mediaTypeOCIManifest || mt == mediaTypeDockerV2 }
func isSchema1(mt string) bool  { return mt == mediaTypeSchema1 || mt == mediaTypeSchema1Plain }

// Override is what a pod says runs instead of the image's Entrypoint/Cmd,
// and the PATH its env sets (which replaces the image's for the lookup of a
// bare command name).
type Override struct {
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Path    string   `json:"path,omitempty"`
	// PathSet distinguishes PATH="" from no PATH in the pod's env.
	PathSet bool `json:"pathSet,omitempty"`
}

// Verifier finds and checks the entrypoint binary of one image manifest
// against the architecture its entry claims. internal/verify implements it.
type Verifier func(ctx context.Context, img v1.Image, wantArch string, o *Override) (*Entrypoint, error)

// Resolver turns references into Reports. Safe for concurrent use; create
// one per run so deduplication spans every image of the run.
type Resolver struct {
	src         source
	layouts     *layoutSet
	cache       *cache
	verifier    Verifier
	concurrency int
	tagTTL      time.Duration
	nodes       []specs.Platform
	nameOpts    []name.Option
	client      *registry.Client
	plainHTTP   bool

	progress Progress

	sem     chan struct{}
	flight  singleflight.Group
	hits    atomic.Int64
	mu      sync.Mutex
	memo    map[string]*Report
	clients map[string]*registry.Client // Credentials.ID -> its client
}

// Option configures a Resolver.
type Option func(*Resolver) error

// WithRegistryClient reads images from registries through c.
func WithRegistryClient(c *registry.Client) Option {
	return func(r *Resolver) error { r.src, r.client = registrySource{c}, c; return nil }
}

// WithOCILayout reads images from an OCI image layout directory instead of
// registries (air-gapped use, the shipped example); its entries answer by
// their full names only (see Layout).
func WithOCILayout(dir string) Option { return WithOCILayouts(Layout{Dir: dir}) }

// WithOCILayouts reads images from these OCI image layouts instead of
// registries. A reference is answered by the one entry that names it (see
// Layout); two entries of different digests that name it are an error.
func WithOCILayouts(ls ...Layout) Option {
	return func(r *Resolver) error {
		if len(ls) == 0 {
			return fmt.Errorf("no OCI layout given")
		}
		set := &layoutSet{}
		for _, l := range ls {
			s, err := newLayoutSource(l)
			if err != nil {
				return err
			}
			set.layouts = append(set.layouts, s)
		}
		r.src, r.layouts = set, set
		return nil
	}
}

// WithCacheDir keeps manifests, configs, verdicts and tags on disk under dir;
// "" keeps them in memory for this run only.
func WithCacheDir(dir string) Option {
	return func(r *Resolver) error { r.cache = newCache(dir); return nil }
}

// WithVerifier enables entrypoint verification.
func WithVerifier(v Verifier) Option { return func(r *Resolver) error { r.verifier = v; return nil } }

// WithConcurrency bounds simultaneous registry requests.
func WithConcurrency(n int) Option {
	return func(r *Resolver) error {
		if n < 1 {
			return fmt.Errorf("concurrency must be at least 1, got %d", n)
		}
		r.concurrency = n
		return nil
	}
}

// Progress is told how InspectAll advances: the requests it starts with,
// each one done (from any goroutine), and the end.
type Progress interface {
	Start(reqs []Request)
	Done(q Request, rep *Report)
	Finish()
}

// WithProgress reports InspectAll's progress to p.
func WithProgress(p Progress) Option { return func(r *Resolver) error { r.progress = p; return nil } }

// WithTagTTL sets how long a tag->digest answer is trusted without a HEAD.
func WithTagTTL(d time.Duration) Option { return func(r *Resolver) error { r.tagTTL = d; return nil } }

// WithNodes adds node platforms (a cluster's) to those "what would each
// node pull" is computed for: linux/amd64 and linux/arm64/v8 always.
func WithNodes(p ...specs.Platform) Option {
	return func(r *Resolver) error {
		for _, n := range p {
			if !slices.ContainsFunc(r.nodes, func(o specs.Platform) bool { return platform.String(&o) == platform.String(&n) }) {
				r.nodes = append(r.nodes, n)
			}
		}
		sort.Slice(r.nodes, func(i, j int) bool { return platform.String(&r.nodes[i]) < platform.String(&r.nodes[j]) })
		return nil
	}
}

// WithInsecure names every registry insecure for the resolver's default
// client: HTTPS is still tried first, plain HTTP allowed after it, and
// credentials may then travel in cleartext. A client given with
// WithRegistryClient carries its own setting (registry.WithPlainHTTP,
// registry.WithInsecureRegistries).
func WithInsecure() Option {
	return func(r *Resolver) error { r.plainHTTP = true; return nil }
}

// NewResolver builds a Resolver; without a source option it reads
// registries anonymously.
func NewResolver(opts ...Option) (*Resolver, error) {
	r := &Resolver{
		concurrency: defaultConcurrency,
		tagTTL:      defaultTagTTL,
		nodes:       []specs.Platform{platform.Node("linux", "amd64"), platform.Node("linux", "arm64")},
		memo:        map[string]*Report{},
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.src == nil {
		var o []registry.Option
		if r.plainHTTP {
			o = append(o, registry.WithPlainHTTP())
		}
		r.client = registry.New(o...)
		r.src = registrySource{r.client}
	}
	if r.cache == nil {
		r.cache = newCache("")
	}
	r.sem = make(chan struct{}, r.concurrency)
	return r, nil
}

// LayoutReferences lists the references of the OCI layouts, if any.
func (r *Resolver) LayoutReferences() []string {
	if r.layouts == nil {
		return nil
	}
	return r.layouts.References()
}

// LayoutUnnamed says which OCI layout entries name a tag and no repository
// (they answer for no reference until their layout is bound to one).
func (r *Resolver) LayoutUnnamed() []string {
	if r.layouts == nil {
		return nil
	}
	return r.layouts.Unnamed()
}

// CacheHits counts answers served from the cache instead of the network.
func (r *Resolver) CacheHits() int64 { return r.hits.Load() }

// Requests counts HTTP requests sent to registries (0 for an OCI layout).
func (r *Resolver) Requests() int64 {
	if r.client == nil {
		return 0
	}
	return r.client.Requests()
}

// Request asks for one image; Override is the pod's command/args when known.
type Request struct {
	Ref      string
	Verify   bool
	Override *Override
	// Credentials, when set, are the only ones the image is read with,
	// instead of the resolver's client's keychain.
	Credentials *Credentials
}

// Credentials are one request's registry credentials: the kubelet pulls a
// pod's images with the imagePullSecrets of the pod's own namespace only, so
// archfit reads them with the user's keychain plus exactly those secrets.
// Requests with the same ID share one registry client (its tokens) and one
// answer. Such a request takes nothing from what other credentials fetched
// before reading its reference itself with its own (one HEAD of the tag or
// digest, or the GET, per ID and reference in a run): an image it cannot
// read fails as the kubelet's pull would. After that, what is addressed by
// digest (manifests, configs, verdicts, whole reports) is shared, since the
// requester has shown it can pull the image that names it. Registry
// sources only; an OCI layout ignores Credentials.
type Credentials struct {
	ID       string
	Keychain authn.Keychain
}

// InspectAll inspects every request concurrently (bounded), deduplicating
// identical requests; the reports come back in request order. It never fails
// as a whole: a broken image gets a Report with Error set.
func (r *Resolver) InspectAll(ctx context.Context, reqs []Request) []*Report {
	out := make([]*Report, len(reqs))
	if r.progress != nil {
		r.progress.Start(reqs)
		defer r.progress.Finish()
	}
	g, gctx := errgroup.WithContext(ctx)
	defer r.cache.flush()
	// Enough images under way that the concurrency slots never wait for
	// an image to start: each image's requests form a chain (tag, index,
	// manifest, config, layer), and an image that waits on one holds none.
	// Each worker takes the next request when done with one: a warm run
	// answers from the cache, and a goroutine per request grew a new stack
	// for each (decoding a cached report goes deep).
	var next atomic.Int64
	for range min(len(reqs), imagesInFlight*r.concurrency) {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return nil
				}
				out[i] = r.inspectShared(gctx, reqs[i])
				if r.progress != nil {
					r.progress.Done(reqs[i], out[i])
				}
			}
		})
	}
	_ = g.Wait()
	return out
}

// Inspect inspects one reference. Identical requests in one run share one
// answer. What it learned is in the cache directory when it returns.
func (r *Resolver) Inspect(ctx context.Context, q Request) *Report {
	defer r.cache.flush()
	return r.inspectShared(ctx, q)
}

// inspectShared is Inspect without waiting for the cache's files.
func (r *Resolver) inspectShared(ctx context.Context, q Request) *Report {
	key := fmt.Sprintf("%s|%t|%v", q.Ref, q.Verify, overrideKey(q.Override))
	if q.Credentials != nil {
		key += "|credentials " + q.Credentials.ID
	}
	v, _, _ := r.flight.Do("report "+key, func() (any, error) {
		r.mu.Lock()
		if rep, ok := r.memo[key]; ok {
			r.mu.Unlock()
			return rep, nil
		}
		r.mu.Unlock()
		rep := r.inspectSafely(ctx, q)
		r.mu.Lock()
		r.memo[key] = rep
		r.mu.Unlock()
		return rep, nil
	})
	return v.(*Report)
}

// overrideKey is o as json.Marshal writes it (it names cached reports on
// disk, so it must not change). Audits look reports up by it for every
// container: o is written here directly when its strings need no escape
// (printable ASCII other than the quote, backslash and the <, > and & that
// json.Marshal escapes), through json.Marshal otherwise.
func overrideKey(o *Override) string {
	if o == nil {
		return ""
	}
	escaped := func(s string) bool { return !plainKey(s) }
	if escaped(o.Path) || slices.ContainsFunc(o.Command, escaped) || slices.ContainsFunc(o.Args, escaped) {
		b, _ := json.Marshal(o)
		return string(b)
	}
	var k strings.Builder
	k.WriteByte('{')
	list := func(name string, l []string) {
		if len(l) == 0 {
			return
		}
		if k.Len() > 1 {
			k.WriteByte(',')
		}
		k.WriteString(`"` + name + `":[`)
		for i, s := range l {
			if i > 0 {
				k.WriteByte(',')
			}
			k.WriteString(`"` + s + `"`)
		}
		k.WriteByte(']')
	}
	list("command", o.Command)
	list("args", o.Args)
	if o.Path != "" {
		if k.Len() > 1 {
			k.WriteByte(',')
		}
		k.WriteString(`"path":"` + o.Path + `"`)
	}
	if o.PathSet {
		if k.Len() > 1 {
			k.WriteByte(',')
		}
		k.WriteString(`"pathSet":true`)
	}
	k.WriteByte('}')
	return k.String()
}

// plainKey reports whether json.Marshal writes s as it is, in quotes.
func plainKey(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// call runs fn holding one of the concurrency slots.
func (r *Resolver) call(ctx context.Context, fn func() error) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	return fn()
}

type doc struct {
	raw  []byte
	desc registry.Descriptor
}

func (r *Resolver) inspect(ctx context.Context, q Request) (rep *Report) {
	rep = &Report{Reference: q.Ref}
	ref, err := name.ParseReference(q.Ref, r.nameOpts...)
	if err != nil {
		rep.Error = &Failure{Reason: "invalid-reference", Detail: err.Error()}
		return rep
	}
	st := statsMu{src: r.sourceFor(q), prove: q.Credentials != nil && r.client != nil}
	// Requests counts what this inspection sent: not what the cache, a
	// shared in-flight read or the breaker answered.
	var sent atomic.Int64
	ctx = registry.CountSent(ctx, &sent)
	defer func() { rep.Stats.Requests, rep.Override = int(sent.Load()), q.Override }()
	var lay *layoutSource
	if r.layouts != nil {
		// The one layout entry that names the reference answers for it,
		// and its layout alone supplies what it points to.
		if lay, rep.Layout, err = r.layouts.find(ref); err != nil {
			rep.Error = failure(err, ref, r.layouts.tried())
			return rep
		}
		st.src = lay
	}
	top, err := r.top(ctx, ref, &st)
	if err != nil {
		rep.Error = failure(err, ref, r.tried(ref))
		rep.Stats = st.get()
		return rep
	}
	rep.Digest, rep.MediaType = top.desc.Digest, top.desc.MediaType
	// A whole report is a pure function of immutable content (the digest),
	// the request and the node platforms: a warm run reads it in one piece.
	rkey := r.reportKey(rep.Digest, r.origin(ref, lay), q)
	var cached Report
	if b, ok := r.cache.get("reports", rkey); ok && decodeReport(b, &cached) == nil {
		r.hit(&st)
		requote(cached.Pulls, cached.Reference, q.Ref)
		cached.Reference = q.Ref
		cached.Layout = rep.Layout
		cached.Stats = st.get()
		return &cached
	}
	var w *walk
	switch {
	case isIndex(top.desc.MediaType):
		rep.Kind = KindIndex
		w = &walk{seen: map[string]bool{top.desc.Digest: true}}
		err = r.index(ctx, ref, top, nil, 0, q, rep, &st, w)
	case isManifest(top.desc.MediaType):
		rep.Kind = KindManifest
		e := Entry{Digest: top.desc.Digest, MediaType: top.desc.MediaType, Size: top.desc.Size}
		err = r.entry(ctx, ref, &e, top.raw, true, q, &st)
		rep.Entries = append(rep.Entries, e)
		rep.Base = baseFrom(top.raw)
	case isSchema1(top.desc.MediaType):
		rep.Kind = KindManifest
		r.schema1(top.raw, rep)
	default:
		rep.Error = &Failure{Reason: "unsupported", Detail: fmt.Sprintf("%s is %q, not an image manifest or index", ref, top.desc.MediaType)}
	}
	st.recordPanic(err)
	if p := st.panicked(); p != nil {
		rep.Error = internalFailure(p.value)
	}
	if err != nil && rep.Error == nil {
		rep.Error = failure(err, ref, r.tried(ref))
	}
	summarize(rep)
	r.pulls(rep, top, w)
	rep.Stats = st.get()
	if cacheable(rep) {
		r.cache.putJSON("reports", rkey, rep)
	}
	return rep
}

// requote makes the runtime messages of pulls, which quote the reference
// pulled (from, in a cached report), quote to instead. Most pulls have no
// message: the references are parsed only for those that do.
func requote(pulls []Pull, from, to string) {
	if from == to {
		return
	}
	var oldQ, newQ, oldCRIO, newCRIO string
	for i := range pulls {
		if pulls[i].Error == "" {
			continue
		}
		if oldQ == "" {
			oldQ, newQ = strconv.Quote(from), strconv.Quote(to)
			oldCRIO, newCRIO = "docker://"+platform.CRIORef(from)+": ", "docker://"+platform.CRIORef(to)+": "
		}
		pulls[i].Error = strings.ReplaceAll(strings.ReplaceAll(pulls[i].Error, oldQ, newQ), oldCRIO, newCRIO)
	}
}

func (r *Resolver) reportKey(dgst, origin string, q Request) string {
	var nodes []string
	for _, n := range r.nodes {
		nodes = append(nodes, platform.String(&n))
	}
	return fmt.Sprintf("v2|%s|%s|%t|%s|%s", dgst, origin, q.Verify && r.verifier != nil, overrideKey(q.Override), strings.Join(nodes, ","))
}

// origin names where an image's layer bytes come from: its registry
// (host:port), or the OCI layout directory. Verdicts, and the whole reports
// that hold them, are kept per origin: layers are streamed and verification
// stops early, so their bytes are never checked against their digest, and
// one registry's bytes must not answer for another's image of the same
// manifest digest. Manifests and configs are verified, so they are shared.
func (r *Resolver) origin(ref name.Reference, lay *layoutSource) string {
	if lay != nil {
		dir, err := filepath.Abs(string(lay.path))
		if err != nil {
			dir = string(lay.path)
		}
		return "oci-layout " + dir
	}
	return "registry " + ref.Context().RegistryStr()
}

// tried names where ref was looked for, for a failure.
func (r *Resolver) tried(ref name.Reference) string {
	if r.layouts != nil {
		return r.layouts.tried()
	}
	return "registry " + ref.Context().RegistryStr()
}

// cacheable reports whether a report holds only answers that cannot change:
// no errors, no entry skipped for a transient reason, no unverifiable
// verdict (which may come from a read that failed this time).
func cacheable(rep *Report) bool {
	if rep.Error != nil {
		return false
	}
	for _, e := range rep.Entries {
		if e.SkipReason.Transient() || e.Entrypoint != nil && e.Entrypoint.Verdict == VerdictUnverifiable {
			return false
		}
	}
	return true
}
