package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
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
//
// The disk cache is trusted only as far as nobody else can write it:
// directories are created 0700 and files 0600, and a file (or its
// directory) that is not owned by the user or is open to group or others is
// ignored (blobs are checked against their digest in any case).
//
// Files are written behind the inspection, by one goroutine, in the order
// put (what is put is in memory at once, so the run never waits for them):
// a cold run writes thousands of small files, and creating them one at a
// time costs the file system far less CPU than creating them from every
// goroutine at once (they contend for the directory). flush waits for
// them; Inspect and InspectAll return only after it.
type cache struct {
	dir  string
	mu   sync.Mutex
	mem  map[string][]byte
	once sync.Once
	dirs sync.Map // directory -> private (bool), checked once per run

	// verdicts are the entrypoint verdicts known this run by manifest
	// digest, for its entryFile; loaded: the entryFiles read.
	verdicts map[string]map[string]json.RawMessage
	loaded   sync.Map // digest -> *entryLoad

	wmu     sync.Mutex
	queue   []pendingWrite
	writing bool
	idle    *sync.Cond // on wmu: the writer stopped with the queue empty
}

// entryLoad is the one read of an entryFile in a run: every caller waits
// for it, so none misses what it holds while another goroutine reads it.
type entryLoad struct {
	once sync.Once
	read bool
}

// maxEntryVerdicts bounds the verdicts an entryFile keeps: each key names
// a command, a PATH and an origin, and a long-lived cache (archfit serve,
// CI) would otherwise gather them without end. This run's come first.
const maxEntryVerdicts = 256

// maxCacheFile bounds what is read of one cache file (a manifest and a
// config, each bounded when fetched, and verdicts).
const maxCacheFile = 64 << 20

type pendingWrite struct {
	path string
	b    []byte
}

func newCache(dir string) *cache {
	c := &cache{dir: dir, mem: map[string][]byte{}, verdicts: map[string]map[string]json.RawMessage{}}
	c.idle = sync.NewCond(&c.wmu)
	return c
}

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
	// Manifest is the manifest or index the tag named (checked against
	// Digest when read): one file per tag, not two.
	Manifest []byte `json:"manifest,omitempty"`
}

// fresh reports whether an answer seen at seen is younger than ttl. One
// dated in the future (a clock set back, a planted file) is stale: it would
// otherwise be trusted forever.
func fresh(seen time.Time, ttl time.Duration) bool {
	age := time.Since(seen)
	return age >= 0 && age < ttl
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
	b, ok = c.read(c.blobPath(digest))
	if !ok || registry.VerifyDigest(digest, b) != nil {
		return nil, false
	}
	c.mu.Lock()
	c.mem["blob "+digest] = b
	c.mu.Unlock()
	return b, true
}

// putBlob keeps b, which the caller verified against digest.
func (c *cache) putBlob(digest string, b []byte) {
	c.mu.Lock()
	c.mem["blob "+digest] = b
	c.mu.Unlock()
	if c.dir != "" && registry.CheckDigest(digest) == nil {
		c.write(c.blobPath(digest), b)
	}
}

// putMemBlob keeps b, which the caller verified against digest, for this
// run only: an entry's manifest and config go to disk in its entryFile.
func (c *cache) putMemBlob(digest string, b []byte) {
	c.mu.Lock()
	c.mem["blob "+digest] = b
	c.mu.Unlock()
}

// entryFile is what the inspection of one image manifest (an index entry,
// or a single manifest) read and found, in one file instead of one per
// object (a cold run of 300 images wrote ~1,400 files for them, and
// creating a file costs more than writing it): the manifest, its config,
// and the verdicts of its entrypoint. Everything in it is checked as the
// single files are: the manifest and the config against their digests,
// verdicts only for this manifest's digest.
type entryFile struct {
	Manifest     []byte                     `json:"manifest"`
	MediaType    string                     `json:"mediaType,omitempty"`
	ConfigDigest string                     `json:"configDigest,omitempty"`
	Config       []byte                     `json:"config,omitempty"`
	Verify       map[string]json.RawMessage `json:"verify,omitempty"`
}

