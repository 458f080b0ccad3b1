package verify

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/archfit/archfit/internal/testimage"
)

func TestParseELF(t *testing.T) {
	for _, arch := range testimage.Arches() {
		for _, interp := range []string{"", "/lib/ld.so.1"} {
			t.Run(arch+interp, func(t *testing.T) {
				b := testimage.DynamicELF(arch, interp)
				in, err := parseELF(b, int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				if in.arch != arch || in.interp != interp || in.typ != 2 {
					t.Fatalf("got arch %q interp %q type %d", in.arch, in.interp, in.typ)
				}
				// Cut short, the parser asks for what it lacks.
				if _, err := parseELF(b[:40], int64(len(b))); !isShort(err) {
					t.Fatalf("truncated: got %v, want errShort", err)
				}
			})
		}
	}
}

func TestArch(t *testing.T) {
	tests := []struct {
		machine     uint16
		class, data byte
		want        string
	}{
		{3, 1, 1, "386"},
		{62, 2, 1, "amd64"},
		{62, 1, 1, "amd64p32"},
		{40, 1, 1, "arm"},
		{183, 2, 1, "arm64"},
		{21, 2, 1, "ppc64le"},
		{21, 2, 2, "ppc64"},
		{22, 2, 2, "s390x"},
		{243, 2, 1, "riscv64"},
		{8, 1, 2, "mips"},
		{8, 1, 1, "mipsle"},
		{8, 2, 2, "mips64"},
		{8, 2, 1, "mips64le"},
		{258, 2, 1, "loong64"},
		{9999, 2, 1, "elf-machine-9999"},
	}
	for _, tt := range tests {
		if got := Arch(tt.machine, tt.class, tt.data); got != tt.want {
			t.Errorf("Arch(%d, %d, %d) = %q, want %q", tt.machine, tt.class, tt.data, got, tt.want)
		}
	}
}

func TestParseShebang(t *testing.T) {
	long := "#!/" + string(make([]byte, 300))
	for i := 3; i < len(long); i++ {
		long = long[:i] + "x" + long[i+1:]
	}
	tests := []struct {
		in   string
		want shebang
	}{
		{"#!/bin/sh\n", shebang{line: "#!/bin/sh", interp: "/bin/sh"}},
		{"#! /bin/sh -e \necho", shebang{line: "#! /bin/sh -e ", interp: "/bin/sh", arg: "-e"}},
		{"#!/usr/bin/env python3 -u\n", shebang{line: "#!/usr/bin/env python3 -u", interp: "/usr/bin/env", arg: "python3 -u"}},
		{"#!/bin/bash\t-x\n", shebang{line: "#!/bin/bash\t-x", interp: "/bin/bash", arg: "-x"}},
		{"#!/bin/sh\r\n", shebang{line: `#!/bin/sh\r`, interp: "/bin/sh\r", cr: true}},
		{"#!/bin/sh -e\r\n", shebang{line: `#!/bin/sh -e\r`, interp: "/bin/sh", arg: "-e\r", cr: true}},
		{"#!/bin/sh", shebang{line: "#!/bin/sh", interp: "/bin/sh"}},
		{"#!  \n", shebang{line: "#!  ", err: "no interpreter after #!"}},
		{long, shebang{line: long[:binprmBufSize], err: "the interpreter name does not end within the first 256 bytes"}},
	}
	for _, tt := range tests {
		got := parseShebang([]byte(tt.in))
		if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(shebang{})); d != "" {
			t.Errorf("parseShebang(%q) (-want +got):\n%s", tt.in, d)
		}
	}
}

func TestSearchPath(t *testing.T) {
	tests := []struct {
		name       string
		image, pod []string
		want       string
		wantFound  bool
	}{
		{"no image env: containerd's default", nil, nil, DefaultPath, true},
		{"image PATH", []string{"A=1", "PATH=/x:/y"}, nil, "/x:/y", true},
		{"image env without PATH", []string{"A=1"}, nil, "", false},
		{"pod PATH wins", []string{"PATH=/x"}, []string{"PATH=/p"}, "/p", true},
		{"pod PATH on an image without env", nil, []string{"PATH=/p"}, "/p", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SearchPath(tt.image, tt.pod)
			if got != tt.want || ok != tt.wantFound {
				t.Errorf("got %q %v, want %q %v", got, ok, tt.want, tt.wantFound)
			}
		})
	}
}
