package image

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ForContainer is the request that inspects what a pod's container really
// runs: its image, its command and args (which decide the program), and
// the PATH its own env sets (which decides where a bare name is found).
func ForContainer(c *corev1.Container, verify bool) Request {
	q := Request{Ref: c.Image, Verify: verify}
	o := Override{Command: c.Command, Args: c.Args}
	for _, e := range c.Env {
		if e.Name == "PATH" && e.ValueFrom == nil {
			o.Path = e.Value
			o.PathSet = true
		}
	}
	if len(o.Command) > 0 || len(o.Args) > 0 || o.PathSet {
		q.Override = &o
	}
	return q
}

// Key identifies what a request asks, whatever the order of requests.
// Credentials are not part of it: a run gives each image one credential
// set (cluster.PullSecrets.Attach), so one key names one answer.
func (q Request) Key() string {
	return q.Ref + "\x00" + overrideKey(q.Override)
}

// Set holds the reports of one run and answers "what does this
// container's image run" by request: the report verified with the
// container's own command, args and PATH, else the best report of the same
// image (one that is not an inspection failure), else nil.
type Set struct {
	byKey map[string]*Report
	byRef map[string]*Report
}

// NewSet pairs requests with the reports InspectAll returned for them.
func NewSet(reqs []Request, reps []*Report) *Set {
	s := &Set{byKey: make(map[string]*Report, len(reqs)), byRef: map[string]*Report{}}
	for i, q := range reqs {
		if i >= len(reps) || reps[i] == nil {
			continue
		}
		s.byKey[q.Key()] = reps[i]
		// The image's own entrypoint is the report of choice for the image
		// as a whole (build advice, blockers).
		if old, ok := s.byRef[q.Ref]; !ok || old.Error != nil && reps[i].Error == nil || q.Override == nil && reps[i].Error == nil {
			s.byRef[q.Ref] = reps[i]
		}
	}
	return s
}

// Get returns the report for q, else the image's report, else nil.
func (s *Set) Get(q Request) *Report {
	if s == nil {
		return nil
	}
	if r, ok := s.byKey[q.Key()]; ok {
		return r
	}
	return s.byRef[q.Ref]
}

// Image returns the report of an image reference as a whole, or nil.
func (s *Set) Image(ref string) *Report {
	if s == nil {
		return nil
	}
	return s.byRef[ref]
}

// All returns the distinct reports in the order of their requests' keys
// (reference, then the container's command, args and PATH): the same
// order on every run.
func (s *Set) All() []*Report {
	if s == nil {
		return nil
	}
	keys := make([]string, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[*Report]bool{}
	var out []*Report
	for _, k := range keys {
		if r := s.byKey[k]; !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// Requests deduplicates requests by key, in key order.
func Requests(qs []Request) []Request {
	seen := map[string]bool{}
	var out []Request
	for _, q := range qs {
		if q.Ref == "" || seen[q.Key()] {
			continue
		}
		seen[q.Key()] = true
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].Key(), out[j].Key()) < 0 })
	return out
}