func (c *cache) entryPath(digest string) string {
	return filepath.Join(c.dir, "v1", "entries", keyHash(digest)+".json")
}

// putVerdict keeps the verdict v (JSON) of the entry digest under key,
// in memory and in the entry's next entryFile.
func (c *cache) putVerdict(digest, key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mem["verify "+key] = b
	if c.verdicts[digest] == nil {
		c.verdicts[digest] = map[string]json.RawMessage{}
	}
	c.verdicts[digest][key] = b
}

// putEntry writes what an entry's inspection read (see entryFile), with
// every verdict of it known this run, and those another run sharing the
// cache directory wrote since this one read the file (the file is
// rewritten whole, so they would be lost), up to maxEntryVerdicts.
func (c *cache) putEntry(digest string, e entryFile) {
	if c.dir == "" || registry.CheckDigest(digest) != nil {
		return
	}
	path := c.entryPath(digest)
	var disk map[string]json.RawMessage
	if b, ok := c.read(path); ok {
		var old entryFile
		if json.Unmarshal(b, &old) == nil && registry.VerifyDigest(digest, old.Manifest) == nil {
			disk = old.Verify
		}
	}
	c.mu.Lock()
	v := c.verdicts[digest]
	e.Verify = make(map[string]json.RawMessage, min(len(v)+len(disk), maxEntryVerdicts))
	for k, b := range v {
		if len(e.Verify) < maxEntryVerdicts {
			e.Verify[k] = b
		}
	}
	c.mu.Unlock()
	for k, b := range disk {
		if _, have := e.Verify[k]; !have && len(e.Verify) < maxEntryVerdicts && strings.HasPrefix(k, digest+"|") {
			e.Verify[k] = b
		}
	}
	if len(e.Verify) == 0 {
		e.Verify = nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	c.write(path, b)
}

// loadEntry reads the entryFile of a manifest digest into memory, once a
// run: its manifest (and media type), its config and its verdicts. Every
// caller waits for that one read; it reports whether the file was read (so
// the caller looks in memory again).
func (c *cache) loadEntry(digest string) bool {
	if c.dir == "" || registry.CheckDigest(digest) != nil {
		return false
	}
	l, _ := c.loaded.LoadOrStore(digest, &entryLoad{})
	el := l.(*entryLoad)
	el.once.Do(func() { el.read = c.readEntry(digest) })
	return el.read
}

func (c *cache) readEntry(digest string) bool {
	b, ok := c.read(c.entryPath(digest))
	if !ok {
		return false
	}
	var e entryFile
	if json.Unmarshal(b, &e) != nil || registry.VerifyDigest(digest, e.Manifest) != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mem["blob "+digest] = e.Manifest
	if e.MediaType != "" {
		if mt, err := json.Marshal(e.MediaType); err == nil {
			c.mem["mediatypes "+digest] = mt
		}
	}
	if registry.CheckDigest(e.ConfigDigest) == nil && registry.VerifyDigest(e.ConfigDigest, e.Config) == nil {
		c.mem["blob "+e.ConfigDigest] = e.Config
	}
	for k, v := range e.Verify {
		if !strings.HasPrefix(k, digest+"|") {
			continue
		}
		// What this run learned already is newer than the file.
		if _, have := c.mem["verify "+k]; !have {
			c.mem["verify "+k] = v
		}
		if c.verdicts[digest] == nil {
			c.verdicts[digest] = map[string]json.RawMessage{}
		}
		if _, ok := c.verdicts[digest][k]; !ok {
			c.verdicts[digest][k] = v
		}
	}
	return true
}

func (c *cache) tag(ref string) (tagEntry, bool) {
	var e tagEntry
	b, ok := c.get("tags", ref)
	ok = ok && decodeTag(b, &e) == nil
	if ok && len(e.Manifest) > 0 && registry.VerifyDigest(e.Digest, e.Manifest) == nil { // it checks the digest's form first
		c.putMemBlob(e.Digest, e.Manifest)
	}
	e.Manifest = nil
	return e, ok && e.Digest != ""
}

func (c *cache) putTag(ref string, e tagEntry) { c.putJSON("tags", ref, e) }

func (c *cache) getJSON(kind, key string, v any) bool {
	b, ok := c.get(kind, key)
	return ok && json.Unmarshal(b, v) == nil
}

// get returns the JSON kept under kind and key, from memory or its file.
func (c *cache) get(kind, key string) ([]byte, bool) {
	c.mu.Lock()
	b, ok := c.mem[kind+" "+key]
	c.mu.Unlock()
	if !ok && c.dir != "" {
		b, ok = c.read(filepath.Join(c.dir, "v1", kind, keyHash(key)+".json"))
	}
	return b, ok
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
		c.write(filepath.Join(c.dir, "v1", kind, keyHash(key)+".json"), b)
	}
}

