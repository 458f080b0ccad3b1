// Package verify tells what the entrypoint of an image really is: it finds
// the file that would run (Entrypoint/Cmd or a pod's command, looked up on
// the PATH), reading layers top-down and only as far as the answer needs,
// and judges its ELF header, its loader or its script interpreter against
// the architecture the image entry declares.
package verify

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// DefaultPath is the PATH containerd gives a container whose image has no
// Env at all.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxInterpDepth is how deep the kernel follows #! interpreters that are
// themselves scripts (BINPRM_MAX_RECURSION).
const maxInterpDepth = 4

// Entrypoint finds and judges the program img would run. Verdicts follow
// what the kernel and runc would do, in their order:
//
//   - no-entrypoint: no Entrypoint, Cmd or pod command.
//   - not-found: the file (or a PATH match that is an executable regular
//     file) is not in the merged layers.
//   - not-executable: a directory, no execute bit, neither ELF nor #!
//     (ENOEXEC, but not arch), an ELF that is not an executable, a CR in
//     the #! line, a #! with no interpreter.
//   - wrong-arch: the ELF that would run (the binary, a #! interpreter, or
//     the command of #!/usr/bin/env) is another arch than the entry
//     declares. A 386 binary in an amd64 entry is ok, with a note: amd64
//     nodes run it. A 32-bit arm binary in an arm64 entry is wrong-arch,
//     with a note: many arm64 CPUs cannot run AArch32 code.
//   - missing-interpreter: the arch is right but the #! interpreter, env's
//     command or the ELF loader (PT_INTERP) is missing, or the loader is
//     not ELF of the binary's machine.
//   - unverifiable: a limit was reached or a layer could not be read.
//
// The error is for a canceled ctx or an image whose config or layer list
// cannot be read. Safe for concurrent use: each call keeps its own state.
func Entrypoint(ctx context.Context, img v1.Image, opts ...Option) (*image.Entrypoint, error) {
	return entrypoint(ctx, img, layerKeys, opts...)
}

// entrypoint is Entrypoint with the rule that names img's layers for a
// Cache (layerKeys; tests give images without an origin keys of their own).
func entrypoint(ctx context.Context, img v1.Image, keysOf func(v1.Image, int) []layerKey, opts ...Option) (*image.Entrypoint, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.limits = o.limits.withDefaults()
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing image layers: %w", err)
	}
	b := &budget{limits: o.limits}
	v := &verifier{o: o, cfg: cf.Config, b: b, fs: newFS(layers, b), res: &image.Entrypoint{}}
	if o.cache != nil {
		if keys := keysOf(img, len(layers)); keys != nil {
			v.fs.useCache(o.cache, keys)
		}
	}
	closed := false
	defer func() {
		if !closed {
			// A panic (a bug reached through this image's bytes; the
			// resolver makes it the image's error): what was indexed of the
			// layer held for the cache may be half built. Publish nothing,
			// and let verifications waiting for that layer go: the next
			// one reads it again (and meets the same panic, if it is one).
			v.fs.abandon()
		}
	}()
	v.want = o.arch
	if v.want == "" {
		v.want = cf.Architecture
	}
	if v.want != "" {
		v.want = platform.Arch(specs.Platform{OS: "linux", Architecture: v.want})
	}
	v.run(ctx)
	v.fs.finish(ctx)
	v.fs.close()
	closed = true
	v.res.BytesRead, v.res.LayersRead = b.compressed, b.opened
	if err := ctx.Err(); err != nil {
		return v.res, err
	}
	return v.res, nil
}

// layerKeys names img's layers for a Cache: their origin and their digests
// as the manifest lists them. nil when img has no origin or its manifest
// does not match its layers.
func layerKeys(img v1.Image, n int) []layerKey {
	origin := image.LayerOrigin(img)
	if origin == "" {
		return nil
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) != n {
		return nil
	}
	keys := make([]layerKey, n)
	for i, l := range m.Layers {
		keys[i] = layerKey{origin: origin, digest: l.Digest.String()}
	}
	return keys
}

type verifier struct {
	o    options
	cfg  v1.Config
	b    *budget
	fs   *fsys
	res  *image.Entrypoint
	want string // canonical arch the entry declares; "" when unknown
	// notes add to the Detail of the verdict.
	notes []string
}

