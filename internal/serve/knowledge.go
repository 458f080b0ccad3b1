package serve

import (
	"strings"
	"sync"
	"time"

	"github.com/archfit/archfit/internal/image"
)

// knowledge holds what the controller learnt about images, for admission to
// answer without a network round trip: the report of each request (image,
// the container's command/args/PATH) per credential set. A report of a
// digest reference never goes stale; one of a tag does after ttl (the tag
// may move), and the pod is then gated and the image read again (a HEAD,
// when archfit's on-disk cache holds the rest). Failures are not kept:
// they are retried. At most max entries; the oldest goes first.
type knowledge struct {
	mu      sync.RWMutex
	ttl     time.Duration
	max     int
	entries map[string]knownImage
	now     func() time.Time
	// gen counts changes, so that decisions made from what was known can
	// be reused until something changes.
	gen uint64
}

type knownImage struct {
	report *image.Report
	at     time.Time
}

func newKnowledge(ttl time.Duration, max int) *knowledge {
	return &knowledge{ttl: ttl, max: max, entries: map[string]knownImage{}, now: time.Now}
}

func knowledgeKey(q image.Request, credID string) string { return q.Key() + "\x00" + credID }

// get returns the report of q read with the credentials credID, if known
// and fresh.
func (k *knowledge) get(q image.Request, credID string) *image.Report {
	k.mu.RLock()
	e, ok := k.entries[knowledgeKey(q, credID)]
	k.mu.RUnlock()
	if !ok {
		return nil
	}
	if !strings.Contains(q.Ref, "@") && k.now().Sub(e.at) > k.ttl {
		return nil
	}
	return e.report
}

// put keeps a successful report.
func (k *knowledge) put(q image.Request, credID string, rep *image.Report) {
	if rep == nil || rep.Error != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	key := knowledgeKey(q, credID)
	if _, ok := k.entries[key]; !ok && len(k.entries) >= k.max {
		oldest, first := "", true
		var at time.Time
		for kk, e := range k.entries {
			if first || e.at.Before(at) {
				oldest, at, first = kk, e.at, false
			}
		}
		delete(k.entries, oldest)
	}
	k.entries[key] = knownImage{report: rep, at: k.now()}
	k.gen++
}

func (k *knowledge) generation() uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.gen
}

func (k *knowledge) size() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.entries)
}
