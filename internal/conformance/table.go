package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeTable writes the truth table as Markdown: one table per node
// architecture, a row per case, a column per runtime and path.
func writeTable(path string, t *Truth) error {
	var b strings.Builder
	b.WriteString("# What real container runtimes pull\n\n")
	b.WriteString("Generated from `internal/conformance/testdata/truth.json` by `go test ./internal/conformance -run TestRuntimes -update`; do not edit.\n\n")
	b.WriteString(t.Note + "\n\n")
	b.WriteString("A cell is the entry pulled (the platform its index descriptor declares; `config X` for an entry that declares none) or the CRI's error (`REGISTRY` stands for the registry's host:port, and a digest is shortened to 12 hex digits). `local` is containerd's client pull (1.x, 2.0, and 2.1+ with `use_local_image_pull`), `transfer` 2.1+'s default transfer service.\n\n")
	b.WriteString("## The cases\n\n| case | shape |\n|---|---|\n")
	for _, c := range Cases {
		fmt.Fprintf(&b, "| `%s` | %s |\n", c.Name, c.What)
	}
	type col struct{ runtime, path string }
	var cols []col
	seen := map[col]bool{}
	cell := map[string]string{}
	for _, r := range t.Rows {
		c := col{r.Runtime, r.Path}
		if !seen[c] {
			seen[c] = true
			cols = append(cols, c)
		}
		cell[r.Key()] = short(r)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		fmt.Fprintf(&b, "\n## On %s nodes\n\n| case |", arch)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s %s |", strings.TrimPrefix(c.runtime, "containerd://"), c.path)
		}
		b.WriteString("\n|---|")
		for range cols {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, cs := range Cases {
			fmt.Fprintf(&b, "| `%s` |", cs.Name)
			for _, c := range cols {
				v, ok := cell[Row{Runtime: c.runtime, Path: c.path, Arch: arch, Case: cs.Name}.Key()]
				if !ok {
					v = "—"
				}
				fmt.Fprintf(&b, " %s |", v)
			}
			b.WriteString("\n")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// short is a cell: the platform pulled, or the error with digests shortened
// and the common prefix dropped.
func short(r Row) string {
	if r.Error == "" {
		return r.Platform
	}
	msg := r.Error
	msg = strings.ReplaceAll(msg, `"REGISTRY/conformance/`+r.Case+`:v1"`, "REF")
	for {
		i := strings.Index(msg, "sha256:")
		if i < 0 || len(msg) < i+7+64 {
			break
		}
		msg = msg[:i] + "‹" + msg[i+7:i+7+12] + "›" + msg[i+7+64:]
	}
	msg = strings.ReplaceAll(msg, "|", `\|`)
	return "✗ " + r.Code + ": " + msg
}