// Argv is the command line a container of this image runs, as the kubelet
// and containerd compose it: a pod command replaces Entrypoint and Cmd,
// pod args alone replace Cmd.
func Argv(cfg v1.Config, command, args []string) []string {
	switch {
	case len(command) > 0:
		return append(append([]string{}, command...), args...)
	case len(args) > 0:
		return append(append([]string{}, cfg.Entrypoint...), args...)
	}
	return append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
}

// SearchPath is the PATH the container's exec sees: the image Env's (or
// containerd's default when the image has no Env at all), replaced by a
// PATH in the pod's env. ok is false when there is none.
func SearchPath(imageEnv, podEnv []string) (string, bool) {
	p, ok := DefaultPath, true
	if len(imageEnv) > 0 {
		p, ok = lookupEnv(imageEnv, "PATH")
	}
	if q, found := lookupEnv(podEnv, "PATH"); found {
		p, ok = q, true
	}
	return p, ok
}

func lookupEnv(env []string, name string) (string, bool) {
	val, ok := "", false
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			val, ok = v, true // the last one wins, as in an exec'd environment
		}
	}
	return val, ok
}

func (v *verifier) workdir() string {
	return rooted(v.cfg.WorkingDir)
}

// abs makes a path relative to the working directory absolute.
func (v *verifier) abs(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return path.Join(v.workdir(), p)
}

func (v *verifier) run(ctx context.Context) {
	r := v.res
	argv := Argv(v.cfg, v.o.command, v.o.args)
	if len(argv) == 0 {
		r.Verdict, r.Detail = image.VerdictNoEntrypoint, "the image sets neither Entrypoint nor Cmd, and no command is given"
		return
	}
	r.Argv0 = argv[0]
	if r.Argv0 == "" {
		r.Verdict, r.Detail = image.VerdictNotFound, "the command is an empty string"
		return
	}
	verdict, detail, err := v.main(ctx, r.Argv0)
	if err != nil {
		verdict, detail = image.VerdictUnverifiable, err.Error()
	}
	if detail != "" {
		v.notes = append([]string{detail}, v.notes...)
	}
	r.Verdict, r.Detail = verdict, strings.Join(v.notes, "; ")
}

// locate finds the file argv0 names: on the PATH for a bare name (the first
// executable regular file wins, as Go's exec.LookPath in runc decides),
// else relative to the working directory.
func (v *verifier) locate(ctx context.Context, name string) (hit, string, error) {
	if strings.Contains(name, "/") {
		p := v.abs(name)
		_, hits, err := v.fs.find(ctx, []string{p}, func(hit) bool { return true }, v.mainWant())
		if err != nil {
			return hit{}, "", err
		}
		if hits[0].status != found {
			return hits[0], fmt.Sprintf("%s not found: %s", name, hits[0].why), nil
		}
		return hits[0], "", nil
	}
	pathVar, ok := SearchPath(v.cfg.Env, v.o.env)
	if !ok {
		return hit{}, fmt.Sprintf("%s: the container has no PATH to look it up on", name), nil
	}
	var cands []string
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		cands = append(cands, path.Join(v.abs(dir), name))
	}
	i, hits, err := v.fs.find(ctx, cands, func(h hit) bool {
		return h.e.kind == kindReg && h.e.mode&0o111 != 0
	}, v.mainWant())
	if err != nil {
		return hit{}, "", err
	}
	if i < 0 {
		var skipped []string
		for j, h := range hits {
			if h.status == found {
				skipped = append(skipped, cands[j]+" is not an executable file")
			}
		}
		why := fmt.Sprintf("%s: executable file not found in PATH %s", name, pathVar)
		if len(skipped) > 0 {
			why += " (" + strings.Join(skipped, ", ") + ")"
		}
		return hit{}, why, nil
	}
	return hits[i], "", nil
}

// mainWant: the entrypoint is read whole when it is a Go binary (for its
// build info); anything else needs only its first bytes.
func (v *verifier) mainWant() want {
	w := want{min: headSize}
	if !v.o.headerOnly {
		w.full = func(head []byte) bool {
			in, err := parseELF(head, int64(len(head)))
			return (err == nil || isShort(err)) && in.goNote
		}
	}
	return w
}

func isShort(err error) bool { _, ok := err.(errShort); return ok }

