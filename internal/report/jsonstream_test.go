package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/archfit/archfit/internal/audit"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/remedy"
)

// ptrMarshaler has MarshalJSON on its pointer: encoding/json calls it for
// addressable values only (slice elements, fields of pointed-to structs).
type ptrMarshaler struct{ N int }

func (p *ptrMarshaler) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(`{"n<":%d}`, p.N)), nil
}

type textKey struct{ s string }

func (t textKey) MarshalText() ([]byte, error) { return []byte("T:" + t.s), nil }

type embedded struct{ A int }

type streamCase struct {
	embedded
	Plain    string         `json:"plain"`
	Omitted  []string       `json:"omitted,omitempty"`
	Empty    []string       `json:"empty"`
	Nil      []string       `json:"nil"`
	Map      map[string]int `json:"map"`
	NilMap   map[string]int `json:"nilMap"`
	Bytes    []byte         `json:"bytes"`
	Time     time.Time      `json:"time"`
	Ptr      ptrMarshaler   `json:"ptr"`
	Ptrs     []ptrMarshaler `json:"ptrs"`
	Text     textKey        `json:"text"`
	Any      any            `json:"any,omitempty"`
	NoTag    int
	Stringed int `json:"stringed,string"`
	unexp    int
	Deep     map[string][]map[string][]int `json:"deep"`
	Float    float64                       `json:"float"`
	Dup      dupNames                      `json:"dup"`
	Dups     []dupNames                    `json:"dups"`
}

// dupNames has two fields of one JSON name (a tag naming another field):
// the tagged one dominates in encoding/json, so the walker must not write
// both.
type dupNames struct {
	A     int `json:"B"`
	B     int
	Other int `json:"other"`
}

// TestJSONStreamSameBytes: the streamed document is byte for byte what
// json.Encoder with two-space indentation writes, for a document with
// every kind of value the walker treats apart.
func TestJSONStreamSameBytes(t *testing.T) {
	ref := object.Ref{Kind: "Deployment", Namespace: "a<b", Name: "web&co"}
	f := finding.New(finding.SingleArchAtRisk, `container "app" <cannot> run & fails`)
	f.Workload = &ref
	f.Evidence = []string{"x", "y\u2028z"}
	docs := []*Document{
		{Kind: "Audit"},
		{Kind: "Audit", Findings: []finding.Finding{f, f}, Remedies: []*remedy.Remedy{{Workload: ref, AllowedArchitectures: []string{}}, nil},
			Images: []*image.Report{{Reference: "r/a:1", Architectures: []string{"amd64"}}},
			Nodes:  []Node{{Name: "n1", Platform: "linux/amd64", Taints: []string{"a=b:NoSchedule"}}, {}},
			Extra: map[string]any{
				"workloads": []*streamCase{{Plain: "<&>", Empty: []string{}, Map: map[string]int{"b": 2, "a": 1}, Bytes: []byte("hi"),
					Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Ptr: ptrMarshaler{1}, Ptrs: []ptrMarshaler{{2}, {3}},
					Text: textKey{"k"}, Any: []any{1, "two", nil, map[string]any{}}, Stringed: 7, unexp: 8,
					Deep: map[string][]map[string][]int{"z": {{"y": {1, 2}}, nil}, "e": {}}, Float: 1e21,
					Dup: dupNames{1, 2, 3}, Dups: []dupNames{{4, 5, 6}}}, nil},
				"readiness": struct {
					A int     `json:"a"`
					B float64 `json:"b"`
				}{1, 0.5},
				"empty":    map[string]any{},
				"nothing":  nil,
				"list":     []int{},
				"strings":  []string{"a", "b"},
				"nested":   map[string]any{"x": map[string]any{"y": []any{map[string]any{"z": 1}}}},
				"ptrValue": &ptrMarshaler{9},
				"textMap":  map[textKey]int{{"b"}: 1, {"a"}: 2},
				"dup":      dupNames{7, 8, 9},
				"dups":     []dupNames{{10, 11, 12}},
			}},
	}
	for i, d := range docs {
		want := encoderJSON(t, d)
		var got bytes.Buffer
		if err := JSON(&got, d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("document %d: streamed JSON differs from the encoder's\n--- got\n%s\n--- want\n%s", i, got.String(), want)
		}
	}
}

