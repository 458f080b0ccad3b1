package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mapped file that shrinks while it is read makes reading its pages
// fault: that file's error, not a crash. Truncating it between mapping and
// reading is the deterministic form of a dump being rewritten during a run.
func TestMappedFileShrinks(t *testing.T) {
	if !canMap {
		t.Skip("files are not mapped on this system")
	}
	var b strings.Builder
	b.WriteString(`{"apiVersion":"v1","kind":"List","items":[`)
	for i := range 4000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p%d","namespace":"ns"},"spec":{"containers":[{"name":"app","image":"r/app:1"}]}}`, i)
	}
	b.WriteString(`]}`)
	p := filepath.Join(t.TempDir(), "dump.json")
	for _, keep := range []int64{0, 4096, int64(b.Len() / 2)} {
		t.Run(fmt.Sprint(keep), func(t *testing.T) {
			f := openWritten(t, p, []byte(b.String()))
			c := newCollector()
			c.mapMin = 1
			m, ok := c.mapInput(f)
			if !ok {
				t.Fatal("not mapped")
			}
			if err := os.Truncate(p, keep); err != nil {
				t.Fatal(err)
			}
			err := c.decodeMapped(context.Background(), "dump.json", m)
			if err == nil || !strings.Contains(err.Error(), "dump.json: the file changed while it was read") {
				t.Errorf("error %v, want the file's", err)
			}
		})
	}
}

// openWritten writes data to p and opens it; the test closes it.
func openWritten(t *testing.T, p string, data []byte) *os.File {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Only JSON is mapped: a YAML file, even one with a JSON array in it, or
// one that starts with a scalar, is read as a stream, as it would be.
func TestMapOnlyJSON(t *testing.T) {
	inputs := map[string]string{
		"flow list": "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod, metadata: {name: a}}]\n",
		"scalar":    "5\n{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}\n",
		"comment":   "# {\"not\": \"json\"}\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n",
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = string(b)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			read := decodedBy(t, newCollector(), []byte(in))
			c := newCollector()
			c.mapMin = 1
			f := openWritten(t, filepath.Join(t.TempDir(), "in.json"), []byte(in))
			if err := c.decodeFile(context.Background(), "in.json", f); err != nil {
				t.Fatal(err)
			}
			if c.mappedInputs != 0 {
				t.Errorf("mapped")
			}
			if got := describe(t, c); got != read {
				t.Errorf("read differently from a file\nstream:\n%s\nfile:\n%s", read, got)
			}
		})
	}
}
