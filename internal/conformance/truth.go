package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Row is what one runtime did with one case on one node architecture.
type Row struct {
	Runtime string `json:"runtime"` // containerd://2.1.9, as a kubelet reports it
	// Path is the pull path: "local" (containerd's client pull, all of 1.x
	// and 2.0, and 2.1+ with use_local_image_pull) or "transfer" (2.1+'s
	// default transfer service).
	Path string `json:"path"`
	Arch string `json:"arch"` // the node's architecture: amd64, arm64
	Case string `json:"case"`
	// Entry is the manifest digest of the entry pulled, Platform what the
	// index declares for it ("config linux/arm64" when it declares none).
	Entry    string `json:"entry,omitempty"`
	Platform string `json:"platform,omitempty"`
	// Code and Error are the CRI's gRPC status of a failed pull, the
	// registry's host:port written as REGISTRY.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// Key identifies a row.
func (r Row) Key() string { return strings.Join([]string{r.Runtime, r.Path, r.Arch, r.Case}, " ") }

// Outcome is the row's result in one line.
func (r Row) Outcome() string {
	if r.Error != "" {
		return r.Code + ": " + r.Error
	}
	return r.Platform + " " + r.Entry
}

// TruthFile is the recorded table.
const TruthFile = "testdata/truth.json"

// Truth is the recorded table: what real runtimes did.
type Truth struct {
	// Note says how the table was made.
	Note string `json:"note"`
	Rows []Row  `json:"rows"`
}

// ReadTruth reads the table.
func ReadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &t, nil
}

// Merge replaces the rows of runtimes in rows (by key) and keeps the rest.
func (t *Truth) Merge(rows []Row) {
	by := map[string]int{}
	for i, r := range t.Rows {
		by[r.Key()] = i
	}
	for _, r := range rows {
		if i, ok := by[r.Key()]; ok {
			t.Rows[i] = r
		} else {
			by[r.Key()] = len(t.Rows)
			t.Rows = append(t.Rows, r)
		}
	}
	caseOrder := map[string]int{}
	for i, c := range Cases {
		caseOrder[c.Name] = i
	}
	sort.SliceStable(t.Rows, func(i, j int) bool {
		a, b := t.Rows[i], t.Rows[j]
		if a.Runtime != b.Runtime {
			an, av, _ := strings.Cut(a.Runtime, "://")
			bn, bv, _ := strings.Cut(b.Runtime, "://")
			if an != bn {
				return an < bn
			}
			return compareVersions(av, bv) < 0
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Arch != b.Arch {
			return a.Arch < b.Arch
		}
		return caseOrder[a.Case] < caseOrder[b.Case]
	})
}

// Write writes the table, one row per line for reviewable diffs.
func (t *Truth) Write(path string) error {
	var b strings.Builder
	note, _ := json.Marshal(t.Note)
	fmt.Fprintf(&b, "{\n  \"note\": %s,\n  \"rows\": [\n", note)
	for i, r := range t.Rows {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.WriteString("    ")
		b.Write(line)
		if i < len(t.Rows)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("  ]\n}\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
