package serve

import (
	"container/list"
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
// they are retried. At most max entries; the least recently used goes
// first, in constant time.
type knowledge struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	// entries index lru, whose front is the most recently used.
	entries map[string]*list.Element
	lru     list.List
	now     func() time.Time
	// gen counts changes, so that decisions made from what was known can
	// be reused until something changes.
	gen uint64
}

type knownImage struct {
	key    string
	report *image.Report
	at     time.Time
}

func newKnowledge(ttl time.Duration, max int) *knowledge {
	return &knowledge{ttl: ttl, max: max, entries: map[string]*list.Element{}, now: time.Now}
}

func knowledgeKey(q image.Request, credID string) string { return q.Key() + "\x00" + credID }

// get returns the report of q read with the credentials credID, if known
// and fresh, and marks it used.
func (k *knowledge) get(q image.Request, credID string) *image.Report {
	k.mu.Lock()
	defer k.mu.Unlock()
	el, ok := k.entries[knowledgeKey(q, credID)]
	if !ok {
		return nil
	}
	e := el.Value.(*knownImage)
	if !strings.Contains(q.Ref, "@") && k.now().Sub(e.at) > k.ttl {
		return nil
	}
	k.lru.MoveToFront(el)
	return e.report
}

// put keeps a successful report, evicting the least recently used one when
// full.
func (k *knowledge) put(q image.Request, credID string, rep *image.Report) {
	if rep == nil || rep.Error != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	key := knowledgeKey(q, credID)
	if el, ok := k.entries[key]; ok {
		e := el.Value.(*knownImage)
		e.report, e.at = rep, k.now()
		k.lru.MoveToFront(el)
		k.gen++
		return
	}
	if k.max > 0 && len(k.entries) >= k.max {
		if last := k.lru.Back(); last != nil {
			delete(k.entries, last.Value.(*knownImage).key)
			k.lru.Remove(last)
		}
	}
	k.entries[key] = k.lru.PushFront(&knownImage{key: key, report: rep, at: k.now()})
	k.gen++
}

func (k *knowledge) generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

func (k *knowledge) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.entries)
}
