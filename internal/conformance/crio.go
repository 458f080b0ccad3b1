//go:build linux

package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIOProxyVersion is the CRI-O hack/runtimes-crio.sh builds by default: the
// newest github.com/cri-o/cri-o the Go module proxy serves. (The proxy's
// v1.34.0 is a main-branch commit of 2025-05-14 that calls itself 1.34.0, not
// the 1.34.0 release: see hack/runtimes-crio.sh.)
const CRIOProxyVersion = "1.34.0"

// CRIOConfig is a built CRI-O binary for one architecture.
type CRIOConfig struct {
	Bin      string // path to crio
	Arch     string // "amd64" or "arm64" (arm64 runs under qemu-aarch64-static)
	Dir      string // fresh empty directory for everything the runtime writes
	Registry string // host:port of a plain-HTTP registry to trust
	// HostCPUInfo, for arm64 only, leaves the host's /proc/cpuinfo in view of
	// the emulated crio. qemu-user 7.2 passes the host's (x86) file through,
	// where containers/image finds no "CPU architecture" line and so detects
	// no arm64 variant, which a real arm64 kernel (CPU architecture: 8, hence
	// v8) never shows. By default crio runs in a private mount namespace with
	// an arm64 /proc/cpuinfo bound over the host's.
	HostCPUInfo bool
}

// CRIOBuild is one crio binary hack/runtimes-crio.sh cached.
type CRIOBuild struct {
	Version string // as built, e.g. "1.34.0"
	Arch    string // amd64 or arm64
	Source  string // "proxy" (the Go module proxy's module) or "source-tree" (ARCHFIT_CRIO_SRC)
	Bin     string
}

// CRIOBuilds lists the crio binaries in hack/runtimes-crio.sh's cache
// (CacheDir, shared with hack/runtimes.sh): directories
// cri-o-*-<arch> holding crio and the stamp written after it.
func CRIOBuilds() []CRIOBuild {
	cache := CacheDir()
	if cache == "" {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join(cache, "cri-o-*"))
	var out []CRIOBuild
	for _, d := range dirs {
		st, err := os.ReadFile(filepath.Join(d, "stamp"))
		if err != nil || len(st) > 4096 {
			continue
		}
		// cri-o v1.34.0 amd64 from=proxy tags=... gosum=... go1.26.8
		f := strings.Fields(string(st))
		if len(f) < 4 || f[0] != "cri-o" || !strings.HasPrefix(f[3], "from=") {
			continue
		}
		b := CRIOBuild{Version: strings.TrimPrefix(f[1], "v"), Arch: f[2], Source: strings.TrimPrefix(f[3], "from="), Bin: filepath.Join(d, "crio")}
		if fi, err := os.Stat(b.Bin); err != nil || fi.Mode()&0o111 == 0 || (b.Arch != "amd64" && b.Arch != "arm64") {
			continue
		}
		out = append(out, b)
	}
	return out
}

// crioARM64CPUInfo is /proc/cpuinfo of an arm64 kernel, one core (a Neoverse N1),
// as far as containers/image reads it: "CPU architecture: 8" means v8.
const crioARM64CPUInfo = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n" +
	"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n"

// crioBinfmtAarch64 is the binfmt_misc registration that runs arm64 ELF
// executables with qemu. F: the interpreter is opened now, at registration;
// P: argv[0] is passed on, which is how containers/storage's re-executed
// /proc/self/exe ("storage-applyLayer") knows what to do (without it the
// child starts a whole second crio instead of applying the layer).
func crioBinfmtAarch64(qemu string) string {
	return `:qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:` +
		`\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:` + qemu + ":FP"
}

// Stand-ins for the programs CRI-O insists exist at start (it runs
// "conmon --version" and "<runtime> --version", and stats pinns). The suite
// only pulls; a container start reaches them and fails loudly.
const (
	crioConmonStandIn = "#!/bin/sh\n# archfit conformance: CRI-O checks conmon's version at start; pulls never run it.\n" +
		"case \"$1\" in --version) echo 'conmon version 2.1.12'; echo 'commit: none (archfit conformance stand-in)'; exit 0;; esac\n" +
		"echo 'archfit conformance: conmon stand-in, this suite runs no containers' >&2\nexit 1\n"
	crioRuntimeStandIn = "#!/bin/sh\n# archfit conformance: CRI-O checks the OCI runtime's version at start; pulls never run it.\n" +
		"case \"$1\" in --version) echo 'archfit-conformance-stand-in version 0.0.0'; exit 0;; esac\n" +
		"echo 'archfit conformance: OCI runtime stand-in, this suite runs no containers' >&2\nexit 1\n"
)

