package testimage

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

func TestELFParsesWithDebugELF(t *testing.T) {
	want := map[string]elf.Machine{
		"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
		"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390,
	}
	for _, arch := range Arches() {
		for _, interp := range []string{"", "/lib/ld-linux.so.1"} {
			t.Run(arch+interp, func(t *testing.T) {
				f, err := elf.NewFile(bytes.NewReader(elfFile(arch, interp)))
				if err != nil {
					t.Fatal(err)
				}
				if f.Machine != want[arch] {
					t.Fatalf("machine %v, want %v", f.Machine, want[arch])
				}
				var got string
				for _, p := range f.Progs {
					if p.Type == elf.PT_INTERP {
						b := make([]byte, p.Filesz)
						if _, err := p.ReadAt(b, 0); err != nil {
							t.Fatal(err)
						}
						got = string(bytes.TrimRight(b, "\x00"))
					}
				}
				if got != interp {
					t.Fatalf("interp %q, want %q", got, interp)
				}
			})
		}
	}
}

// TestELFRunsOrIsRefused proves the binaries are real: the host's own arch
// runs and exits 0, a foreign one is refused by the kernel with ENOEXEC.
func TestELFRunsOrIsRefused(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs a linux/amd64 host")
	}
	dir := t.TempDir()
	write := func(arch string) string {
		p := filepath.Join(dir, arch)
		if err := os.WriteFile(p, ELF(arch), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := exec.Command(write("amd64")).Run(); err != nil {
		t.Fatalf("amd64 binary did not run: %v", err)
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil {
		t.Skip("qemu-aarch64 binfmt is registered: foreign binaries run here")
	}
	err := exec.Command(write("arm64")).Run()
	if !errors.Is(err, syscall.ENOEXEC) {
		t.Fatalf("arm64 binary: got %v, want exec format error", err)
	}
}

func TestIndexDigestsAreReproducible(t *testing.T) {
	a, _ := MultiArch("linux/amd64", "linux/arm64/v8").Digest()
	b, _ := MultiArch("linux/amd64", "linux/arm64/v8").Digest()
	if a != b {
		t.Fatalf("digests differ: %s vs %s", a, b)
	}
	m, err := Index(For(App("linux/amd64", "amd64"), "linux/amd64"), Attestation(App("linux/amd64", "amd64"))).IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 || m.Manifests[1].Platform.OS != "unknown" {
		t.Fatalf("unexpected index %+v", m)
	}
}
