package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
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
	layout      *layoutSource
	cache       *cache
	verifier    Verifier
	concurrency int
	tagTTL      time.Duration
	nodes       []specs.Platform
	nameOpts    []name.Option
	client      *registry.Client
	plainHTTP   bool

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
// registries (air-gapped use, the shipped example).
func WithOCILayout(dir string) Option {
	return func(r *Resolver) error {
		l, err := newLayoutSource(dir)
		if err != nil {
			return err
		}
		r.src, r.layout = l, l
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

// LayoutReferences lists the references of the OCI layout source, if any.
func (r *Resolver) LayoutReferences() []string {
	if r.layout == nil {
		return nil
	}
	return r.layout.References()
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4 * r.concurrency)
	for i, q := range reqs {
		g.Go(func() error {
			out[i] = r.Inspect(gctx, q)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// Inspect inspects one reference. Identical requests in one run share one
// answer.
func (r *Resolver) Inspect(ctx context.Context, q Request) *Report {
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

// inspectSafely is inspect with a panic made the image's error: a bug
// triggered by one image's content must not end the run for the others.
func (r *Resolver) inspectSafely(ctx context.Context, q Request) (rep *Report) {
	defer func() {
		if p := recover(); p != nil {
			rep = &Report{Reference: q.Ref, Error: internalFailure(p)}
		}
	}()
	return r.inspect(ctx, q)
}

// panicError is a panic recovered while judging one image.
type panicError struct{ value any }

func (e panicError) Error() string { return fmt.Sprintf("internal error: panic: %v", e.value) }

// recovered turns a panic of fn into a panicError.
func recovered(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return fn()
}

// internalFailure is the Report.Error of an image whose inspection
// panicked: the panic value, not the stack.
func internalFailure(p any) *Failure {
	return &Failure{Reason: "internal-error", Detail: panicError{p}.Error()}
}

func overrideKey(o *Override) string {
	if o == nil {
		return ""
	}
	b, _ := json.Marshal(o)
	return string(b)
}

// call runs fn holding one of the concurrency slots.
func (r *Resolver) call(ctx context.Context, st *Stats, fn func() error) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	if r.src.remote() {
		st.Requests++
	}
	return fn()
}

type doc struct {
	raw  []byte
	desc registry.Descriptor
}

func (r *Resolver) inspect(ctx context.Context, q Request) *Report {
	rep := &Report{Reference: q.Ref}
	ref, err := name.ParseReference(q.Ref, r.nameOpts...)
	if err != nil {
		rep.Error = &Failure{Reason: "invalid-reference", Detail: err.Error()}
		return rep
	}
	st := statsMu{src: r.sourceFor(q), prove: q.Credentials != nil && r.client != nil}
	top, err := r.top(ctx, ref, &st)
	if err != nil {
		rep.Error = failure(err, ref, r.layout != nil)
		rep.Stats = st.get()
		return rep
	}
	rep.Digest, rep.MediaType = top.desc.Digest, top.desc.MediaType
	// A whole report is a pure function of immutable content (the digest),
	// the request and the node platforms: a warm run reads it in one piece.
	rkey := r.reportKey(rep.Digest, r.origin(ref), q)
	var cached Report
	if r.cache.getJSON("reports", rkey, &cached) {
		r.hit(&st)
		// Runtime messages quote the reference pulled: make them this one's.
		for i := range cached.Pulls {
			cached.Pulls[i].Error = strings.ReplaceAll(cached.Pulls[i].Error, fmt.Sprintf("%q", cached.Reference), fmt.Sprintf("%q", q.Ref))
		}
		cached.Reference = q.Ref
		cached.Stats = st.get()
		return &cached
	}
	switch {
	case isIndex(top.desc.MediaType):
		rep.Kind = KindIndex
		w := &walk{seen: map[string]bool{top.desc.Digest: true}}
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
		rep.Error = failure(err, ref, r.layout != nil)
	}
	summarize(rep)
	r.pulls(rep, top)
	rep.Stats = st.get()
	if cacheable(rep) {
		r.cache.putJSON("reports", rkey, rep)
	}
	return rep
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
func (r *Resolver) origin(ref name.Reference) string {
	if r.layout != nil {
		dir, err := filepath.Abs(string(r.layout.path))
		if err != nil {
			dir = string(r.layout.path)
		}
		return "oci-layout " + dir
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

// definitiveError marks an error about content that was verified by its
// digest (it does not parse): reading it again gives the same answer.
type definitiveError struct{ err error }

func (e definitiveError) Error() string { return e.err.Error() }
func (e definitiveError) Unwrap() error { return e.err }

func definitive(err error) error { return definitiveError{err} }

// skipReasonOf classifies why an entry could not be read: a 404 for a
// digest and content that does not parse are answers; anything else
// (network, timeout, 5xx, 429, credentials, a digest mismatch) may differ
// next time and must not be remembered.
func skipReasonOf(err error) SkipReason {
	var d definitiveError
	if errors.As(err, &d) || errors.Is(err, registry.ErrUnsupportedDigest) {
		return SkipInvalid
	}
	var he *registry.HTTPError
	if errors.As(err, &he) && he.StatusCode == http.StatusNotFound {
		return SkipNotFound
	}
	if errors.Is(err, fs.ErrNotExist) {
		return SkipNotFound // an OCI layout without the blob
	}
	return SkipUnreadable
}

// statsMu is one inspection's counters, and the source and proof rule of
// its Credentials (see Credentials).
type statsMu struct {
	mu    sync.Mutex
	s     Stats
	src   source // nil: the resolver's
	prove bool   // read the reference itself before using the cache
	panic *panicError
}

// recordPanic keeps the first panic of an inspection's goroutines.
func (s *statsMu) recordPanic(err error) {
	var p panicError
	if errors.As(err, &p) {
		s.mu.Lock()
		if s.panic == nil {
			s.panic = &p
		}
		s.mu.Unlock()
	}
}

func (s *statsMu) panicked() *panicError { s.mu.Lock(); defer s.mu.Unlock(); return s.panic }

// walk is what one image's index walk has read so far.
type walk struct {
	manifests, indexes int
	seen               map[string]bool // index digests walked
}

func (r *Resolver) source(st *statsMu) source {
	if st.src != nil {
		return st.src
	}
	return r.src
}

// sourceFor is the registry client of q's Credentials, one per ID.
func (r *Resolver) sourceFor(q Request) source {
	if q.Credentials == nil || r.client == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clients == nil {
		r.clients = map[string]*registry.Client{}
	}
	c, ok := r.clients[q.Credentials.ID]
	if !ok {
		c = r.client.ForKeychain(q.Credentials.Keychain)
		r.clients[q.Credentials.ID] = c
	}
	return registrySource{c}
}

// proveAccess reads a digest reference with the request's own credentials
// (HEAD, or GET where a registry refuses HEAD) before cached content is used.
func (r *Resolver) proveAccess(ctx context.Context, ref name.Reference, st *statsMu) error {
	src := r.source(st)
	err := r.callSt(ctx, st, func() (err error) { _, err = src.Head(ctx, ref); return })
	if err != nil {
		err = r.callSt(ctx, st, func() (err error) { _, _, err = src.Manifest(ctx, ref); return })
	}
	return err
}

func (s *statsMu) add(f func(*Stats)) { s.mu.Lock(); f(&s.s); s.mu.Unlock() }
func (s *statsMu) get() Stats         { s.mu.Lock(); defer s.mu.Unlock(); return s.s }

// top resolves the reference itself with as few round trips as the cache
// allows: a digest already cached costs nothing; a tag seen within the TTL
// costs nothing; a tag seen before costs one HEAD; a new tag one GET.
func (r *Resolver) top(ctx context.Context, ref name.Reference, st *statsMu) (doc, error) {
	if d, ok := ref.(name.Digest); ok {
		if st.prove {
			if err := r.proveAccess(ctx, ref, st); err != nil {
				return doc{}, err
			}
		}
		return r.manifestByDigest(ctx, ref.Context(), d.DigestStr(), "", st)
	}
	key := ref.Name()
	if te, ok := r.cache.tag(key); ok {
		if fresh(te.Seen, r.tagTTL) && !st.prove {
			if b, ok := r.cache.blob(te.Digest); ok {
				r.hit(st)
				return doc{raw: b, desc: registry.Descriptor{MediaType: te.MediaType, Digest: te.Digest, Size: int64(len(b))}}, nil
			}
		}
		if r.src.remote() {
			var hd registry.Descriptor
			err := r.callSt(ctx, st, func() (err error) { hd, err = r.source(st).Head(ctx, ref); return })
			if err == nil {
				if b, ok := r.cache.blob(hd.Digest); ok {
					r.hit(st)
					mt := hd.MediaType
					if mt == "" {
						mt = te.MediaType
					}
					r.cache.putTag(key, tagEntry{Digest: hd.Digest, MediaType: mt, Seen: time.Now()})
					return doc{raw: b, desc: registry.Descriptor{MediaType: mt, Digest: hd.Digest, Size: int64(len(b))}}, nil
				}
				return r.manifestByDigest(ctx, ref.Context(), hd.Digest, hd.MediaType, st)
			}
			// A failed HEAD (some registries refuse it) falls back to GET.
		}
	}
	var d doc
	err := r.callSt(ctx, st, func() (err error) { d.raw, d.desc, err = r.source(st).Manifest(ctx, ref); return })
	if err != nil {
		return doc{}, err
	}
	if d.desc.MediaType == "" || d.desc.MediaType == "application/json" || d.desc.MediaType == "text/plain" {
		d.desc.MediaType = sniffMediaType(d.raw)
	}
	r.cache.putBlob(d.desc.Digest, d.raw)
	r.cache.putJSON("mediatypes", d.desc.Digest, d.desc.MediaType)
	r.cache.putTag(key, tagEntry{Digest: d.desc.Digest, MediaType: d.desc.MediaType, Seen: time.Now()})
	return d, nil
}

func (r *Resolver) hit(st *statsMu) {
	r.hits.Add(1)
	st.add(func(s *Stats) { s.CacheHits++ })
}

func (r *Resolver) callSt(ctx context.Context, st *statsMu, fn func() error) error {
	var local Stats
	err := r.call(ctx, &local, fn)
	st.add(func(s *Stats) { s.Requests += local.Requests })
	return err
}

// manifestByDigest returns a manifest from the cache or fetches it once,
// however many reports need it at the same time.
func (r *Resolver) manifestByDigest(ctx context.Context, repo name.Repository, dgst, mtHint string, st *statsMu) (doc, error) {
	if b, ok := r.cache.blob(dgst); ok {
		r.hit(st)
		mt := mtHint
		if mt == "" {
			var cached string
			if r.cache.getJSON("mediatypes", dgst, &cached) {
				mt = cached
			}
		}
		if mt == "" {
			mt = sniffMediaType(b)
		}
		return doc{raw: b, desc: registry.Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(b))}}, nil
	}
	v, err, _ := r.flight.Do("manifest "+dgst, func() (any, error) {
		ref := repo.Digest(dgst)
		var d doc
		err := r.callSt(ctx, st, func() (err error) { d.raw, d.desc, err = r.source(st).Manifest(ctx, ref); return })
		if err != nil {
			return doc{}, err
		}
		if d.desc.MediaType == "" || d.desc.MediaType == "application/json" || d.desc.MediaType == "text/plain" {
			d.desc.MediaType = sniffMediaType(d.raw)
		}
		if mtHint != "" && d.desc.MediaType == "" {
			d.desc.MediaType = mtHint
		}
		r.cache.putBlob(dgst, d.raw)
		r.cache.putJSON("mediatypes", dgst, d.desc.MediaType)
		return d, nil
	})
	if err != nil {
		return doc{}, err
	}
	return v.(doc), nil
}

func (r *Resolver) blob(ctx context.Context, repo name.Repository, dgst string, st *statsMu) ([]byte, error) {
	if b, ok := r.cache.blob(dgst); ok {
		r.hit(st)
		return b, nil
	}
	v, err, _ := r.flight.Do("blob "+dgst, func() (any, error) {
		var b []byte
		err := r.callSt(ctx, st, func() (err error) { b, err = r.source(st).Blob(ctx, repo, dgst); return })
		if err != nil {
			return nil, err
		}
		r.cache.putBlob(dgst, b)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// index walks an index (nested ones too), filling rep.Entries in order.
func (r *Resolver) index(ctx context.Context, ref name.Reference, d doc, parents []string, depth int, q Request, rep *Report, st *statsMu, w *walk) error {
	var idx specs.Index
	if err := json.Unmarshal(d.raw, &idx); err != nil {
		return fmt.Errorf("parsing index %s: %w", d.desc.Digest, err)
	}
	if depth == 0 && rep.Base == nil {
		rep.Base = baseFromAnnotations(idx.Annotations)
	}
	var jobs []*Entry
	start := len(rep.Entries)
	for k, m := range idx.Manifests {
		if w.manifests >= MaxManifestsPerImage {
			rep.Entries = append(rep.Entries, Entry{Digest: d.desc.Digest, MediaType: d.desc.MediaType, Nested: parents,
				SkipReason: SkipTooManyEntries, Skipped: fmt.Sprintf("%d more entries of this index not read: an image is read up to %d manifests", len(idx.Manifests)-k, MaxManifestsPerImage)})
			break
		}
		w.manifests++
		e := Entry{Digest: m.Digest.String(), MediaType: m.MediaType, Size: m.Size, Platform: m.Platform, Nested: parents}
		if m.Annotations[annotationRefType] == attestationManifestRef || platform.IsUnknown(m.Platform) {
			e.Attestation = true
			e.AttestsDigest = m.Annotations[annotationRefDigest]
		}
		if err := registry.CheckDigest(e.Digest); err != nil {
			e.skip(SkipInvalid, err.Error())
		}
		switch {
		case e.SkipReason != "":
		case e.Attestation:
		case isIndex(m.MediaType):
			switch {
			case e.Digest == rep.Digest || slices.Contains(parents, e.Digest):
				e.skip(SkipCycle, "nested index is one of its own parents")
			case w.seen[e.Digest]:
				e.skip(SkipRepeatedIndex, "nested index already listed in this image")
			case depth+1 >= maxNestedIndexDepth:
				e.skip(SkipNestedTooDeep, fmt.Sprintf("nested index deeper than %d levels", maxNestedIndexDepth))
			case w.indexes >= MaxNestedIndexes:
				e.skip(SkipTooManyEntries, fmt.Sprintf("nested index not read: an image is read up to %d nested indexes", MaxNestedIndexes))
			}
			if e.SkipReason != "" {
				break
			}
			w.seen[e.Digest] = true
			w.indexes++
			child, err := r.manifestByDigest(ctx, ref.Context(), e.Digest, m.MediaType, st)
			if err != nil {
				e.skip(skipReasonOf(err), "nested index unreadable: "+err.Error())
				break
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("entry %s is a nested index; its entries are listed with nested=[...]", short(e.Digest)))
			if err := r.index(ctx, ref, child, append(slices.Clone(parents), e.Digest), depth+1, q, rep, st, w); err != nil {
				return err
			}
			continue
		case isSchema1(m.MediaType):
			e.skip(SkipSchema1, "Docker schema 1 manifest: refused by containerd >= 2.1")
		case !isManifest(m.MediaType):
			e.skip(SkipUnknownMediaType, fmt.Sprintf("unknown media type %q", m.MediaType))
		}
		rep.Entries = append(rep.Entries, e)
	}
	// Entries are examined concurrently; each one is independent.
	for i := start; i < len(rep.Entries); i++ {
		e := &rep.Entries[i]
		if e.Attestation || e.SkipReason != "" || len(e.Nested) != len(parents) {
			continue
		}
		if e.Platform == nil || q.Verify {
			jobs = append(jobs, e)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, e := range jobs {
		g.Go(func() error {
			st.recordPanic(recovered(func() error {
				md, err := r.manifestByDigest(gctx, ref.Context(), e.Digest, e.MediaType, st)
				if err != nil {
					e.skip(skipReasonOf(err), "manifest unreadable: "+err.Error())
					return nil
				}
				if err := r.entry(gctx, ref, e, md.raw, q.Verify, q, st); err != nil {
					st.recordPanic(err)
					e.skip(skipReasonOf(err), err.Error())
				}
				return nil
			}))
			return nil
		})
	}
	_ = g.Wait()
	return ctx.Err()
}

// entry reads an image manifest's config (platform, Env, Entrypoint/Cmd)
// and, when asked, verifies its entrypoint binary.
func (r *Resolver) entry(ctx context.Context, ref name.Reference, e *Entry, raw []byte, verify bool, q Request, st *statsMu) error {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return definitive(fmt.Errorf("parsing manifest %s: %w", e.Digest, err))
	}
	cfgRaw, err := r.blob(ctx, ref.Context(), m.Config.Digest.String(), st)
	if err != nil {
		return fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return definitive(fmt.Errorf("parsing config %s: %w", m.Config.Digest, err))
	}
	e.ConfigPlatform = &specs.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	e.Config = &Exec{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, WorkingDir: cf.Config.WorkingDir, Path: pathFromEnv(cf.Config.Env)}
	if e.Platform != nil && !platform.IsUnknown(e.Platform) {
		if platform.Arch(*e.Platform) != platform.Arch(*e.ConfigPlatform) || e.Platform.OS != e.ConfigPlatform.OS {
			e.Mismatch = fmt.Sprintf("index says %s, config says %s", platform.String(e.Platform), platform.String(e.ConfigPlatform))
		}
	}
	if !verify || r.verifier == nil {
		return nil
	}
	want := platform.Arch(*e.ConfigPlatform)
	if e.Platform != nil {
		want = platform.Arch(*e.Platform)
	}
	// What runs depends only on argv[0] (the arguments never change which
	// file the kernel executes), so pods that start the same image with the
	// same program but other arguments share one verification.
	vkey := fmt.Sprintf("%s|%s|%s|%q", e.Digest, r.origin(ref), want, argv0(cf.Config, q.Override))
	if a := argv0(cf.Config, q.Override); q.Override != nil && q.Override.PathSet && !strings.Contains(a, "/") {
		// A bare name is looked up on the pod's own PATH.
		vkey += fmt.Sprintf("|PATH=%q", q.Override.Path)
	}
	var ep Entrypoint
	if r.cache.getJSON("verify", vkey, &ep) {
		r.hit(st)
		e.Entrypoint = &ep
		e.GoVersion = ep.GoSettings["GOVERSION"]
	} else {
		v, err, _ := r.flight.Do("verify "+vkey, func() (any, error) {
			img, err := toV1Image(ctx, r.source(st), ref.Context(), raw, e.MediaType, cfgRaw)
			if err != nil {
				return nil, err
			}
			var res *Entrypoint
			err = r.callSt(ctx, st, func() error {
				return recovered(func() (err error) { res, err = r.verifier(ctx, img, want, q.Override); return })
			})
			if err != nil {
				return nil, err
			}
			if res.LayersRead > 1 && r.src.remote() {
				st.add(func(s *Stats) { s.Requests += res.LayersRead - 1 })
			}
			if res.Verdict != VerdictUnverifiable {
				r.cache.putJSON("verify", vkey, res)
			}
			return res, nil
		})
		if errors.As(err, new(panicError)) {
			return err
		}
		if err != nil {
			e.Entrypoint = &Entrypoint{Verdict: VerdictUnverifiable, Detail: err.Error()}
		} else {
			e.Entrypoint = v.(*Entrypoint)
			e.GoVersion = e.Entrypoint.GoSettings["GOVERSION"]
			st.add(func(s *Stats) { s.Bytes += e.Entrypoint.BytesRead })
		}
	}
	if e.Entrypoint.Verdict == VerdictWrongArch && e.Mismatch == "" {
		e.Mismatch = fmt.Sprintf("entry claims %s, entrypoint %s is %s", want, e.Entrypoint.Path, e.Entrypoint.Arch)
	}
	return nil
}

// argv0 is the program a container runs: the pod's command, else the
// image Entrypoint, else the pod's args or the image Cmd (as containerd
// combines them).
func argv0(cfg v1.Config, o *Override) string {
	var argv []string
	switch {
	case o != nil && len(o.Command) > 0:
		argv = o.Command
	case len(cfg.Entrypoint) > 0:
		argv = cfg.Entrypoint
	case o != nil && len(o.Args) > 0:
		argv = o.Args
	default:
		argv = cfg.Cmd
	}
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}

func pathFromEnv(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			return v
		}
	}
	return ""
}

func (r *Resolver) schema1(raw []byte, rep *Report) {
	var m struct {
		Architecture string `json:"architecture"`
	}
	_ = json.Unmarshal(raw, &m)
	p := &specs.Platform{OS: "linux", Architecture: m.Architecture}
	rep.Entries = append(rep.Entries, Entry{Digest: rep.Digest, MediaType: rep.MediaType, ConfigPlatform: p})
	rep.Notes = append(rep.Notes, "Docker schema 1 manifest: deprecated, refused by containerd >= 2.1; re-push it with a current client")
}

func baseFrom(raw []byte) *BaseImage {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(raw, &m)
	return baseFromAnnotations(m.Annotations)
}

func baseFromAnnotations(a map[string]string) *BaseImage {
	if a[annotationBaseName] == "" && a[annotationBaseDigest] == "" {
		return nil
	}
	return &BaseImage{Name: a[annotationBaseName], Digest: a[annotationBaseDigest]}
}

// runnable reports whether an entry is a real image a node could run.
func (e *Entry) runnable() bool { return !e.Attestation && e.SkipReason == "" }

// EffectivePlatform is the platform a runtime matches the entry by: the
// index's, or its config's when the index declares none.
func (e *Entry) EffectivePlatform() *specs.Platform {
	if e.Platform != nil {
		return e.Platform
	}
	return e.ConfigPlatform
}

// Runs reports whether the entry's content really runs on a node of arch,
// and why not. 386 runs on amd64 and 32-bit arm on arm64 (where the CPU has
// AArch32), which is what the runtimes' fallbacks rely on.
func (e *Entry) Runs(arch string) (bool, string) {
	if ep := e.Entrypoint; ep != nil && ep.Arch != "" && (ep.Verdict == VerdictOK || ep.Verdict == VerdictWrongArch) {
		if !compatible(ep.Arch, arch) {
			return false, fmt.Sprintf("entrypoint %s is %s", ep.Path, ep.Arch)
		}
		return true, ""
	}
	if e.ConfigPlatform != nil && !compatible(platform.Arch(*e.ConfigPlatform), arch) {
		return false, fmt.Sprintf("config says %s", platform.String(e.ConfigPlatform))
	}
	return true, ""
}

func compatible(binArch, nodeArch string) bool {
	return binArch == nodeArch || nodeArch == "amd64" && binArch == "386" || nodeArch == "arm64" && binArch == "arm"
}

func summarize(rep *Report) {
	seenP, seenA := map[string]bool{}, map[string]bool{}
	for i := range rep.Entries {
		e := &rep.Entries[i]
		if !e.runnable() {
			continue
		}
		p := e.EffectivePlatform()
		if p == nil {
			continue
		}
		if s := platform.String(p); !seenP[s] {
			seenP[s] = true
			rep.Platforms = append(rep.Platforms, s)
		}
		arch := platform.Arch(*p)
		if ok, _ := e.Runs(arch); ok && !seenA[arch] {
			seenA[arch] = true
			rep.Architectures = append(rep.Architectures, arch)
		}
		if e.Mismatch != "" {
			rep.Problems = append(rep.Problems, Problem{Code: "mislabeled-platform", Entry: e.Digest, Detail: e.Mismatch})
		}
		if ep := e.Entrypoint; ep != nil {
			switch ep.Verdict {
			case VerdictNotExecutable, VerdictMissingInterp:
				rep.Problems = append(rep.Problems, Problem{Code: "not-an-executable", Entry: e.Digest, Detail: ep.Detail})
			}
			if lvl := ep.GoSettings["GOAMD64"]; lvl != "" && lvl != "v1" {
				rep.Problems = append(rep.Problems, Problem{Code: "cpu-level-unsupported", Entry: e.Digest,
					Detail: fmt.Sprintf("Go binary built with GOAMD64=%s: fails on amd64 CPUs below x86-64-%s", lvl, lvl)})
			}
		}
	}
	sort.Strings(rep.Architectures)
	rep.EffectivelySingleArch = rep.Kind == KindIndex && len(rep.Platforms) == 1
	if rep.EffectivelySingleArch {
		rep.Notes = append(rep.Notes, fmt.Sprintf("index with one runnable platform (%s): effectively single-arch", rep.Platforms[0]))
	}
}

// pulls computes what each node type would pull, under each runtime.
func (r *Resolver) pulls(rep *Report, top doc) {
	if rep.Error != nil || len(rep.Entries) == 0 {
		return
	}
	for _, node := range r.nodes {
		nodeArch := platform.Arch(node)
		for _, rt := range platform.Runtimes {
			p := Pull{Node: platform.String(&node), Runtime: rt}
			var chosen *Entry
			if rep.Kind == KindIndex {
				d, err := platform.Choose(rt, node, r.runtimeIndex(rep, top))
				if err != nil {
					p.Error = err.Error()
					if rt != platform.CRIO {
						p.Error = fmt.Sprintf("failed to pull and unpack image %q: %s", rep.Reference, err)
					}
					f := false
					p.Runs = &f
					rep.Pulls = append(rep.Pulls, p)
					continue
				}
				for i := range rep.Entries {
					if rep.Entries[i].Digest == d.Digest.String() {
						chosen = &rep.Entries[i]
						break
					}
				}
			} else {
				chosen = &rep.Entries[0]
				p.Reason = "single manifest: pulled whatever its platform, fails only at exec"
			}
			if chosen == nil {
				continue
			}
			p.Digest = chosen.Digest
			p.Platform = platform.String(chosen.EffectivePlatform())
			runs, why := chosen.Runs(nodeArch)
			if runs && chosen.EffectivePlatform() != nil {
				if a := platform.Arch(*chosen.EffectivePlatform()); a == "arm" && nodeArch == "arm64" {
					why = "32-bit arm entry: runs only where the CPU and kernel support AArch32 (not Graviton4, not AmpereOne)"
				}
			}
			p.Runs = &runs
			if why != "" {
				if p.Reason != "" {
					p.Reason += "; "
				}
				p.Reason += why
			}
			rep.Pulls = append(rep.Pulls, p)
		}
	}
}

// runtimeIndex is the top index as a runtime sees it, with nested indexes
// flattened in place (containerd walks into them) and config platforms of
// entries that declare none.
func (r *Resolver) runtimeIndex(rep *Report, top doc) platform.Index {
	idx := platform.Index{Ref: rep.Reference, Digest: digest.Digest(top.desc.Digest), MediaType: top.desc.MediaType, Raw: top.raw,
		ConfigPlatform: map[digest.Digest]specs.Platform{}}
	for _, e := range rep.Entries {
		if e.SkipReason == SkipTooManyEntries && isIndex(e.MediaType) && e.Platform == nil {
			continue // stands for the unread rest of an index, not an entry
		}
		d := specs.Descriptor{MediaType: e.MediaType, Digest: digest.Digest(e.Digest), Size: e.Size, Platform: e.Platform}
		if e.Attestation {
			d.Annotations = map[string]string{annotationRefType: attestationManifestRef}
		}
		idx.Manifests = append(idx.Manifests, d)
		if e.Platform == nil && e.ConfigPlatform != nil {
			idx.ConfigPlatform[d.Digest] = *e.ConfigPlatform
		}
	}
	return idx
}

func short(d string) string {
	if _, h, ok := strings.Cut(d, ":"); ok && len(h) > 12 {
		return h[:12]
	}
	return d
}

// failure classifies why an image could not be inspected.
func failure(err error, ref name.Reference, layout bool) *Failure {
	f := &Failure{Detail: err.Error(), Tried: "registry " + ref.Context().RegistryStr()}
	if layout {
		f.Tried = "OCI layout"
	}
	var he *registry.HTTPError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &he):
		f.Reason, f.Status = he.Reason(), he.StatusCode
	case errors.Is(err, registry.ErrTooLarge), errors.Is(err, registry.ErrDigestMismatch), errors.Is(err, registry.ErrUnsupportedDigest):
		f.Reason = "invalid"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		f.Reason = "timeout"
	case errors.As(err, &ne), errors.As(err, &ue):
		f.Reason = "unreachable"
	default:
		f.Reason = "error"
	}
	return f
}
