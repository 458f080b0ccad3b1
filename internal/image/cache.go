package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/archfit/archfit/internal/registry"
)

// cache keeps immutable things by digest (manifests, configs, verify
// verdicts) and tag->digest with a time, on disk when dir is set and in
// memory always. Entries are written atomically; a corrupt or mismatching
// file is ignored and rewritten.
type cache struct {
	dir string
	mu  sync.Mutex
	mem map[string][]byte
}

func newCache(dir string) *cache { return &cache{dir: dir, mem: map[string][]byte{}} }

// DefaultCacheDir is $XDG_CACHE_HOME/archfit or ~/.cache/archfit.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "archfit")
	}
	return ""
}

type tagEntry struct {
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType"`
	Seen      time.Time `json:"seen"`
}

func (c *cache) blobPath(digest string) string {
	algo, hexd, _ := strings.Cut(digest, ":")
	return filepath.Join(c.dir, "v1", "blobs", algo, hexd)
}

func keyHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// blob returns content that digest (sha256 or sha512) names.
func (c *cache) blob(digest string) ([]byte, bool) {
	c.mu.Lock()
	b, ok := c.mem["blob "+digest]
	c.mu.Unlock()
	if ok {
		return b, true
	}
	if c.dir == "" || registry.CheckDigest(digest) != nil {
		return nil, false
	}
	b, err := os.ReadFile(c.blobPath(digest))
	if err != nil || registry.VerifyDigest(digest, b) != nil {
		return nil, false
	}
	c.mu.Lock()
	c.mem["blob "+digest] = b
	c.mu.Unlock()
	return b, true
}

func (c *cache) putBlob(digest string, b []byte) {
	c.mu.Lock()
	c.mem["blob "+digest] = b
	c.mu.Unlock()
	if c.dir != "" && registry.CheckDigest(digest) == nil {
		writeAtomic(c.blobPath(digest), b)
	}
}

func (c *cache) tag(ref string) (tagEntry, bool) {
	var e tagEntry
	ok := c.getJSON("tags", ref, &e)
	return e, ok && e.Digest != ""
}

func (c *cache) putTag(ref string, e tagEntry) { c.putJSON("tags", ref, e) }

func (c *cache) getJSON(kind, key string, v any) bool {
	c.mu.Lock()
	b, ok := c.mem[kind+" "+key]
	c.mu.Unlock()
	if !ok && c.dir != "" {
		var err error
		b, err = os.ReadFile(filepath.Join(c.dir, "v1", kind, keyHash(key)+".json"))
		ok = err == nil
	}
	return ok && json.Unmarshal(b, v) == nil
}

func (c *cache) putJSON(kind, key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.mem[kind+" "+key] = b
	c.mu.Unlock()
	if c.dir != "" {
		writeAtomic(filepath.Join(c.dir, "v1", kind, keyHash(key)+".json"), b)
	}
}

// writeAtomic writes via a temporary file and rename; cache write errors are
// not fatal to an inspection, so they are dropped.
func writeAtomic(path string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
	}
}
