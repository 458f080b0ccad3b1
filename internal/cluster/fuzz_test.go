package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the -f decoder (JSON streams, arrays,
// multi-document YAML, Lists, with error recovery by line). A dump is user
// input: it may be broken in any way, but it must never panic. Run longer
// with: go test -fuzz FuzzDecode -fuzztime 1m ./internal/cluster/
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"a"}},{"kind":"Pod","spec":{"containers":7}}]}`))
	f.Add([]byte("[{\"kind\":\"Node\"}, {\n{\"kind\":\"Pod\"}"))
	f.Add([]byte("kind: List\nitems:\n- kind: Pod\n  metadata: {name: x\n---\nkind: Node\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newCollector()
		_ = c.decodeFile(context.Background(), "fuzz.yaml", bytes.NewReader(b))
	})
}