// crioConf writes CRI-O's configuration: everything it writes under dir,
// storage driver vfs, no CNI plugins (an empty network directory: CRI-O
// starts and reports NetworkReady=false, which pulls do not need), NRI and
// metrics off, cgroupfs, the stand-ins above.
func crioConf(dir string) string {
	q := func(p string) string { return fmt.Sprintf("%q", filepath.Join(dir, p)) }
	return `[crio]
root = ` + q("storage") + `
runroot = ` + q("runroot") + `
storage_driver = "vfs"
log_dir = ` + q("log") + `
version_file = ` + q("version") + `
version_file_persist = ` + q("version-persist") + `
clean_shutdown_file = ` + q("clean.shutdown") + `

[crio.api]
listen = ` + q("crio.sock") + `
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "standin"
conmon = ` + q("bin/conmon") + `
conmon_cgroup = "pod"
cgroup_manager = "cgroupfs"
container_exits_dir = ` + q("exits") + `
container_attach_socket_dir = ` + q("attach") + `
namespaces_dir = ` + q("ns") + `
pinns_path = ` + q("bin/pinns") + `
hooks_dir = [` + q("hooks") + `]
cdi_spec_dirs = [` + q("cdi") + `]
irqbalance_config_file = ` + q("irqbalance") + `
irqbalance_config_restore_file = "disable"
enable_criu_support = false
disable_hostport_mapping = true

[crio.runtime.runtimes.standin]
runtime_path = ` + q("bin/runtime") + `
runtime_type = "oci"
runtime_root = ` + q("runtime-root") + `
monitor_path = ` + q("bin/conmon") + `

[crio.image]
signature_policy = ` + q("policy.json") + `
signature_policy_dir = ` + q("policies") + `
big_files_temporary_dir = ` + q("tmp") + `

[crio.network]
network_dir = ` + q("cni/net.d") + `
plugin_dirs = [` + q("cni/bin") + `]

[crio.nri]
enable_nri = false

[crio.metrics]
enable_metrics = false
`
}