func (v *verifier) main(ctx context.Context, argv0 string) (string, string, error) {
	r := v.res
	h, why, err := v.locate(ctx, argv0)
	if err != nil {
		return "", "", err
	}
	if h.status != found {
		return image.VerdictNotFound, why, nil
	}
	r.Path = h.path
	if verdict, detail := executable(h, argv0); verdict != "" {
		return verdict, detail, nil
	}
	data, whole, err := v.fs.content(ctx, h, v.mainWant())
	if err != nil {
		return "", "", err
	}
	switch {
	case isELF(data):
		r.Format = "elf"
		in, err := v.elf(ctx, h, data, v.mainWant())
		r.ELFMachine, r.ELFClass, r.Arch = int(in.machine), int(in.class), in.arch
		if errors.Is(err, ErrLimit) {
			return "", "", err
		}
		if err != nil {
			return image.VerdictNotExecutable, fmt.Sprintf("%s: malformed ELF: %v", h.path, err), nil
		}
		r.Static, r.Interpreter = in.interp == "", in.interp
		if whole && in.goNote {
			v.goInfo(data)
		}
		return v.judgeELF(ctx, h.path, in, func(a string) { r.InterpreterArch = a })
	case bytes.HasPrefix(data, []byte("#!")):
		r.Format = "script"
		sb := parseShebang(data)
		r.Shebang, r.Interpreter = sb.line, strings.ReplaceAll(sb.interp, "\r", `\r`)
		verdict, detail, arch, err := v.script(ctx, h.path, sb, 1)
		r.InterpreterArch = arch
		if verdict == image.VerdictOK || verdict == image.VerdictWrongArch {
			r.Arch = arch // the machine code that runs is the interpreter's
		}
		return verdict, detail, err
	}
	r.Format = "other"
	return image.VerdictNotExecutable, fmt.Sprintf("%s is neither ELF nor a #! script (starts with %s): the kernel refuses it with exec format error, but not because of its architecture", h.path, preview(data)), nil
}

// executable applies runc's checks before exec: a regular file with an
// execute bit.
func executable(h hit, name string) (string, string) {
	switch {
	case h.e.isDir():
		return image.VerdictNotExecutable, fmt.Sprintf("%s (%s) is a directory", name, h.path)
	case h.e.kind != kindReg:
		return image.VerdictNotExecutable, fmt.Sprintf("%s (%s) is not a regular file", name, h.path)
	case h.e.mode&0o111 == 0:
		return image.VerdictNotExecutable, fmt.Sprintf("%s (%s) has mode %04o: permission denied", name, h.path, h.e.mode&0o7777)
	}
	return "", ""
}

// elf parses the headers, reading further into the file when they lie
// beyond what was read.
func (v *verifier) elf(ctx context.Context, h hit, data []byte, w want) (elfInfo, error) {
	for range 3 {
		in, err := parseELF(data, h.e.size)
		short, ok := err.(errShort)
		if !ok {
			return in, err
		}
		w.min = short.need
		if data, _, err = v.fs.content(ctx, h, w); err != nil {
			return in, err
		}
	}
	return parseELF(data, h.e.size)
}

// judgeELF checks an ELF program the kernel would load: its type, its
// machine against the entry's arch, then its loader (PT_INTERP), which must
// exist and be ELF of the same machine.
func (v *verifier) judgeELF(ctx context.Context, p string, in elfInfo, loaderArch func(string)) (string, string, error) {
	if in.typ != 2 && in.typ != 3 { // ET_EXEC, ET_DYN
		if verdict, detail := v.archVerdict(p, in.arch); verdict != image.VerdictOK {
			return verdict, detail, nil
		}
		return image.VerdictNotExecutable, fmt.Sprintf("%s is an ELF file of type %d, not an executable", p, in.typ), nil
	}
	verdict, detail := v.archVerdict(p, in.arch)
	if verdict != image.VerdictOK || in.interp == "" {
		return verdict, detail, nil
	}
	if detail != "" {
		v.notes = append(v.notes, detail)
	}
	lh, err := v.findOne(ctx, v.abs(in.interp))
	if err != nil {
		return "", "", err
	}
	if lh.status != found {
		return image.VerdictMissingInterp, fmt.Sprintf("%s needs the loader %s, which is not in the image (%s): the kernel fails with no such file or directory", p, in.interp, lh.why), nil
	}
	if lh.e.kind != kindReg {
		return image.VerdictMissingInterp, fmt.Sprintf("the loader %s of %s is not a regular file", in.interp, p), nil
	}
	ld, _, err := v.fs.content(ctx, lh, want{min: headSize})
	if err != nil {
		return "", "", err
	}
	if !isELF(ld) {
		return image.VerdictMissingInterp, fmt.Sprintf("the loader %s of %s is not ELF: the kernel fails with ELIBBAD", in.interp, p), nil
	}
	lin, err := v.elf(ctx, lh, ld, want{min: headSize})
	if errors.Is(err, ErrLimit) {
		return "", "", err
	}
	if err != nil {
		return image.VerdictMissingInterp, fmt.Sprintf("the loader %s of %s is malformed: %v", in.interp, p, err), nil
	}
	loaderArch(lin.arch)
	if lin.machine != in.machine || lin.class != in.class || lin.data != in.data {
		return image.VerdictMissingInterp, fmt.Sprintf("%s is %s but its loader %s is %s: the kernel fails with ELIBBAD (accessing a corrupted shared library)", p, in.arch, in.interp, lin.arch), nil
	}
	return image.VerdictOK, "", nil
}