// hostile are strings that take encoding/json's every escaping path and
// that hold the characters the indenter acts on outside strings.
var hostile = []string{
	"", "plain", `<script>&amp;</script>`, "line\u2028sep\u2029para", "\x00\x01\x1f\x7f",
	"tab\tnl\nret\r\bf\f", `quote" back\ slash\\ end\`, `\"`, `\\"`, `",":"{}[]`, "{[,:]}",
	"\xff\xfeinvalid", "\xed\xa0\x80surrogate", "é€😀", "\u00a0\ufeff", strings.Repeat("\\", 7) + `"`,
}

// randomValue builds a random JSON-able value of hostile strings, numbers
// and nested (possibly empty or nil) arrays and objects.
func randomValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth > 4 {
		k %= 5
	}
	switch k {
	case 0:
		return hostile[r.IntN(len(hostile))]
	case 1:
		floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, r.NormFloat64() * 1e9}
		return floats[r.IntN(len(floats))]
	case 2:
		return r.IntN(2) == 0
	case 3:
		return nil
	case 4:
		return float32(r.NormFloat64())
	case 5, 6:
		n := r.IntN(5)
		if n == 4 {
			return []any(nil)
		}
		a := make([]any, n)
		for i := range a {
			a[i] = randomValue(r, depth+1)
		}
		return a
	default:
		n := r.IntN(5)
		if n == 4 {
			return map[string]any(nil)
		}
		m := map[string]any{}
		for range n {
			m[hostile[r.IntN(len(hostile))]+fmt.Sprint(r.IntN(3))] = randomValue(r, depth+1)
		}
		return m
	}
}

// TestAppendIndented: the one-pass indenter writes what json.Indent writes
// of encoding/json's compact output, at every depth.
func TestAppendIndented(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		v := randomValue(r, 0)
		src, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		depth := i % 4
		var want bytes.Buffer
		if err := json.Indent(&want, src, indentation(depth), "  "); err != nil {
			t.Fatal(err)
		}
		if got := appendIndented([]byte("x"), src, depth); string(got) != "x"+want.String() {
			t.Fatalf("depth %d, %s:\n--- got\n%s\n--- want\n%s", depth, src, got[1:], want.String())
		}
	}
	// Whitespace a MarshalJSON might leave (encoding/json compacts it
	// away, so this is the indenter's own safety) is dropped.
	if got := string(appendIndented(nil, []byte(" {\"a\" : [ 1 ,\t2 ]\n}\r"), 0)); got != "{\n  \"a\": [\n    1,\n    2\n  ]\n}" {
		t.Errorf("whitespace kept: %q", got)
	}
}

// hostileElem is a slice element with every sort of field; its pointer
// receiver marshaler (Mark) is called only where the element is
// addressable.
type hostileElem struct {
	Name    string             `json:"name"`
	Tags    map[string]string  `json:"tags,omitempty"`
	Values  []float64          `json:"values"`
	Any     any                `json:"any,omitempty"`
	Nested  []map[string][]int `json:"nested"`
	Mark    ptrMarshaler       `json:"mark"`
	Dup     dupNames           `json:"dup"`
	Skipped string             `json:"-"`
	Bytes   []byte             `json:"bytes,omitempty"`
}

func hostileDocument(r *rand.Rand, n int) *Document {
	elems := make([]hostileElem, n)
	ptrs := make([]*hostileElem, n)
	anys := make([]any, n)
	for i := range elems {
		e := hostileElem{Name: hostile[i%len(hostile)], Values: []float64{float64(i) / 3, 1e21 * float64(i)},
			Any: randomValue(r, 1), Mark: ptrMarshaler{i}, Dup: dupNames{i, i + 1, i + 2}, Skipped: "no"}
		if i%3 == 0 {
			e.Tags = map[string]string{hostile[(i+1)%len(hostile)]: hostile[(i+2)%len(hostile)], "z": "<", "a": ">"}
			e.Nested = []map[string][]int{{}, nil, {"k": {}, "j": {i}}}
			e.Bytes = []byte(hostile[i%len(hostile)])
		}
		elems[i] = e
		if i%7 != 0 {
			ptrs[i] = &elems[i]
		}
		anys[i] = randomValue(r, 0)
	}
	findings := hostileFindings(n)
	return &Document{Kind: "Audit", Findings: findings, Extra: map[string]any{
		"elems": elems, "ptrs": ptrs, "anys": anys, "short": elems[:min(3, n)],
		"nested":   map[string]any{"deeper": map[string]any{"elems": elems, "<&>": anys}},
		hostile[2]: hostile[3],
	}}
}

