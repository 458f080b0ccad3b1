package serve

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/object"
)

// ReportEntry is one decision in the report GET /report serves: in observe
// mode, what enforce would have done.
type ReportEntry struct {
	Time      time.Time  `json:"time"`
	Mode      Mode       `json:"mode"`
	Namespace string     `json:"namespace"`
	Pod       string     `json:"pod"`
	Owner     object.Ref `json:"owner"`
	Outcome   Outcome    `json:"outcome"`
	Allowed   []string   `json:"allowedArchitectures,omitempty"`
	Excluded  []string   `json:"excludedArchitectures,omitempty"`
	Message   string     `json:"message"`
}

// Report is the document GET /report serves.
type Report struct {
	Counts  map[Outcome]int `json:"counts"`
	Entries []ReportEntry   `json:"entries"`
}

// observeReport keeps the last max decisions that were not skips, and the
// count of every outcome since start.
type observeReport struct {
	mu      sync.Mutex
	max     int
	entries []ReportEntry
	next    int
	counts  map[Outcome]int
}

func newObserveReport(max int) *observeReport {
	return &observeReport{max: max, counts: map[Outcome]int{}}
}

func (r *observeReport) add(p *corev1.Pod, d Decision, mode Mode) {
	name := p.Name
	if name == "" {
		name = p.GenerateName + "*"
	}
	e := ReportEntry{Time: time.Now().UTC(), Mode: mode, Namespace: p.Namespace, Pod: name, Owner: d.Owner,
		Outcome: d.Outcome, Allowed: d.Allowed, Excluded: d.Excluded, Message: d.Message}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[d.Outcome]++
	if len(r.entries) < r.max {
		r.entries = append(r.entries, e)
		return
	}
	r.entries[r.next] = e
	r.next = (r.next + 1) % r.max
}

// snapshot returns the entries oldest first.
func (r *observeReport) snapshot() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Report{Counts: map[Outcome]int{}, Entries: make([]ReportEntry, 0, len(r.entries))}
	for k, v := range r.counts {
		out.Counts[k] = v
	}
	out.Entries = append(out.Entries, r.entries[r.next:]...)
	out.Entries = append(out.Entries, r.entries[:r.next]...)
	return out
}

func (r *observeReport) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r.snapshot())
}
