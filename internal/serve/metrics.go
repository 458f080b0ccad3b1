package serve

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// metrics are archfit serve's Prometheus metrics, written in the text
// exposition format (version 0.0.4) by hand: a few counters, gauges and
// histograms do not justify the client library and its dependencies.
type metrics struct {
	mu       sync.Mutex
	families []*family
	byName   map[string]*family
}

type kind string

const (
	counterKind   kind = "counter"
	gaugeKind     kind = "gauge"
	histogramKind kind = "histogram"
)

type family struct {
	name, help string
	kind       kind
	labels     []string
	buckets    []float64
	series     map[string]*series
	// fn, for a gauge read when scraped.
	fn func() float64
}

type series struct {
	labels []string
	value  float64
	counts []uint64 // histogram: per bucket (not cumulative)
	sum    float64
	count  uint64
}

// maxSeries bounds the label combinations of one family (labels carry
// registry hosts and workload names, which hostile input can multiply).
const maxSeries = 1000

func newMetrics() *metrics { return &metrics{byName: map[string]*family{}} }

func (m *metrics) register(name, help string, k kind, labels []string, buckets []float64) *family {
	f := &family{name: name, help: help, kind: k, labels: labels, buckets: buckets, series: map[string]*series{}}
	m.families = append(m.families, f)
	m.byName[name] = f
	return f
}

func (m *metrics) get(f *family, lv []string) *series {
	key := strings.Join(lv, "\x00")
	s, ok := f.series[key]
	if !ok {
		if len(f.series) >= maxSeries {
			lv = make([]string, len(f.labels))
			for i := range lv {
				lv[i] = "other"
			}
			key = strings.Join(lv, "\x00")
			if s, ok = f.series[key]; ok {
				return s
			}
		}
		s = &series{labels: lv}
		if f.kind == histogramKind {
			s.counts = make([]uint64, len(f.buckets))
		}
		f.series[key] = s
	}
	return s
}

// add adds v to a counter or gauge.
func (m *metrics) add(f *family, v float64, lv ...string) {
	m.mu.Lock()
	m.get(f, lv).value += v
	m.mu.Unlock()
}

// set sets a gauge.
func (m *metrics) set(f *family, v float64, lv ...string) {
	m.mu.Lock()
	m.get(f, lv).value = v
	m.mu.Unlock()
}

// replace sets a gauge's series lv and drops the family's other series
// whose first n label values are lv's: one series per object whose other
// labels describe it (a DaemonSet's excluded architectures), not one more
// each time the description changes.
func (m *metrics) replace(f *family, v float64, n int, lv ...string) {
	m.mu.Lock()
	m.dropLocked(f, lv[:n], strings.Join(lv, "\x00"))
	m.get(f, lv).value = v
	m.mu.Unlock()
}

// drop removes the family's series whose first label values are prefix.
func (m *metrics) drop(f *family, prefix ...string) {
	m.mu.Lock()
	m.dropLocked(f, prefix, "")
	m.mu.Unlock()
}

func (m *metrics) dropLocked(f *family, prefix []string, keep string) {
	for key, s := range f.series {
		if key != keep && len(s.labels) >= len(prefix) && slices.Equal(s.labels[:len(prefix)], prefix) {
			delete(f.series, key)
		}
	}
}

// observe records v in a histogram.
func (m *metrics) observe(f *family, v float64, lv ...string) {
	m.mu.Lock()
	s := m.get(f, lv)
	for i, b := range f.buckets {
		if v <= b {
			s.counts[i]++
			break
		}
	}
	s.sum += v
	s.count++
	m.mu.Unlock()
}

func (m *metrics) since(f *family, start time.Time, lv ...string) {
	m.observe(f, time.Since(start).Seconds(), lv...)
}