func encoderJSON(t testing.TB, d *Document) []byte {
	d.normalize()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		t.Fatal(err)
	}
	return want.Bytes()
}

// TestJSONStreamLongSlices: slices long enough to go to the workers, in
// more chunks than the window holds, come out in order and byte for byte
// as the encoder writes them, whatever the number of workers.
func TestJSONStreamLongSlices(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, n := range []int{1, parallelMin - 1, parallelMin, 1000, 2000} {
		for _, procs := range []int{1, 2, 5} {
			runtime.GOMAXPROCS(procs)
			d := hostileDocument(rand.New(rand.NewPCG(uint64(n), 3)), n)
			want := encoderJSON(t, d)
			var got bytes.Buffer
			if err := JSON(&got, d); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				i := 0
				for i < min(got.Len(), len(want)) && got.Bytes()[i] == want[i] {
					i++
				}
				t.Fatalf("%d elements, GOMAXPROCS %d: differs at byte %d: got %q, want %q", n, procs, i,
					got.Bytes()[max(0, i-80):min(got.Len(), i+80)], want[max(0, i-80):min(len(want), i+80)])
			}
		}
	}
}

// auditSample is an audit of a 5,000-pod fleet (the bench's synthetic
// fleet: 1,000 Deployments, 300 images) with as many findings, remedies,
// images, blockers and workloads as it had, made from the first few of
// each (testdata/audit-sample.json) repeated.
func auditSample(t testing.TB) *Document {
	b, err := os.ReadFile("testdata/audit-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Document
		Extra audit.Result `json:"extra"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	d, x := raw.Document, raw.Extra
	d.Findings = repeat(d.Findings, 334)
	d.Remedies = repeat(d.Remedies, 334)
	d.Images = repeat(d.Images, 300)
	d.Extra = map[string]any{"pools": x.Pools, "readiness": x.Readiness, "blockers": repeat(x.Blockers, 100), "workloads": repeat(x.Workloads, 1000)}
	return &d
}

func repeat[T any](s []T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = s[i%len(s)]
	}
	return out
}

// TestJSONStreamAudit: a real audit's document, typed as the audit
// command makes it, streams as the encoder writes it.
func TestJSONStreamAudit(t *testing.T) {
	d := auditSample(t)
	want := encoderJSON(t, d)
	var got bytes.Buffer
	if err := JSON(&got, d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("streamed audit differs from the encoder's output")
	}
}

// failing fails to marshal when fail is set; calls counts marshals.
type failing struct {
	N     int
	fail  bool
	calls *atomic.Int64
	// seen, when set, is called at each marshal.
	seen func(n int)
}

var errMarshal = errors.New("element refused")

func (f failing) MarshalJSON() ([]byte, error) {
	f.calls.Add(1)
	if f.seen != nil {
		f.seen(f.N)
	}
	if f.fail {
		return nil, errMarshal
	}
	return fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, f.N, strings.Repeat("x", 100)), nil
}

// countingWriter fails once it was given limit bytes (never if limit < 0).
type countingWriter struct {
	n, limit    int64
	writes      atomic.Int64
	afterFailed int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.limit >= 0 && w.n >= w.limit {
		w.afterFailed++
		return 0, io.ErrShortWrite
	}
	w.n += int64(len(p))
	w.writes.Store(w.n)
	return len(p), nil
}

func failingDoc(n, failAt int, calls *atomic.Int64) *Document {
	elems := make([]failing, n)
	for i := range elems {
		elems[i] = failing{N: i, fail: i == failAt, calls: calls}
	}
	findings := hostileFindings(n)
	return &Document{Kind: "Audit", Findings: findings, Extra: map[string]any{"elems": elems}}
}

// TestJSONStreamMarshalError: a failing element stops the stream; what
// was written is the start of the document it would have been.
func TestJSONStreamMarshalError(t *testing.T) {
	const n, failAt = 20000, 15000
	var calls atomic.Int64
	want := encoderJSON(t, failingDoc(n, -1, &calls))
	var got bytes.Buffer
	err := JSON(&got, failingDoc(n, failAt, &calls))
	if !errors.Is(err, errMarshal) {
		t.Fatalf("got error %v, want %v", err, errMarshal)
	}
	if got.Len() == 0 || got.Len() >= len(want) || !bytes.HasPrefix(want, got.Bytes()) {
		t.Fatalf("wrote %d bytes, not a proper start of the %d-byte document", got.Len(), len(want))
	}
	if bytes.Contains(got.Bytes(), fmt.Appendf(nil, `"n": %d,`, failAt)) {
		t.Error("the failing element was written")
	}
}

// TestJSONStreamWriteError: a write error is returned, nothing is written
// after it, and marshalling stops instead of running through the slice.
func TestJSONStreamWriteError(t *testing.T) {
	const n = 100000
	var calls atomic.Int64
	w := &countingWriter{limit: 1}
	err := JSON(w, failingDoc(n, -1, &calls))
	if !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("got error %v, want %v", err, io.ErrShortWrite)
	}
	if w.afterFailed != 1 {
		t.Errorf("%d writes after the first failed, want only the one that failed", w.afterFailed-1)
	}
	if c := calls.Load(); c >= n/2 {
		t.Errorf("%d of %d elements marshalled after the writer failed", c, n)
	}
}

// TestJSONStreamStreams: the writer has bytes before the last element is
// marshalled (the document is not built whole first), and the workers are
// gone when JSON returns.
func TestJSONStreamStreams(t *testing.T) {
	const n = 50000
	before := runtime.NumGoroutine()
	var calls atomic.Int64
	w := &countingWriter{limit: -1}
	var atLast atomic.Int64
	d := failingDoc(n, -1, &calls)
	elems := d.Extra["elems"].([]failing)
	elems[n-1].seen = func(int) { atLast.Store(w.writes.Load()) }
	if err := JSON(w, d); err != nil {
		t.Fatal(err)
	}
	if got := atLast.Load(); got < w.n/2 {
		t.Errorf("%d of %d bytes written when the last element was marshalled", got, w.n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines left running (%d before)", g-before, before)
	}
}

// BenchmarkJSON: the audit document of a 5,000-pod fleet (4.5 MB),
// streamed, beside json.Encoder with indentation on the same document.
func BenchmarkJSON(b *testing.B) {
	d := auditSample(b)
	d.normalize()
	size := int64(len(encoderJSON(b, d)))
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if err := JSON(io.Discard, d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoder", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			enc := json.NewEncoder(io.Discard)
			enc.SetIndent("", "  ")
			if err := enc.Encode(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendIndented: the indenter alone, on the compact text of the
// 5,000-pod audit document.
func BenchmarkAppendIndented(b *testing.B) {
	d := auditSample(b)
	d.normalize()
	src, err := json.Marshal(d)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	var dst []byte
	for b.Loop() {
		dst = appendIndented(dst[:0], src, 0)
	}
}

type panicking struct{ N, at int }

func (p panicking) MarshalJSON() ([]byte, error) {
	if p.N == p.at {
		panic(fmt.Sprintf("element %d", p.N))
	}
	return []byte("1"), nil
}

// TestJSONStreamPanic: a MarshalJSON that panics on a worker panics in
// the caller's goroutine, where it can be recovered, with its own value.
func TestJSONStreamPanic(t *testing.T) {
	elems := make([]panicking, 5000)
	for i := range elems {
		elems[i] = panicking{N: i, at: 4000}
	}
	got := func() (p any) {
		defer func() { p = recover() }()
		_ = JSON(io.Discard, &Document{Extra: map[string]any{"elems": elems}})
		return nil
	}()
	if got != "element 4000" {
		t.Errorf("recovered %v, want the element's panic", got)
	}
}

// hostileFindings is n findings whose message and evidence are the
// hostile strings.
func hostileFindings(n int) []finding.Finding {
	findings := make([]finding.Finding, n)
	for i := range findings {
		f := finding.New(finding.SingleArchAtRisk, hostile[i%len(hostile)])
		f.Evidence = []string{hostile[(i+3)%len(hostile)], ""}
		f.Line = i
		findings[i] = f
	}
	return findings
}
