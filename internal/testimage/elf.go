// Package testimage builds small, real container images for tests and the
// shipped example: layers holding genuine static ELF executables (a few
// hundred bytes each) for any architecture, assembled into manifests and
// indexes with go-containerregistry. Everything is deterministic, so digests
// are reproducible.
package testimage

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Machine numbers (ELF e_machine) by canonical architecture.
var machines = map[string]struct {
	machine uint16
	class64 bool
	big     bool
	code    []byte // exit(0)
}{
	// xor edi,edi; mov eax,60; syscall
	"amd64": {62, true, false, []byte{0x31, 0xff, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05}},
	// mov x0,#0; mov x8,#93; svc #0
	"arm64": {183, true, false, le32(0xd2800000, 0xd2800ba8, 0xd4000001)},
	// xor ebx,ebx; mov eax,1; int 0x80
	"386": {3, false, false, []byte{0x31, 0xdb, 0xb8, 1, 0, 0, 0, 0xcd, 0x80}},
	// mov r0,#0; mov r7,#1; svc #0
	"arm": {40, false, false, le32(0xe3a00000, 0xe3a07001, 0xef000000)},
	// li a0,0; li a7,93; ecall
	"riscv64": {243, true, false, le32(0x00000513, 0x05d00893, 0x00000073)},
	// li r0,1; li r3,0; sc
	"ppc64le": {21, true, false, le32(0x38000001, 0x38600000, 0x44000002)},
	// lghi %r2,0; svc 1
	"s390x": {22, true, true, []byte{0xa7, 0x29, 0, 0, 0x0a, 0x01}},
}

func le32(words ...uint32) []byte {
	b := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// Arches lists the architectures ELF can build for.
func Arches() []string {
	return []string{"amd64", "arm64", "386", "arm", "riscv64", "ppc64le", "s390x"}
}

// ELF returns a minimal static executable for arch that exits 0. It is a real
// program: on a host of that arch (or under qemu-user) it runs; elsewhere the
// kernel refuses it with ENOEXEC, "exec format error".
func ELF(arch string) []byte {
	return elfFile(arch, "")
}

// DynamicELF returns an executable like ELF, plus a PT_INTERP program header
// naming interp as its loader, as a dynamically linked binary has.
func DynamicELF(arch, interp string) []byte {
	return elfFile(arch, interp)
}

func elfFile(arch, interp string) []byte {
	m, ok := machines[arch]
	if !ok {
		panic(fmt.Sprintf("testimage: no ELF for arch %q", arch))
	}
	var order binary.ByteOrder = binary.LittleEndian
	data := byte(1)
	if m.big {
		order, data = binary.BigEndian, 2
	}
	const base = 0x400000
	var ehsize, phentsize uint64 = 52, 32
	class := byte(1)
	if m.class64 {
		ehsize, phentsize, class = 64, 56, 2
	}
	phnum := uint64(1)
	if interp != "" {
		phnum = 2
	}
	interpOff := ehsize + phnum*phentsize
	interpBytes := []byte(interp)
	if interp != "" {
		interpBytes = append(interpBytes, 0)
	}
	codeOff := interpOff + uint64(len(interpBytes))
	size := codeOff + uint64(len(m.code))
	entry := base + codeOff

	b := new(bytes.Buffer)
	w := func(v any) { _ = binary.Write(b, order, v) }
	word := func(v uint64) { // address-sized field
		if m.class64 {
			w(v)
		} else {
			w(uint32(v))
		}
	}
	b.Write([]byte{0x7f, 'E', 'L', 'F', class, data, 1, 0})
	b.Write(make([]byte, 8))
	w(uint16(2)) // ET_EXEC
	w(m.machine)
	w(uint32(1))
	word(entry)
	word(ehsize) // e_phoff
	word(0)      // e_shoff
	flags := uint32(0)
	switch arch {
	case "arm":
		flags = 0x05000000 // EABI v5
	case "ppc64le":
		flags = 2 // ELFv2 ABI
	}
	w(flags)
	w(uint16(ehsize))
	w(uint16(phentsize))
	w(uint16(phnum))
	w(uint16(0)) // e_shentsize
	w(uint16(0)) // e_shnum
	w(uint16(0)) // e_shstrndx

	phdr := func(typ, flags uint32, off, vaddr, filesz, align uint64) {
		w(typ)
		if m.class64 {
			w(flags)
			w(off)
			w(vaddr)
			w(vaddr)
			w(filesz)
			w(filesz)
			w(align)
			return
		}
		w(uint32(off))
		w(uint32(vaddr))
		w(uint32(vaddr))
		w(uint32(filesz))
		w(uint32(filesz))
		w(flags)
		w(uint32(align))
	}
	if interp != "" {
		phdr(3 /* PT_INTERP */, 4, interpOff, base+interpOff, uint64(len(interpBytes)), 1)
	}
	phdr(1 /* PT_LOAD */, 5 /* R+X */, 0, base, size, 0x1000)
	b.Write(interpBytes)
	b.Write(m.code)
	return b.Bytes()
}