// write renders every family in the text exposition format.
func (m *metrics) write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, f := range m.families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		if f.fn != nil {
			fmt.Fprintf(&b, "%s %s\n", f.name, num(f.fn()))
			continue
		}
		keys := make([]string, 0, len(f.series))
		for k := range f.series {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := f.series[k]
			if f.kind != histogramKind {
				fmt.Fprintf(&b, "%s%s %s\n", f.name, labelText(f.labels, s.labels, "", ""), num(s.value))
				continue
			}
			var cum uint64
			for i, le := range f.buckets {
				cum += s.counts[i]
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, labelText(f.labels, s.labels, "le", num(le)), cum)
			}
			fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, labelText(f.labels, s.labels, "le", "+Inf"), s.count)
			fmt.Fprintf(&b, "%s_sum%s %s\n", f.name, labelText(f.labels, s.labels, "", ""), num(s.sum))
			fmt.Fprintf(&b, "%s_count%s %d\n", f.name, labelText(f.labels, s.labels, "", ""), s.count)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func labelText(names, values []string, extraName, extraValue string) string {
	var parts []string
	for i, n := range names {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		parts = append(parts, n+`="`+escapeLabel(v)+`"`)
	}
	if extraName != "" {
		parts = append(parts, extraName+`="`+extraValue+`"`)
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return fmt.Sprintf("%g", v)
}

// serveMetrics are the families archfit serve exports.
type serveMetrics struct {
	*metrics
	admissionSeconds  *family // histogram
	decisions         *family // counter: mode, outcome
	gated             *family // gauge
	ungatedTimeout    *family // counter
	inspectionSeconds *family // histogram: registry
	inspectionErrors  *family // counter: registry, reason
	cacheEntries      *family // gauge (fn)
	cacheLookups      *family // counter: result (hit|miss)
	execFormatEvents  *family // counter: code
	daemonSetsAtRisk  *family // gauge: namespace, name
	ownerPatches      *family // counter: outcome
}

var latencyBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newServeMetrics(cacheSize func() float64) *serveMetrics {
	m := &serveMetrics{metrics: newMetrics()}
	m.admissionSeconds = m.register("archfit_admission_duration_seconds", "Time to answer one pod admission review.", histogramKind, nil, latencyBuckets)
	m.decisions = m.register("archfit_admission_decisions_total", "Admission decisions by mode and outcome (pinned, gated, unchanged, skipped, conflict, daemonset, error); in observe mode what enforce would have done.", counterKind, []string{"mode", "outcome"}, nil)
	m.gated = m.register("archfit_gated_pods", "Pods currently held by the archfit.io/arch scheduling gate.", gaugeKind, nil, nil)
	m.ungatedTimeout = m.register("archfit_ungated_by_timeout_total", "Pods ungated because their images could not be read within the deadline or the retries.", counterKind, nil, nil)
	m.inspectionSeconds = m.register("archfit_inspection_duration_seconds", "Image inspection latency by registry.", histogramKind, []string{"registry"}, latencyBuckets)
	m.inspectionErrors = m.register("archfit_inspection_errors_total", "Image inspection failures by registry and reason.", counterKind, []string{"registry", "reason"}, nil)
	m.cacheEntries = m.register("archfit_image_cache_entries", "Images whose inspection is held in memory for admission.", gaugeKind, nil, nil)
	m.cacheEntries.fn = cacheSize
	m.cacheLookups = m.register("archfit_image_cache_lookups_total", "Admission lookups of an image's inspection by result (hit, miss); the hit ratio is hit/(hit+miss).", counterKind, []string{"result"}, nil)
	m.execFormatEvents = m.register("archfit_crash_events_total", "Events raised for pods that failed on the wrong architecture (exec format error, platform pull failures), by finding code.", counterKind, []string{"code"}, nil)
	m.daemonSetsAtRisk = m.register("archfit_daemonset_at_risk", "1 for a DaemonSet whose images cannot run on some node architecture of the cluster.", gaugeKind, []string{"namespace", "name", "excluded"}, nil)
	m.ownerPatches = m.register("archfit_owner_patches_total", "DaemonSet template patches by outcome (patched, refused, failed, observed).", counterKind, []string{"outcome"}, nil)
	return m
}
