package verify

import (
	"container/list"
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/image"
)

// Cache remembers what verifications learned from each layer, so a layer
// shared by the entries or images of one run is read once: its tar index
// (paths, modes, sizes, links, whiteouts; never file bytes) and the first
// bytes of the few files a verification read (ELF headers, #! lines).
// Layers are keyed by their origin (image.LayerOrigin: the registry or OCI
// layout they stream from) and digest: streamed layers are never checked
// against their digest, so one origin's bytes must not answer for another's.
// Images with no origin are not cached.
//
// A layer indexed only partly (the verification had its answer before the
// layer's end) is kept too; a later verification that needs more of it
// reads it again, this time to its end, so a layer is usually streamed for
// its index at most twice per run (more when the cache evicts it or a read
// stops on a limit, an error or a cancel). Two verifications that need the
// same layer at the same time take turns: the second waits, bounded only by
// its context, for the first's whole stream. A verification that panics
// while it reads a layer (the resolver makes that its image's error)
// publishes nothing of it and lets the waiters go: the next one reads it.
//
// Memory is bounded by CacheLimits, least recently used layers and files
// first out. Safe for concurrent use; create one per run.
type Cache struct {
	limits CacheLimits

	mu       sync.Mutex
	layers   lru[layerKey, *cachedLayer]
	files    lru[fileKey, fileData]
	inflight map[layerKey]chan struct{}
}

// CacheLimits bound a Cache.
type CacheLimits struct {
	// Entries is the most index entries (paths, whiteouts, opaque
	// directories) kept over all layers, in units of ~150 bytes: a
	// longer name or link target counts as several.
	Entries int
	// FileBytes is the most file bytes kept over all files; File the most
	// of one file (longer reads, such as a Go binary read whole for its
	// build info, are not kept).
	FileBytes int64
	File      int64
}

// DefaultCacheLimits keep a few hundred thousand paths (a Debian rootfs
// has ~10,000, a large image ~100,000) and 16 MiB of file heads: well
// under 100 MB: an entry with long names counts as several (cost).
func DefaultCacheLimits() CacheLimits {
	return CacheLimits{Entries: 400_000, FileBytes: 16 << 20, File: 64 << 10}
}

// NewCache returns an empty cache; zero limits take their defaults.
func NewCache(l CacheLimits) *Cache {
	d := DefaultCacheLimits()
	if l.Entries <= 0 {
		l.Entries = d.Entries
	}
	if l.FileBytes <= 0 {
		l.FileBytes = d.FileBytes
	}
	if l.File <= 0 {
		l.File = d.File
	}
	c := &Cache{limits: l, inflight: map[layerKey]chan struct{}{}}
	c.layers.init(int64(l.Entries))
	c.files.init(l.FileBytes)
	return c
}

// Verifier is the package's Verifier sharing c: give it to the run's
// image.Resolver (image.WithVerifier).
func (c *Cache) Verifier(ctx context.Context, img v1.Image, wantArch string, o *image.Override) (*image.Entrypoint, error) {
	return Entrypoint(ctx, img, append(verifierOptions(wantArch, o), WithCache(c))...)
}

type layerKey struct {
	origin string
	digest string
}

type fileKey struct {
	layer layerKey
	path  string
}

// cachedLayer is a published index. Its maps are never written again:
// verifications read them concurrently.
type cachedLayer struct {
	ix   *layerIndex
	cost int64 // ix.cost(), computed once
}

// cost counts an index in Entries units: one per entry of a real path's
// size, more for long names and link targets, so that Entries bounds bytes.
func (ix *layerIndex) cost() int64 {
	const unit = 150
	var n int64
	for p, e := range ix.entries {
		n += 1 + int64(len(p)+len(e.link))/unit
	}
	for p := range ix.whiteout {
		n += 1 + int64(len(p))/unit
	}
	for p := range ix.opaque {
		n += 1 + int64(len(p))/unit
	}
	return n
}

// acquire returns the cached index of k when there is one that will do (a
// complete one, or any when more is false). Otherwise it waits while
// another verification streams k, and then either returns what that one
// published or makes the caller the one that streams k (held): the caller
// must then call publish or release.
func (c *Cache) acquire(ctx context.Context, k layerKey, more bool) (cl *cachedLayer, held bool, err error) {
	for {
		c.mu.Lock()
		cl, ok := c.layers.get(k)
		if ok && (cl.ix.complete || !more) {
			c.mu.Unlock()
			return cl, false, nil
		}
		ch, busy := c.inflight[k]
		if !busy {
			c.inflight[k] = make(chan struct{})
			c.mu.Unlock()
			return cl, true, nil
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// publish stores ix as k's index, unless a bigger one is kept already, and
// releases k. ix must not be written afterwards.
func (c *Cache) publish(k layerKey, ix *layerIndex) {
	cost := ix.cost() // outside the lock: it walks the index
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.layers.get(k); !ok || ix.complete || !old.ix.complete && cost > old.cost {
		c.layers.put(k, &cachedLayer{ix: ix, cost: cost}, cost)
	}
	c.releaseLocked(k)
}

func (c *Cache) release(k layerKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(k)
}

func (c *Cache) releaseLocked(k layerKey) {
	if ch, ok := c.inflight[k]; ok {
		close(ch)
		delete(c.inflight, k)
	}
}

func (c *Cache) file(k fileKey) (fileData, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.files.get(k)
}

func (c *Cache) putFile(k fileKey, d fileData) {
	if int64(len(d.b)) > c.limits.File {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.files.get(k); ok && (old.whole || len(old.b) >= len(d.b)) {
		return
	}
	c.files.put(k, d, int64(len(d.b))+int64(len(k.path))+64)
}

// lru is a map with a total cost bound that drops the least recently used
// values first. A value costing more than the bound is not kept. Not safe
// for concurrent use (Cache locks around it).
type lru[K comparable, V any] struct {
	max, used int64
	order     *list.List // front: most recent
	items     map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	k    K
	v    V
	cost int64
}

func (l *lru[K, V]) init(max int64) {
	l.max, l.order, l.items = max, list.New(), map[K]*list.Element{}
}

func (l *lru[K, V]) get(k K) (V, bool) {
	el, ok := l.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.order.MoveToFront(el)
	return el.Value.(*lruItem[K, V]).v, true
}

func (l *lru[K, V]) put(k K, v V, cost int64) {
	if el, ok := l.items[k]; ok {
		l.used -= el.Value.(*lruItem[K, V]).cost
		l.order.Remove(el)
		delete(l.items, k)
	}
	if cost > l.max {
		return
	}
	for l.used+cost > l.max {
		el := l.order.Back()
		it := el.Value.(*lruItem[K, V])
		l.used -= it.cost
		l.order.Remove(el)
		delete(l.items, it.k)
	}
	l.items[k] = l.order.PushFront(&lruItem[K, V]{k: k, v: v, cost: cost})
	l.used += cost
}
