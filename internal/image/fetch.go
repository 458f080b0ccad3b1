package image

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/registry"
)

// Reading by digest, with the run's accounting, credentials and cache.

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
	// children are the entries of every index walked, by its digest, as
	// the runtime reads them (for the pull prediction).
	children map[digest.Digest][]specs.Descriptor
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
		return r.manifestByDigest(ctx, ref.Context(), d.DigestStr(), "", false, st)
	}
	key := ref.Name()
	// Tags are remembered for registries only: an OCI layout answers a tag
	// for free, and another layout (or a registry) may name another image
	// with it.
	if te, ok := r.cache.tag(key); ok && r.src.remote() {
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
					r.cache.putTag(key, tagEntry{Digest: hd.Digest, MediaType: mt, Seen: time.Now(), Manifest: b})
					return doc{raw: b, desc: registry.Descriptor{MediaType: mt, Digest: hd.Digest, Size: int64(len(b))}}, nil
				}
				return r.manifestByDigest(ctx, ref.Context(), hd.Digest, hd.MediaType, false, st)
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
	if r.src.remote() {
		// The manifest is kept in the tag's file.
		r.cache.putMemBlob(d.desc.Digest, d.raw)
		if sniffMediaType(d.raw) != d.desc.MediaType {
			r.cache.putJSON("mediatypes", d.desc.Digest, d.desc.MediaType)
		}
		r.cache.putTag(key, tagEntry{Digest: d.desc.Digest, MediaType: d.desc.MediaType, Seen: time.Now(), Manifest: d.raw})
	} else {
		r.putManifest(d)
	}
	return d, nil
}

func (r *Resolver) hit(st *statsMu) {
	r.hits.Add(1)
	st.add(func(s *Stats) { s.CacheHits++ })
}

func (r *Resolver) callSt(ctx context.Context, st *statsMu, fn func() error) error {
	return r.call(ctx, fn)
}

// manifestByDigest returns a manifest from the cache or fetches it once,
// however many reports need it at the same time. An image manifest (entry
// set) is looked for in its entryFile too, and is written to disk in it by
// entry, not on its own.
func (r *Resolver) manifestByDigest(ctx context.Context, repo name.Repository, dgst, mtHint string, entry bool, st *statsMu) (doc, error) {
	b, ok := r.cache.blob(dgst)
	if !ok && r.cache.loadEntry(dgst) {
		b, ok = r.cache.blob(dgst)
	}
	if ok {
		r.hit(st)
		return r.cachedDoc(dgst, mtHint, b), nil
	}
	v, err, _ := r.flight.Do("manifest "+dgst, func() (any, error) {
		// Another request may have read it and left the flight since
		// the look above (singleflight forgets a key once its flight
		// ends): a second look, so that it is read once per run.
		if b, ok := r.cache.blob(dgst); ok {
			r.hit(st)
			return r.cachedDoc(dgst, mtHint, b), nil
		}
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
		if entry {
			r.cache.putMemBlob(dgst, d.raw)
		} else {
			r.putManifest(doc{raw: d.raw, desc: registry.Descriptor{MediaType: d.desc.MediaType, Digest: dgst}})
		}
		return d, nil
	})
	if err != nil {
		return doc{}, err
	}
	return v.(doc), nil
}

// cachedDoc is the manifest b, found in the cache under dgst, with its
// media type: the hint, else the one cached beside it, else sniffed.
func (r *Resolver) cachedDoc(dgst, mtHint string, b []byte) doc {
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
	return doc{raw: b, desc: registry.Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(b))}}
}

// putManifest caches a manifest read by its digest, and its media type
// when the body does not say it (sniffMediaType is what a read without a
// cached media type falls back on): a cold run writes one file per
// manifest, not two.
func (r *Resolver) putManifest(d doc) {
	r.cache.putBlob(d.desc.Digest, d.raw)
	if sniffMediaType(d.raw) != d.desc.MediaType {
		r.cache.putJSON("mediatypes", d.desc.Digest, d.desc.MediaType)
	}
}

// blob returns a config from the cache or fetches it once; what it
// fetches is kept in memory: entry writes it to disk in its entryFile.
func (r *Resolver) blob(ctx context.Context, repo name.Repository, dgst string, st *statsMu) ([]byte, error) {
	if b, ok := r.cache.blob(dgst); ok {
		r.hit(st)
		return b, nil
	}
	v, err, _ := r.flight.Do("blob "+dgst, func() (any, error) {
		if b, ok := r.cache.blob(dgst); ok { // see manifestByDigest
			r.hit(st)
			return b, nil
		}
		var b []byte
		err := r.callSt(ctx, st, func() (err error) { b, err = r.source(st).Blob(ctx, repo, dgst); return })
		if err != nil {
			return nil, err
		}
		r.cache.putMemBlob(dgst, b)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// layout is the OCI layout that answered for the inspection, if any.
func (s *statsMu) layout() *layoutSource { l, _ := s.src.(*layoutSource); return l }
