package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// ELF e_machine values archfit names (elf.h).
const (
	emSPARC   = 2
	em386     = 3
	emMIPS    = 8
	emPPC     = 20
	emPPC64   = 21
	emS390    = 22
	emARM     = 40
	emSPARCV9 = 43
	emX8664   = 62
	emAARCH64 = 183
	emRISCV   = 243
	emLoong   = 258
)

// Arch names the architecture of an ELF machine in Go/OCI terms (the names
// image platforms use): class (1 = 32-bit, 2 = 64-bit) and data (1 = little,
// 2 = big endian) pick among the members of a family. Unknown machines are
// "elf-machine-N".
func Arch(machine uint16, class, data byte) string {
	is64, le := class == 2, data == 1
	switch machine {
	case em386:
		return "386"
	case emX8664:
		if !is64 {
			return "amd64p32" // the x32 ABI
		}
		return "amd64"
	case emARM:
		return "arm"
	case emAARCH64:
		return "arm64"
	case emPPC64:
		if le {
			return "ppc64le"
		}
		return "ppc64"
	case emPPC:
		return "ppc"
	case emS390:
		if is64 {
			return "s390x"
		}
		return "s390"
	case emRISCV:
		if is64 {
			return "riscv64"
		}
		return "riscv"
	case emMIPS:
		switch {
		case is64 && le:
			return "mips64le"
		case is64:
			return "mips64"
		case le:
			return "mipsle"
		}
		return "mips"
	case emLoong:
		return "loong64"
	case emSPARCV9:
		return "sparc64"
	case emSPARC:
		return "sparc"
	}
	return fmt.Sprintf("elf-machine-%d", machine)
}

type elfInfo struct {
	class, data byte
	typ         uint16
	machine     uint16
	arch        string
	interp      string // PT_INTERP, "" for a static binary
	goNote      bool   // has the Go build ID note: a Go binary
}

// errShort asks for the first need bytes of the file.
type errShort struct{ need int64 }

func (e errShort) Error() string { return fmt.Sprintf("need the first %d bytes", e.need) }

func isELF(b []byte) bool { return bytes.HasPrefix(b, []byte("\x7fELF")) }

// parseELF reads the ELF header and program headers from the first bytes of
// a file of the given size. It returns errShort when they lie further in.
func parseELF(b []byte, size int64) (elfInfo, error) {
	if len(b) < 20 {
		if size > int64(len(b)) {
			return elfInfo{}, errShort{64}
		}
		return elfInfo{}, fmt.Errorf("truncated ELF header (%d bytes)", len(b))
	}
	in := elfInfo{class: b[4], data: b[5]}
	var bo binary.ByteOrder
	switch in.data {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return in, fmt.Errorf("bad ELF data encoding %d", in.data)
	}
	in.typ = bo.Uint16(b[16:])
	in.machine = bo.Uint16(b[18:])
	in.arch = Arch(in.machine, in.class, in.data)
	var phoff, phentsize, phnum uint64
	hdrLen := 52
	if in.class == 2 {
		hdrLen = 64
	} else if in.class != 1 {
		return in, fmt.Errorf("bad ELF class %d", in.class)
	}
	if len(b) < hdrLen {
		if size >= int64(hdrLen) {
			return in, errShort{int64(hdrLen)}
		}
		return in, fmt.Errorf("truncated ELF header (%d bytes)", size)
	}
	if in.class == 2 {
		phoff = bo.Uint64(b[32:])
		phentsize, phnum = uint64(bo.Uint16(b[54:])), uint64(bo.Uint16(b[56:]))
	} else {
		phoff = uint64(bo.Uint32(b[28:]))
		phentsize, phnum = uint64(bo.Uint16(b[42:])), uint64(bo.Uint16(b[44:]))
	}
	minEnt := uint64(32)
	if in.class == 2 {
		minEnt = 56
	}
	if phnum == 0 {
		return in, nil
	}
	if phentsize < minEnt || phnum > 65535 {
		return in, fmt.Errorf("bad ELF program headers")
	}
	end := phoff + phentsize*phnum
	if end > uint64(size) || end < phoff {
		return in, fmt.Errorf("ELF program headers past the end of the file")
	}
	if end > uint64(len(b)) {
		return in, errShort{int64(end)}
	}
	for i := uint64(0); i < phnum; i++ {
		ph := b[phoff+i*phentsize:]
		typ := bo.Uint32(ph)
		var off, filesz uint64
		if in.class == 2 {
			off, filesz = bo.Uint64(ph[8:]), bo.Uint64(ph[32:])
		} else {
			off, filesz = uint64(bo.Uint32(ph[4:])), uint64(bo.Uint32(ph[16:]))
		}
		switch typ {
		case 3: // PT_INTERP
			if filesz == 0 || filesz > maxPath || off+filesz > uint64(size) {
				return in, fmt.Errorf("bad PT_INTERP")
			}
			if off+filesz > uint64(len(b)) {
				return in, errShort{int64(off + filesz)}
			}
			in.interp = string(bytes.TrimRight(b[off:off+filesz], "\x00"))
			if in.interp == "" {
				return in, fmt.Errorf("empty PT_INTERP")
			}
		case 4: // PT_NOTE: only looked at when already read
			if off+filesz <= uint64(len(b)) && hasGoNote(b[off:off+filesz], bo) {
				in.goNote = true
			}
		}
	}
	return in, nil
}

