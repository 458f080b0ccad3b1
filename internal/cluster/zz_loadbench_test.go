package cluster

import (
	"context"
	"os"
	"testing"
)

func BenchmarkLoadBenchDump(b *testing.B) {
	p := os.Getenv("ARCHFIT_DUMP")
	if p == "" {
		b.Skip()
	}
	for b.Loop() {
		s, errs, err := LoadFiles(context.Background(), []string{p}, nil)
		if err != nil || len(errs) > 0 {
			b.Fatal(err, errs)
		}
		_ = s
	}
}