func (v *verifier) findOne(ctx context.Context, p string) (hit, error) {
	_, hits, err := v.fs.find(ctx, []string{p}, func(hit) bool { return true }, want{min: headSize})
	if err != nil {
		return hit{}, err
	}
	return hits[0], nil
}

// script judges a #! script by its interpreter, as the kernel runs it; arch
// is the architecture of the program that finally runs.
func (v *verifier) script(ctx context.Context, p string, sb shebang, depth int) (verdict, detail, arch string, err error) {
	switch {
	case sb.err != "":
		return image.VerdictNotExecutable, fmt.Sprintf("%s: %s: the kernel refuses it with exec format error", p, sb.err), "", nil
	case strings.Contains(sb.interp, "\r"):
		return image.VerdictNotExecutable, fmt.Sprintf("%s has CRLF line endings: the kernel looks for the interpreter %q and fails with no such file or directory", p, sb.interp), "", nil
	case sb.cr:
		return image.VerdictNotExecutable, fmt.Sprintf("%s has CRLF line endings: its interpreter gets the argument %q", p, sb.arg), "", nil
	}
	ip := v.abs(sb.interp)
	verdict, detail, arch, err = v.interpreter(ctx, ip, fmt.Sprintf("the interpreter %s of %s", sb.interp, p), depth)
	if err != nil || verdict != image.VerdictOK || path.Base(sb.interp) != "env" {
		return verdict, detail, arch, err
	}
	return v.env(ctx, p, sb.arg, depth)
}

// env follows "#!/usr/bin/env NAME": env itself ran fine; NAME is looked up
// on the PATH and judged in turn.
func (v *verifier) env(ctx context.Context, p, arg string, depth int) (string, string, string, error) {
	name := arg
	switch {
	case arg == "":
		return image.VerdictNotExecutable, fmt.Sprintf("%s starts with #!/usr/bin/env and no command: env prints its environment and the script never runs", p), "", nil
	case strings.HasPrefix(arg, "-S") || strings.HasPrefix(arg, "--split-string"):
		name = ""
		words := strings.Fields(strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(arg, "--split-string"), "-S"), "= "))
		for _, w := range words {
			if !strings.HasPrefix(w, "-") && !strings.Contains(w, "=") {
				name = w
				break
			}
		}
		if name == "" {
			return image.VerdictNotExecutable, fmt.Sprintf("%s: no command in %q", p, arg), "", nil
		}
	case strings.HasPrefix(arg, "-"):
		v.notes = append(v.notes, fmt.Sprintf("env options %q not interpreted: judged by env itself", arg))
		return image.VerdictOK, "", "", nil
	}
	var target string
	if strings.Contains(name, "/") {
		target = v.abs(name)
	} else {
		pathVar, ok := SearchPath(v.cfg.Env, v.o.env)
		if !ok {
			return image.VerdictMissingInterp, fmt.Sprintf("%s: env has no PATH to find %q on", p, name), "", nil
		}
		var cands []string
		for _, dir := range strings.Split(pathVar, ":") {
			if dir == "" {
				dir = "."
			}
			cands = append(cands, path.Join(v.abs(dir), name))
		}
		i, _, err := v.fs.find(ctx, cands, func(h hit) bool {
			return h.e.kind == kindReg && h.e.mode&0o111 != 0
		}, want{min: headSize})
		if err != nil {
			return "", "", "", err
		}
		if i < 0 {
			return image.VerdictMissingInterp, fmt.Sprintf("%s runs %q through env, which is not on the PATH %s: env fails with no such file or directory", p, name, pathVar), "", nil
		}
		target = cands[i]
	}
	return v.interpreter(ctx, target, fmt.Sprintf("%s (the command env runs for %s)", name, p), depth)
}

