package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

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
		d.normalize()
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := JSON(&got, d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("document %d: streamed JSON differs from the encoder's\n--- got\n%s\n--- want\n%s", i, got.String(), want.String())
		}
	}
}
