package verify

import (
	"testing"

	"github.com/archfit/archfit/internal/testimage"
)

// FuzzParse feeds arbitrary file heads to the ELF and shebang parsers: a
// layer from a registry is untrusted input, so no byte pattern may panic
// or read out of bounds. Run longer with
//
//	go test -fuzz FuzzParse -fuzztime 1m ./internal/verify/
func FuzzParse(f *testing.F) {
	for _, arch := range testimage.Arches() {
		f.Add(testimage.ELF(arch))
		f.Add(testimage.DynamicELF(arch, "/lib/ld-linux.so.1"))
	}
	f.Add([]byte("#!/bin/sh\r\nexit 0\n"))
	f.Add([]byte("#!/usr/bin/env -S python3 -u\n"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if isELF(b) {
			_, _ = parseELF(b, int64(len(b)))
			_, _ = parseELF(b, int64(len(b))+1<<20) // a head of a larger file
		}
		_ = parseShebang(b)
	})
}
