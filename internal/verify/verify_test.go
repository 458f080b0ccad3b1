package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

type file = testimage.File

// outcome is the part of a verdict the table compares exactly.
type outcome struct {
	Verdict         string
	Path            string
	Format          string
	Arch            string
	Static          bool
	Interpreter     string
	InterpreterArch string
	Shebang         string
}

func outcomeOf(e *image.Entrypoint) outcome {
	return outcome{e.Verdict, e.Path, e.Format, e.Arch, e.Static, e.Interpreter, e.InterpreterArch, e.Shebang}
}

const stdPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// img builds a linux/amd64 image from layers (bottom first).
func img(t *testing.T, entrypoint, cmd []string, layers ...[]file) v1.Image {
	t.Helper()
	return spec(t, testimage.Spec{Platform: "linux/amd64", Entrypoint: entrypoint, Cmd: cmd, Env: []string{stdPath}, Layers: layers})
}

func spec(t *testing.T, s testimage.Spec) v1.Image {
	t.Helper()
	i, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// withWorkdir sets the config's WorkingDir, which testimage.Spec has no field for.
func withWorkdir(t *testing.T, i v1.Image, dir string) v1.Image {
	t.Helper()
	cf, err := i.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	c.WorkingDir = dir
	i, err = mutate.Config(i, c)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func ep(argv ...string) []string { return argv }

var (
	amd64 = testimage.ELF("amd64")
	arm64 = testimage.ELF("arm64")
)

func exe(p string, data []byte) file { return file{Path: p, Data: data} }

func TestEntrypoint(t *testing.T) {
	const ld = "/lib64/ld-linux-x86-64.so.2"
	dyn := testimage.DynamicELF("amd64", ld)
	tests := []struct {
		name   string
		img    func(t *testing.T) v1.Image
		opts   []verify.Option
		want   outcome
		detail string // a substring of Detail
		noRead bool   // decided from the config alone
	}{
		{
			name: "static amd64 at /app",
			img:  func(t *testing.T) v1.Image { return testimage.App("linux/amd64", "amd64") },
			want: outcome{Verdict: image.VerdictOK, Path: "/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name:   "arm64 binary in an amd64 entry",
			img:    func(t *testing.T) v1.Image { return testimage.App("linux/amd64", "arm64") },
			want:   outcome{Verdict: image.VerdictWrongArch, Path: "/app", Format: "elf", Arch: "arm64", Static: true},
			detail: "/app is arm64, the entry is amd64",
		},
		{
			name: "declared arch given by the index entry wins over the config",
			img:  func(t *testing.T) v1.Image { return testimage.App("linux/amd64", "arm64") },
			opts: []verify.Option{verify.WithArch("aarch64")},
			want: outcome{Verdict: image.VerdictOK, Path: "/app", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name:   "386 binary in an amd64 entry runs",
			img:    func(t *testing.T) v1.Image { return testimage.App("linux/amd64", "386") },
			want:   outcome{Verdict: image.VerdictOK, Path: "/app", Format: "elf", Arch: "386", Static: true},
			detail: "IA32 emulation",
		},
		{
			name:   "32-bit arm binary in an arm64 entry",
			img:    func(t *testing.T) v1.Image { return testimage.App("linux/arm64/v8", "arm") },
			want:   outcome{Verdict: image.VerdictWrongArch, Path: "/app", Format: "elf", Arch: "arm", Static: true},
			detail: "32-bit arm binary in an arm64 entry",
		},
		{
			name: "bare name on PATH: the first directory with it wins",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("tool"), nil,
					[]file{exe("/usr/bin/tool", arm64), exe("/bin/tool", arm64)},
					[]file{exe("/usr/local/bin/tool", amd64)},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/usr/local/bin/tool", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "bare name on PATH: an earlier directory in a lower layer wins over a later one on top",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("tool"), nil,
					[]file{exe("/usr/local/bin/tool", arm64)},
					[]file{exe("/usr/bin/tool", amd64)},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/usr/local/bin/tool", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "bare name on PATH skips a non-executable file",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("tool"), nil,
					[]file{{Path: "/usr/local/bin/tool", Data: arm64, Mode: 0o644}, exe("/usr/bin/tool", amd64)},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/usr/bin/tool", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "no Env at all: containerd's default PATH",
			img: func(t *testing.T) v1.Image {
				return spec(t, testimage.Spec{Platform: "linux/amd64", Cmd: ep("tool"), Layers: [][]file{{exe("/sbin/tool", amd64)}}})
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/sbin/tool", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "Env without PATH: nothing to look up on",
			img: func(t *testing.T) v1.Image {
				return spec(t, testimage.Spec{Platform: "linux/amd64", Cmd: ep("tool"), Env: []string{"A=b"}, Layers: [][]file{{exe("/sbin/tool", amd64)}}})
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "no PATH",
			noRead: true,
		},
		{
			name: "relative path with a slash is relative to WorkingDir",
			img: func(t *testing.T) v1.Image {
				return withWorkdir(t, img(t, ep("./bin/app"), nil, []file{exe("/srv/bin/app", amd64)}), "/srv")
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/srv/bin/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "merged usr: /bin -> usr/bin on top, binary in a lower layer",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/bin/app"), nil,
					[]file{exe("/usr/bin/app", amd64)},
					[]file{{Path: "/bin", Link: "usr/bin"}},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/usr/bin/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "merged usr: symlink in the lower layer, binary on top",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/bin/app"), nil,
					[]file{{Path: "/bin", Link: "usr/bin"}, {Path: "/usr/bin", Dir: true}},
					[]file{exe("/usr/bin/app", arm64)},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/usr/bin/app", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "absolute symlink chain across layers",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/entry"), nil,
					[]file{exe("/opt/real/app-1.2", amd64)},
					[]file{{Path: "/opt/app", Link: "/opt/real/app-1.2"}},
					[]file{{Path: "/entry", Link: "/opt/app"}},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/opt/real/app-1.2", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "relative symlink with .. resolves from the link's directory",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/usr/local/bin/app"), nil,
					[]file{exe("/usr/lib/app/app", amd64), {Path: "/usr/local/bin/app", Link: "../../lib/app/app"}},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/usr/lib/app/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "symlink escaping the root stays in the image",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil,
					[]file{exe("/real", amd64), {Path: "/app", Link: "../../../../real"}},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/real", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "symlink loop",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/a"), nil, []file{{Path: "/a", Link: "b"}, {Path: "/b", Link: "/a"}})
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "too many levels of symbolic links",
		},
		{
			name: "busybox: /bin/sh hardlinked to /bin/busybox",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/bin/sh"), nil,
					[]file{exe("/bin/busybox", arm64), {Path: "/bin/sh", Hardlink: "/bin/busybox"}},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/bin/sh", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "whiteout deletes the binary: not found",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{exe("/app", amd64)}, []file{{Path: "/.wh.app"}})
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "deleted by a whiteout in layer 2",
		},
		{
			name: "whiteout deletes the first PATH candidate: the next one runs",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("tool"), nil,
					[]file{exe("/usr/local/bin/tool", amd64), exe("/usr/bin/tool", arm64)},
					[]file{{Path: "/usr/local/bin/.wh.tool"}},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/usr/bin/tool", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "opaque directory hides the lower content",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/opt/app/run"), nil,
					[]file{exe("/opt/app/run", amd64)},
					[]file{{Path: "/opt/app/.wh..wh..opq"}, exe("/opt/app/other", amd64)},
				)
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "/opt/app is an opaque directory in layer 2",
		},
		{
			name: "opaque directory: its own new content is visible",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/opt/app/run"), nil,
					[]file{exe("/opt/app/run", amd64)},
					[]file{{Path: "/opt/app/.wh..wh..opq"}, exe("/opt/app/run", arm64)},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/opt/app/run", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "a whited-out parent directory hides what is under it",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/opt/app/run"), nil,
					[]file{exe("/opt/app/run", amd64)},
					[]file{{Path: "/opt/.wh.app"}},
				)
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "/opt/app is deleted by a whiteout",
		},
		{
			name: "dynamic ELF with its loader",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil,
					[]file{exe("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", amd64), {Path: "/lib64/ld-linux-x86-64.so.2", Link: "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}},
					[]file{exe("/app", dyn)},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/app", Format: "elf", Arch: "amd64", Interpreter: ld, InterpreterArch: "amd64"},
		},
		{
			name:   "dynamic ELF without its loader",
			img:    func(t *testing.T) v1.Image { return img(t, ep("/app"), nil, []file{exe("/app", dyn)}) },
			want:   outcome{Verdict: image.VerdictMissingInterp, Path: "/app", Format: "elf", Arch: "amd64", Interpreter: ld},
			detail: "needs the loader /lib64/ld-linux-x86-64.so.2, which is not in the image",
		},
		{
			name: "dynamic ELF with a loader of another arch",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{exe(ld, arm64), exe("/app", dyn)})
			},
			want:   outcome{Verdict: image.VerdictMissingInterp, Path: "/app", Format: "elf", Arch: "amd64", Interpreter: ld, InterpreterArch: "arm64"},
			detail: "ELIBBAD",
		},
		{
			name: "script with #!/bin/sh, interpreter present",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.sh"), nil, []file{exe("/bin/sh", amd64)}, []file{exe("/app.sh", []byte("#!/bin/sh\necho hi\n"))})
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/app.sh", Format: "script", Arch: "amd64", Interpreter: "/bin/sh", InterpreterArch: "amd64", Shebang: "#!/bin/sh"},
		},
		{
			name: "script whose interpreter is another arch",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.sh"), nil, []file{exe("/bin/busybox", arm64), {Path: "/bin/sh", Hardlink: "/bin/busybox"}, exe("/app.sh", []byte("#! /bin/sh -e\n"))})
			},
			want:   outcome{Verdict: image.VerdictWrongArch, Path: "/app.sh", Format: "script", Arch: "arm64", Interpreter: "/bin/sh", InterpreterArch: "arm64", Shebang: "#! /bin/sh -e"},
			detail: "/bin/sh is arm64",
		},
		{
			name: "script with #!/bin/sh, interpreter absent",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.sh"), nil, []file{exe("/app.sh", []byte("#!/bin/sh\necho hi\n"))})
			},
			want:   outcome{Verdict: image.VerdictMissingInterp, Path: "/app.sh", Format: "script", Interpreter: "/bin/sh", Shebang: "#!/bin/sh"},
			detail: "the interpreter /bin/sh of /app.sh is not in the image",
		},
		{
			name: "CRLF shebang: the kernel looks for /bin/sh\\r",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.sh"), nil, []file{exe("/bin/sh", amd64), exe("/app.sh", []byte("#!/bin/sh\r\necho hi\r\n"))})
			},
			want:   outcome{Verdict: image.VerdictNotExecutable, Path: "/app.sh", Format: "script", Interpreter: `/bin/sh\r`, Shebang: `#!/bin/sh\r`},
			detail: `CRLF line endings: the kernel looks for the interpreter "/bin/sh\r"`,
		},
		{
			name: "#!/usr/bin/env python3 through a symlinked python",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.py"), nil,
					[]file{exe("/usr/bin/env", amd64), exe("/usr/local/bin/python3.12", amd64), {Path: "/usr/local/bin/python3", Link: "python3.12"}},
					[]file{exe("/app.py", []byte("#!/usr/bin/env python3\nprint(1)\n"))},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/app.py", Format: "script", Arch: "amd64", Interpreter: "/usr/bin/env", InterpreterArch: "amd64", Shebang: "#!/usr/bin/env python3"},
		},
		{
			name: "#!/usr/bin/env python3, python3 of another arch",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.py"), nil,
					[]file{exe("/usr/bin/env", amd64), exe("/usr/bin/python3", arm64), exe("/app.py", []byte("#!/usr/bin/env python3\n"))},
				)
			},
			want:   outcome{Verdict: image.VerdictWrongArch, Path: "/app.py", Format: "script", Arch: "arm64", Interpreter: "/usr/bin/env", InterpreterArch: "arm64", Shebang: "#!/usr/bin/env python3"},
			detail: "/usr/bin/python3 is arm64",
		},
		{
			name: "#!/usr/bin/env python3, no python3 on the PATH",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.py"), nil, []file{exe("/usr/bin/env", amd64), exe("/app.py", []byte("#!/usr/bin/env python3\n"))})
			},
			want:   outcome{Verdict: image.VerdictMissingInterp, Path: "/app.py", Format: "script", Interpreter: "/usr/bin/env", Shebang: "#!/usr/bin/env python3"},
			detail: `runs "python3" through env, which is not on the PATH`,
		},
		{
			name: "#!/usr/bin/env without env",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.py"), nil, []file{exe("/usr/bin/python3", amd64), exe("/app.py", []byte("#!/usr/bin/env python3\n"))})
			},
			want:   outcome{Verdict: image.VerdictMissingInterp, Path: "/app.py", Format: "script", Interpreter: "/usr/bin/env", Shebang: "#!/usr/bin/env python3"},
			detail: "the interpreter /usr/bin/env of /app.py is not in the image",
		},
		{
			name: "#!/usr/bin/env python3 -u: the kernel passes one argument, env finds no such program",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.py"), nil, []file{exe("/usr/bin/env", amd64), exe("/usr/bin/python3", amd64), exe("/app.py", []byte("#!/usr/bin/env python3 -u\n"))})
			},
			want:   outcome{Verdict: image.VerdictMissingInterp, Path: "/app.py", Format: "script", Interpreter: "/usr/bin/env", Shebang: "#!/usr/bin/env python3 -u"},
			detail: `"python3 -u"`,
		},
		{
			name: "#!/usr/bin/env -S python3 -u",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app.py"), nil, []file{exe("/usr/bin/env", amd64), exe("/usr/bin/python3", amd64), exe("/app.py", []byte("#!/usr/bin/env -S python3 -u\n"))})
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/app.py", Format: "script", Arch: "amd64", Interpreter: "/usr/bin/env", InterpreterArch: "amd64", Shebang: "#!/usr/bin/env -S python3 -u"},
		},
		{
			name: "script interpreted by a script interpreted by an ELF",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{exe("/bin/sh", amd64), exe("/usr/bin/wrap", []byte("#!/bin/sh\n")), exe("/app", []byte("#!/usr/bin/wrap\n"))})
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/app", Format: "script", Arch: "amd64", Interpreter: "/usr/bin/wrap", InterpreterArch: "amd64", Shebang: "#!/usr/bin/wrap"},
		},
		{
			name: "script without #!: exec format error, but not arch",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/start.sh"), nil, []file{exe("/bin/sh", amd64), exe("/start.sh", []byte("echo hi\n"))})
			},
			want:   outcome{Verdict: image.VerdictNotExecutable, Path: "/start.sh", Format: "other"},
			detail: "neither ELF nor a #! script",
		},
		{
			name: "entrypoint is a directory",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{{Path: "/app", Dir: true}})
			},
			want:   outcome{Verdict: image.VerdictNotExecutable, Path: "/app"},
			detail: "is a directory",
		},
		{
			name: "entrypoint without an execute bit",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{{Path: "/app", Data: amd64, Mode: 0o644}})
			},
			want:   outcome{Verdict: image.VerdictNotExecutable, Path: "/app"},
			detail: "permission denied",
		},
		{
			name: "pod command replaces Entrypoint and Cmd",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), ep("/cmd"), []file{exe("/app", arm64), exe("/cmd", arm64), exe("/bin/tool", amd64)})
			},
			opts: []verify.Option{verify.WithCommand([]string{"tool"}, []string{"--flag"})},
			want: outcome{Verdict: image.VerdictOK, Path: "/bin/tool", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "pod args alone replace Cmd only",
			img: func(t *testing.T) v1.Image {
				return img(t, nil, ep("/cmd"), []file{exe("/cmd", arm64), exe("/bin/tool", amd64)})
			},
			opts: []verify.Option{verify.WithCommand(nil, []string{"/bin/tool"})},
			want: outcome{Verdict: image.VerdictOK, Path: "/bin/tool", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "pod args keep the image Entrypoint",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), ep("/cmd"), []file{exe("/app", amd64), exe("/cmd", arm64)})
			},
			opts: []verify.Option{verify.WithCommand(nil, []string{"/cmd"})},
			want: outcome{Verdict: image.VerdictOK, Path: "/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "pod env PATH replaces the image's",
			img: func(t *testing.T) v1.Image {
				return img(t, nil, ep("tool"), []file{exe("/usr/bin/tool", arm64), exe("/opt/bin/tool", amd64)})
			},
			opts: []verify.Option{verify.WithEnv([]string{"PATH=/opt/bin:/usr/bin"})},
			want: outcome{Verdict: image.VerdictOK, Path: "/opt/bin/tool", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "tar name with ../ stays in the image",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{exe("../../app", amd64)})
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "an upper directory hides a lower symlink of the same name",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/bin/app"), nil,
					[]file{{Path: "/bin", Link: "usr/bin"}, exe("/usr/bin/app", arm64)},
					[]file{exe("/bin/app", amd64)},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/bin/app", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "an upper file hides a lower directory",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/opt/app"), nil,
					[]file{exe("/opt/app", amd64)},
					[]file{{Path: "/opt", Data: []byte("x"), Mode: 0o644}},
				)
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "/opt is not a directory",
		},
		{
			name: "whiteout and a new file of the same name in one layer: the new file",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app/run"), nil,
					[]file{exe("/app", amd64)},
					[]file{{Path: "/.wh.app"}, exe("/app/run", arm64)},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/app/run", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "hardlink to a file of a lower layer",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/bin/sh"), nil,
					[]file{exe("/bin/busybox", arm64)},
					[]file{{Path: "/bin/sh", Hardlink: "/bin/busybox"}},
				)
			},
			want: outcome{Verdict: image.VerdictWrongArch, Path: "/bin/sh", Format: "elf", Arch: "arm64", Static: true},
		},
		{
			name: "symlinked PATH entry to a busybox applet",
			img: func(t *testing.T) v1.Image {
				return img(t, nil, ep("sh", "-c", "true"),
					[]file{exe("/bin/busybox", amd64), {Path: "/bin/sh", Link: "busybox"}},
				)
			},
			want: outcome{Verdict: image.VerdictOK, Path: "/bin/busybox", Format: "elf", Arch: "amd64", Static: true},
		},
		{
			name: "dangling symlink",
			img: func(t *testing.T) v1.Image {
				return img(t, ep("/app"), nil, []file{{Path: "/app", Link: "/opt/gone"}})
			},
			want:   outcome{Verdict: image.VerdictNotFound},
			detail: "/app not found: /opt is in no layer",
		},
		{
			name:   "no entrypoint",
			img:    func(t *testing.T) v1.Image { return img(t, nil, nil, []file{exe("/app", amd64)}) },
			want:   outcome{Verdict: image.VerdictNoEntrypoint},
			noRead: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verify.Entrypoint(context.Background(), tt.img(t), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, outcomeOf(got)); d != "" {
				t.Errorf("outcome (-want +got):\n%s\ndetail: %s", d, got.Detail)
			}
			if !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("detail %q does not contain %q", got.Detail, tt.detail)
			}
			if read := got.LayersRead > 0 && got.BytesRead > 0; read == tt.noRead {
				t.Errorf("read %d layers, %d bytes", got.LayersRead, got.BytesRead)
			}
		})
	}
}
