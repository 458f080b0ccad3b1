package twin

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
)

// GOAMD64Label on an image config marks its entrypoint as built with
// GOAMD64=v3 (or v4), for test binaries that carry no Go build info.
const GOAMD64Label = "dev.archfit.testenv.goamd64"

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execOutcome is what starting a container on a node does.
type execOutcome struct {
	// createErr: the runtime cannot even create the container
	// (CreateContainerError), e.g. no command at all.
	createErr string
	// startErr: the OCI runtime fails before the process runs
	// (terminated reason StartError, exit 128), e.g. the binary is missing.
	startErr string
	// exited: the process ran (or the kernel refused it) and exited with
	// exitCode after writing log. Otherwise it keeps running.
	exited   bool
	exitCode int32
	log      string
}

// execute decides what happens when spec's node starts container c from img.
func execute(img v1.Image, c *corev1.Container, spec NodeSpec) (execOutcome, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return execOutcome{}, fmt.Errorf("reading config: %w", err)
	}
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(append(argv, c.Command...), c.Args...)
	case len(c.Args) > 0:
		argv = append(append(argv, cf.Config.Entrypoint...), c.Args...)
	default:
		argv = append(append(argv, cf.Config.Entrypoint...), cf.Config.Cmd...)
	}
	if len(argv) == 0 {
		return execOutcome{createErr: "failed to generate container spec: no command specified"}, nil
	}
	fs, err := newRootfs(img)
	if err != nil {
		return execOutcome{}, err
	}
	prog := argv[0]
	var h *tar.Header
	var layer int
	if !strings.Contains(prog, "/") {
		found := false
		for _, dir := range strings.Split(envPath(cf.Config.Env, c.Env), ":") {
			if dir == "" {
				dir = "."
			}
			cand := path.Join("/", cf.Config.WorkingDir, dir, prog)
			if path.IsAbs(dir) {
				cand = path.Join(dir, prog)
			}
			hh, li, _, err := fs.resolve(cand)
			if err != nil && !errors.Is(err, errNotExist) {
				return execOutcome{}, err
			}
			if err == nil && hh.Typeflag != tar.TypeDir && hh.Mode&0o111 != 0 {
				h, layer, found = hh, li, true
				prog = cand
				break
			}
		}
		if !found {
			return spec.startFailure(fmt.Sprintf("exec: %q: executable file not found in $PATH", argv[0])), nil
		}
	} else {
		if !path.IsAbs(prog) {
			prog = path.Join("/", cf.Config.WorkingDir, prog)
		}
		h, layer, _, err = fs.resolve(prog)
		if err != nil && !errors.Is(err, errNotExist) {
			return execOutcome{}, err
		}
		if err != nil || h.Typeflag == tar.TypeDir {
			return spec.startFailure(fmt.Sprintf("exec: %q: stat %s: no such file or directory", argv[0], prog)), nil
		}
	}
	return spec.kernelExec(fs, prog, h, layer, cf.Config.Labels, 0)
}

func envPath(imageEnv []string, env []corev1.EnvVar) string {
	p, set := defaultPath, false
	for _, e := range imageEnv {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			p, set = v, true
		}
	}
	_ = set
	for _, e := range env {
		if e.Name == "PATH" && e.ValueFrom == nil {
			p = e.Value
		}
	}
	return p
}

// startFailure is runc/crun failing to start the process (exit 128).
func (s NodeSpec) startFailure(cause string) execOutcome {
	if s.OCIRuntime == "crun" {
		return execOutcome{startErr: "container create failed: " + cause}
	}
	return execOutcome{startErr: "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: " + cause + ": unknown"}
}

// execFailure is execve(2) failing inside the container: runc >= 1.2 logs
// "exec PATH: ERR" and exits 255; crun logs its own wording and exits 1.
func (s NodeSpec) execFailure(argv0 string, errno string) execOutcome {
	if s.OCIRuntime == "crun" {
		msg := strings.ToUpper(errno[:1]) + errno[1:]
		return execOutcome{exited: true, exitCode: 1, log: fmt.Sprintf("exec container process `%s`: %s\n", argv0, msg)}
	}
	return execOutcome{exited: true, exitCode: 255, log: fmt.Sprintf("exec %s: %s\n", argv0, errno)}
}

const (
	enoexec = "exec format error"
	enoent  = "no such file or directory"
)