// hasGoNote finds the note the Go linker writes (owner "Go", type 4, the
// build ID) near the start of every Go binary, in the first page.
func hasGoNote(b []byte, bo binary.ByteOrder) bool {
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		n, d := align4(namesz), align4(descsz)
		if n > uint64(len(b)) || d > uint64(len(b))-n {
			return false
		}
		if typ == 4 && string(bytes.TrimRight(b[:namesz], "\x00")) == "Go" {
			return true
		}
		b = b[n+d:]
	}
	return false
}

func align4(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }

// binprmBufSize is how much of a script the kernel reads to find its
// interpreter (BINPRM_BUF_SIZE, 256 since Linux 5.1).
const binprmBufSize = 256

type shebang struct {
	line   string // as shown: "#!" up to the newline, a CR written as \r
	interp string // interpreter path, as the kernel takes it
	arg    string // the optional single argument
	cr     bool   // a carriage return is part of the interpreter or argument
	err    string // why the kernel refuses it (ENOEXEC)
}

// parseShebang applies the kernel's rules (fs/binfmt_script.c): only spaces
// and tabs separate; the rest of the line after the interpreter, trimmed,
// is ONE argument; a CR is an ordinary character.
func parseShebang(b []byte) shebang {
	if !bytes.HasPrefix(b, []byte("#!")) {
		return shebang{err: "no #! line"}
	}
	buf := b
	if len(buf) > binprmBufSize {
		buf = buf[:binprmBufSize]
	}
	line, _, nl := bytes.Cut(buf, []byte("\n"))
	sb := shebang{line: strings.ReplaceAll(string(line), "\r", `\r`)}
	s := string(line[2:])
	if !nl && len(b) > binprmBufSize {
		// The line is longer than the kernel reads: it only goes on if
		// the interpreter name ends within the buffer.
		t := strings.TrimLeft(s, " \t")
		if !strings.ContainsAny(t, " \t") {
			sb.err = fmt.Sprintf("the interpreter name does not end within the first %d bytes", binprmBufSize)
			return sb
		}
	}
	s = strings.TrimRight(strings.TrimLeft(s, " \t"), " \t")
	if i := strings.IndexAny(s, "\x00"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		sb.err = "no interpreter after #!"
		return sb
	}
	sb.interp = s
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		sb.interp, sb.arg = s[:i], strings.TrimLeft(s[i+1:], " \t")
	}
	sb.cr = strings.Contains(sb.interp, "\r") || strings.Contains(sb.arg, "\r")
	return sb
}