// interpreter judges a program the kernel runs on behalf of a script.
func (v *verifier) interpreter(ctx context.Context, p, role string, depth int) (string, string, string, error) {
	h, err := v.findOne(ctx, p)
	if err != nil {
		return "", "", "", err
	}
	if h.status != found {
		return image.VerdictMissingInterp, fmt.Sprintf("%s is not in the image (%s): the kernel fails with no such file or directory", role, h.why), "", nil
	}
	if h.e.kind != kindReg {
		return image.VerdictMissingInterp, fmt.Sprintf("%s (%s) is not a regular file", role, h.path), "", nil
	}
	data, _, err := v.fs.content(ctx, h, want{min: headSize})
	if err != nil {
		return "", "", "", err
	}
	switch {
	case isELF(data):
		in, err := v.elf(ctx, h, data, want{min: headSize})
		if errors.Is(err, ErrLimit) {
			return "", "", "", err
		}
		if err != nil {
			return image.VerdictNotExecutable, fmt.Sprintf("%s (%s) is malformed ELF: %v", role, h.path, err), in.arch, nil
		}
		verdict, detail, err := v.judgeELF(ctx, h.path, in, func(string) {})
		return verdict, detail, in.arch, err
	case bytes.HasPrefix(data, []byte("#!")):
		if depth >= maxInterpDepth {
			return image.VerdictNotExecutable, fmt.Sprintf("%s (%s) is itself a script, %d levels deep: the kernel gives up (ELOOP)", role, h.path, depth), "", nil
		}
		return v.script(ctx, h.path, parseShebang(data), depth+1)
	}
	return image.VerdictNotExecutable, fmt.Sprintf("%s (%s) is neither ELF nor a #! script: exec format error, not an architecture problem", role, h.path), "", nil
}

// archVerdict compares a binary's arch with the entry's. amd64 nodes run
// 386 binaries (IA32 emulation is on in the usual kernels), so that is ok
// with a note. A 32-bit arm binary in an arm64 entry is wrong-arch: many
// arm64 CPUs no longer execute AArch32 code at all.
func (v *verifier) archVerdict(p, arch string) (string, string) {
	switch {
	case v.want == "":
		return image.VerdictOK, fmt.Sprintf("%s is %s; the entry declares no architecture to compare with", p, arch)
	case arch == v.want:
		return image.VerdictOK, ""
	case v.want == "amd64" && arch == "386":
		return image.VerdictOK, fmt.Sprintf("%s is a 32-bit 386 binary in an amd64 entry: amd64 nodes run it through the kernel's IA32 emulation (unless disabled), though the entry's platform is inaccurate", p)
	case v.want == "arm64" && arch == "arm":
		return image.VerdictWrongArch, fmt.Sprintf("%s is a 32-bit arm binary in an arm64 entry: it runs only where the CPU still executes AArch32 code and the kernel has CONFIG_COMPAT, which many arm64 nodes lack", p)
	}
	return image.VerdictWrongArch, fmt.Sprintf("%s is %s, the entry is %s: exec format error", p, arch, v.want)
}

// goInfo records the Go version and the build settings that bound where
// the binary runs (GOAMD64=v3 needs an x86-64-v3 CPU).
func (v *verifier) goInfo(data []byte) {
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return
	}
	s := map[string]string{"GOVERSION": bi.GoVersion}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "GOOS", "GOARCH", "GOAMD64", "GOARM", "GOARM64", "GO386", "GOPPC64", "GORISCV64", "GOMIPS", "GOMIPS64", "CGO_ENABLED", "-buildmode":
			s[kv.Key] = kv.Value
		}
	}
	v.res.GoSettings = s
	if l := s["GOAMD64"]; l != "" && l != "v1" {
		v.notes = append(v.notes, fmt.Sprintf("Go binary built with GOAMD64=%s: it exits at start on CPUs below x86-64-%s", l, l))
	}
}

func preview(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return fmt.Sprintf("%q", b)
}