// kernelExec is execve(2) of the file h on the node's CPU.
func (s NodeSpec) kernelExec(fs *rootfs, argv0 string, h *tar.Header, layer int, labels map[string]string, depth int) (execOutcome, error) {
	if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeLink {
		return s.execFailure(argv0, "permission denied"), nil
	}
	head, err := fs.read(h, layer, 64<<10)
	if err != nil {
		return execOutcome{}, err
	}
	if bytes.HasPrefix(head, []byte("#!")) {
		if depth > 4 {
			return s.execFailure(argv0, "too many levels of symbolic links"), nil
		}
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		// The kernel splits the #! line at spaces and tabs only: a CRLF
		// script names "/bin/sh\r", which does not exist.
		interp, _, _ := strings.Cut(strings.TrimLeft(string(line), " \t"), " ")
		interp, _, _ = strings.Cut(interp, "\t")
		if interp == "" {
			return s.execFailure(argv0, enoexec), nil
		}
		ih, il, _, err := fs.resolve(interp)
		if errors.Is(err, errNotExist) {
			return s.execFailure(argv0, enoent), nil
		}
		if err != nil {
			return execOutcome{}, err
		}
		out, err := s.kernelExec(fs, argv0, ih, il, labels, depth+1)
		if err != nil || !out.exited {
			return out, err
		}
		return out, nil
	}
	e, ok := parseELF(head)
	if !ok {
		return s.execFailure(argv0, enoexec), nil
	}
	if !s.canRun(e.machine) {
		return s.execFailure(argv0, enoexec), nil
	}
	if e.interp != "" {
		lh, ll, _, err := fs.resolve(e.interp)
		if errors.Is(err, errNotExist) {
			return s.execFailure(argv0, enoent), nil
		}
		if err != nil {
			return execOutcome{}, err
		}
		lhead, err := fs.read(lh, ll, 4096)
		if err != nil {
			return execOutcome{}, err
		}
		if le, ok := parseELF(lhead); !ok || le.machine != e.machine {
			return s.execFailure(argv0, enoexec), nil
		}
	}
	if e.machine == emX8664 && s.Arch == "amd64" {
		need := goamd64Level(labels)
		if need == 0 && h.Size <= 256<<20 {
			if full, err := fs.read(h, layer, 256<<20); err == nil {
				if bi, err := buildinfo.Read(bytes.NewReader(full)); err == nil {
					for _, st := range bi.Settings {
						if st.Key == "GOAMD64" {
							need = levelOf(st.Value)
						}
					}
				}
			}
		}
		if need > s.X86Level {
			return execOutcome{exited: true, exitCode: 1, log: fmt.Sprintf("This program can only be run on AMD64 processors with v%d microarchitecture support.\n", need)}, nil
		}
	}
	return execOutcome{}, nil
}

func goamd64Level(labels map[string]string) int { return levelOf(labels[GOAMD64Label]) }

func levelOf(v string) int {
	switch v {
	case "v2":
		return 2
	case "v3":
		return 3
	case "v4":
		return 4
	}
	return 0
}

const (
	em386     = 3
	emARM     = 40
	emX8664   = 62
	emAArch64 = 183
)

func (s NodeSpec) canRun(machine uint16) bool {
	switch s.Arch {
	case "amd64":
		return machine == emX8664 || machine == em386
	case "arm64":
		return machine == emAArch64 || machine == emARM && s.Arm32
	case "arm":
		return machine == emARM
	case "386":
		return machine == em386
	}
	return false
}

type elfInfo struct {
	machine uint16
	interp  string
}

// parseELF reads e_machine and PT_INTERP from the start of an ELF file.
func parseELF(b []byte) (elfInfo, bool) {
	if len(b) < 52 || !bytes.HasPrefix(b, []byte("\x7fELF")) {
		return elfInfo{}, false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if b[5] == 2 {
		bo = binary.BigEndian
	}
	info := elfInfo{machine: bo.Uint16(b[18:20])}
	var phoff uint64
	var phentsize, phnum uint16
	is64 := b[4] == 2
	if is64 {
		if len(b) < 64 {
			return info, true
		}
		phoff = bo.Uint64(b[32:40])
		phentsize, phnum = bo.Uint16(b[54:56]), bo.Uint16(b[56:58])
	} else {
		phoff = uint64(bo.Uint32(b[28:32]))
		phentsize, phnum = bo.Uint16(b[42:44]), bo.Uint16(b[44:46])
	}
	for i := uint64(0); i < uint64(phnum); i++ {
		o := phoff + i*uint64(phentsize)
		if o+uint64(phentsize) > uint64(len(b)) || phentsize < 32 {
			break
		}
		ph := b[o : o+uint64(phentsize)]
		if bo.Uint32(ph[0:4]) != 3 { // PT_INTERP
			continue
		}
		var off, size uint64
		if is64 {
			off, size = bo.Uint64(ph[8:16]), bo.Uint64(ph[32:40])
		} else {
			off, size = uint64(bo.Uint32(ph[4:8])), uint64(bo.Uint32(ph[16:20]))
		}
		if off+size <= uint64(len(b)) {
			info.interp = strings.TrimRight(string(b[off:off+size]), "\x00")
		}
	}
	return info, true
}