// read returns a cache file's content if the file and its directory are
// private to the user.
func (c *cache) read(path string) ([]byte, bool) {
	c.tighten()
	if !c.privateDir(filepath.Dir(path)) {
		return nil, false
	}
	return readPrivateFile(path, maxCacheFile)
}

// privateDir checks a cache directory once per run once it exists (every read used to
// stat it again).
func (c *cache) privateDir(dir string) bool {
	if v, ok := c.dirs.Load(dir); ok {
		return v.(bool)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return false // not there yet: another run (or this one) may make it
	}
	ok := privateInfo(fi)
	c.dirs.Store(dir, ok)
	return ok
}

// tighten makes the directories of a cache an earlier version created
// (0755) private, when they are the user's own; once per run. Files it
// wrote 0644 are ignored, and replaced when written again.
func (c *cache) tighten() {
	c.once.Do(func() {
		v1 := filepath.Join(c.dir, "v1")
		dirs := []string{c.dir, v1}
		for _, parent := range []string{v1, filepath.Join(v1, "blobs")} {
			ents, _ := os.ReadDir(parent)
			for _, e := range ents {
				if e.IsDir() {
					dirs = append(dirs, filepath.Join(parent, e.Name()))
				}
			}
		}
		for _, d := range dirs {
			if fi, err := os.Lstat(d); err == nil && fi.IsDir() && ownedByUser(fi) && fi.Mode().Perm()&0o077 != 0 {
				_ = os.Chmod(d, 0o700)
			}
		}
	})
}

// privateInfo reports whether a file is owned by the user and open to nobody else.
func privateInfo(fi fs.FileInfo) bool {
	return ownedByUser(fi) && fi.Mode().Perm()&0o077 == 0
}

// write queues b to be written at path (see cache); b is not written to
// afterwards by anyone.
func (c *cache) write(path string, b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.queue = append(c.queue, pendingWrite{path, b})
	if !c.writing {
		c.writing = true
		go c.writer()
	}
}

// writer writes the queue out, in order, and stops when it is empty.
func (c *cache) writer() {
	for {
		c.wmu.Lock()
		if len(c.queue) == 0 {
			c.queue = nil
			c.writing = false
			c.idle.Broadcast()
			c.wmu.Unlock()
			return
		}
		w := c.queue[0]
		c.queue[0] = pendingWrite{}
		c.queue = c.queue[1:]
		c.wmu.Unlock()
		c.writeFile(w.path, w.b)
	}
}

// flush waits until every file queued so far is written.
func (c *cache) flush() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for c.writing {
		c.idle.Wait()
	}
}

// writeFile writes via a temporary file (0600) and rename; cache write
// errors are not fatal to an inspection, so they are dropped.
func (c *cache) writeFile(path string, b []byte) {
	c.tighten()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
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