// StartCRIO starts CRI-O and returns its CRI endpoint (unix socket path) once
// it answers; t.Cleanup stops it and removes state.
func StartCRIO(t testing.TB, c CRIOConfig) (endpoint string) {
	t.Helper()
	if c.Arch != "amd64" && c.Arch != "arm64" {
		t.Fatalf("StartCRIO: arch %q (amd64, arm64)", c.Arch)
	}
	if os.Geteuid() != 0 {
		t.Skip("CRI-O needs root")
	}
	if ents, err := os.ReadDir(c.Dir); err != nil || len(ents) > 0 {
		t.Fatalf("StartCRIO: Dir %q must be an existing empty directory (%v)", c.Dir, err)
	}
	// Dir and Registry go into TOML strings: keep them plain.
	if !filepath.IsAbs(c.Dir) || strings.ContainsAny(c.Dir, "\"\\\n\r\t") {
		t.Fatalf("StartCRIO: Dir %q must be an absolute path without quotes, backslashes or control characters", c.Dir)
	}
	if c.Registry == "" || strings.ContainsAny(c.Registry, "\"\\/ \n\r\t") {
		t.Fatalf("StartCRIO: Registry %q must be a bare host:port", c.Registry)
	}
	sock := filepath.Join(c.Dir, "crio.sock")
	if len(sock) >= 108 {
		t.Fatalf("StartCRIO: socket path %s is too long for a unix socket", sock)
	}
	mount, err := exec.LookPath("mount")
	if err != nil {
		t.Skipf("CRI-O runs in a private mount namespace set up with mount(8): %v", err)
	}
	for _, d := range []string{"storage", "runroot", "log", "exits", "attach", "ns", "hooks", "cdi", "cni/net.d", "cni/bin",
		"tmp", "bin", "policies", "conf.d", "registries.d", "home", "xdg", "runtime-root"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"crio.conf":       crioConf(c.Dir),
		"policy.json":     `{"default":[{"type":"insecureAcceptAnything"}]}` + "\n",
		"registries.conf": fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", c.Registry),
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(c.Dir, "runroot"), filepath.Join(c.Dir, "storage")),
		"irqbalance":      "",
		"cpuinfo":         crioARM64CPUInfo,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"conmon": crioConmonStandIn, "runtime": crioRuntimeStandIn, "pinns": crioRuntimeStandIn} {
		if err := os.WriteFile(filepath.Join(c.Dir, "bin", name), []byte(body), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	crioArgs := []string{c.Bin,
		"--config", filepath.Join(c.Dir, "crio.conf"),
		"--config-dir", filepath.Join(c.Dir, "conf.d"),
		"--registries-conf", filepath.Join(c.Dir, "registries.conf"),
		"--registries-conf-dir", filepath.Join(c.Dir, "registries.d"),
		"--log-level", "info",
	}
	// crio runs in a mount namespace of its own: whatever it mounts ends
	// with it. arm64 adds a user namespace (mapping every ID to itself, so
	// CRI-O and containers/storage see plain root) for a binfmt_misc of its
	// own: containers/storage applies each layer in a re-executed
	// /proc/self/exe, which qemu-user turns into an exec of the arm64 crio
	// that only a binfmt_misc entry for qemu-aarch64-static can run
	// (kernel >= 6.7 gives a user namespace its own binfmt_misc; nothing
	// is registered on the host).
	script := `set -e; "$0" --make-rprivate /; `
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWNS}
	if c.Arch == "arm64" {
		qemu, err := QEMU()
		if err != nil {
			t.Skipf("arm64 CRI-O runs under qemu-user: %v (Debian package qemu-user-static)", err)
		}
		crioArgs = append([]string{qemu}, crioArgs...)
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1<<32 - 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1<<32 - 1}}
		attr.GidMappingsEnableSetgroups = true
		if err := os.WriteFile(filepath.Join(c.Dir, "binfmt"), []byte(crioBinfmtAarch64(qemu)), 0o600); err != nil {
			t.Fatal(err)
		}
		script += `"$0" -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; cat binfmt > /proc/sys/fs/binfmt_misc/register; `
		if !c.HostCPUInfo {
			script += `"$0" --bind cpuinfo /proc/cpuinfo; `
		}
	}
	script += `exec "$@"`
	args := append([]string{"-c", script, mount}, crioArgs...)

	logPath := filepath.Join(c.Dir, "crio.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(c.Dir, "home"),
		"XDG_RUNTIME_DIR=" + filepath.Join(c.Dir, "xdg"),
		"TMPDIR=" + filepath.Join(c.Dir, "tmp"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(c.Dir, "storage.conf"),
	}
	cmd.SysProcAttr = attr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting crio: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		crioStopGroup(cmd.Process.Pid, exited)
		if t.Failed() {
			t.Logf("crio log (%s):\n%s", c.Arch, crioTail(logPath, 4000))
		}
		if os.Getenv("ARCHFIT_CONFORMANCE_KEEP") == "" {
			if err := os.RemoveAll(c.Dir); err != nil {
				t.Errorf("removing CRI-O state: %v", err)
			}
		}
	})

	// qemu-user takes a while for a 50 MB Go binary (10-20 s on an idle
	// machine): allow two minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("crio (%s) exited before answering: %v\n%s", c.Arch, err, crioTail(logPath, 4000))
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			vctx, vcancel := context.WithTimeout(ctx, 5*time.Second)
			v, err := CRIOVersion(vctx, sock)
			vcancel()
			if err == nil {
				t.Logf("crio %s (%s) answered after %s", v, c.Arch, time.Since(start).Round(time.Millisecond))
				return sock
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("crio (%s) did not answer on %s within two minutes\n%s", c.Arch, sock, crioTail(logPath, 4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// crioStopGroup ends crio's process group: SIGTERM, then SIGKILL after 15s.
func crioStopGroup(pid int, exited chan error) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
}

func crioTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// CRIOVersion returns "cri-o://X.Y.Z" as a kubelet reports it: the CRI
// Version call's RuntimeName and RuntimeVersion, joined the way kubelet fills
// status.nodeInfo.containerRuntimeVersion.
func CRIOVersion(ctx context.Context, endpoint string) (string, error) {
	cl, err := Dial(ctx, endpoint)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	v, err := cl.Runtime.Version(ctx, &cri.VersionRequest{})
	if err != nil {
		return "", err
	}
	return v.RuntimeName + "://" + v.RuntimeVersion, nil
}

// CRIOPullError is a pull the runtime refused: Message is the gRPC status
// message, the text kubelet puts after "rpc error: code = ... desc = ".
type CRIOPullError struct {
	Code    string
	Message string
}

func (e *CRIOPullError) Error() string { return e.Message }

// CRIOPull pulls ref through the CRI image service and returns the pulled
// image's ID as ImageStatus reports it, in "sha256:<hex>" form (CRI-O's image
// ID is the config blob's digest).
func CRIOPull(ctx context.Context, endpoint, ref string) (string, error) {
	cl, err := Dial(ctx, endpoint)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	img := cl.Image
	spec := &cri.ImageSpec{Image: ref}
	if _, err := img.PullImage(ctx, &cri.PullImageRequest{Image: spec}); err != nil {
		if s, ok := status.FromError(err); ok {
			return "", &CRIOPullError{Code: s.Code().String(), Message: s.Message()}
		}
		return "", err
	}
	st, err := img.ImageStatus(ctx, &cri.ImageStatusRequest{Image: spec})
	if err != nil {
		return "", fmt.Errorf("image status after pulling %s: %w", ref, err)
	}
	if st.Image == nil {
		return "", errors.New("image status after pulling " + ref + ": no image")
	}
	id := st.Image.Id
	if !strings.HasPrefix(id, "sha256:") {
		id = "sha256:" + id
	}
	return id, nil
}
