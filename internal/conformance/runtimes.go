package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is one built runtime binary.
type Runtime struct {
	Name    string // containerd, cri-o
	Version string // as released: 2.1.9
	Arch    string // amd64 or arm64
	Bin     string
}

// String is the runtime as a kubelet reports it: containerd://2.1.9.
func (r Runtime) String() string { return r.Name + "://" + r.Version }

// CacheDir is where hack/runtimes.sh builds: $ARCHFIT_RUNTIMES_CACHE, or
// ~/.cache/archfit-runtimes.
func CacheDir() string {
	if d := os.Getenv("ARCHFIT_RUNTIMES_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "archfit-runtimes")
}

// BuiltContainerd lists the containerd binaries hack/runtimes.sh built in
// dir (containerd-VERSION-ARCH/containerd with its stamp), oldest first.
func BuiltContainerd(dir string) []Runtime {
	ms, _ := filepath.Glob(filepath.Join(dir, "containerd-*-*", "stamp"))
	var out []Runtime
	for _, m := range ms {
		base := filepath.Base(filepath.Dir(m))
		rest := strings.TrimPrefix(base, "containerd-")
		i := strings.LastIndex(rest, "-")
		if i < 0 {
			continue
		}
		bin := filepath.Join(filepath.Dir(m), "containerd")
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		out = append(out, Runtime{Name: "containerd", Version: rest[:i], Arch: rest[i+1:], Bin: bin})
	}
	sort.Slice(out, func(i, j int) bool {
		if c := compareVersions(out[i].Version, out[j].Version); c != 0 {
			return c < 0
		}
		return out[i].Arch < out[j].Arch
	})
	return out
}

func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x - y
		}
	}
	return len(as) - len(bs)
}

// hasTransfer tells whether a containerd version's CRI pulls through the
// transfer service by default (2.1 and later).
func hasTransfer(version string) bool { return compareVersions(version, "2.1") >= 0 }

// ContainerdConfig is one containerd run.
type ContainerdConfig struct {
	Runtime
	Dir      string // fresh, empty: root, state, sockets, config, log
	Registry string // host:port of a plain-HTTP registry
	// LocalPull sets use_local_image_pull = true (2.1 and later); otherwise
	// 2.1 and later pull through the transfer service, their default.
	LocalPull bool
}

// Containerd is a running containerd.
type Containerd struct {
	Endpoint string
	logPath  string
}

// Log is everything containerd has logged so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// QEMU is the user-mode emulator arm64 runtimes run under.
func QEMU() (string, error) {
	if p := os.Getenv("ARCHFIT_QEMU_AARCH64"); p != "" {
		return p, nil
	}
	return exec.LookPath("qemu-aarch64-static")
}

// config writes containerd's configuration: its default settings but for
// paths, which all live in Dir so that runs never share state, and a
// hosts.toml that lets it reach the registry over plain HTTP (config_path,
// which keeps 2.1+ on the transfer service; the deprecated registry
// mirrors/configs would not).
func (c ContainerdConfig) config() (string, error) {
	hosts := filepath.Join(c.Dir, "certs.d", c.Registry)
	if err := os.MkdirAll(hosts, 0o755); err != nil {
		return "", err
	}
	ht := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+c.Registry, "http://"+c.Registry)
	if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(ht), 0o644); err != nil {
		return "", err
	}
	cni := filepath.Join(c.Dir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	q := strconv.Quote
	v3 := compareVersions(c.Version, "2.0") >= 0
	if v3 {
		b.WriteString("version = 3\n")
	} else {
		b.WriteString("version = 2\n")
	}
	fmt.Fprintf(&b, "root = %s\nstate = %s\n", q(filepath.Join(c.Dir, "root")), q(filepath.Join(c.Dir, "state")))
	// NRI and /opt plugins would use host-wide paths.
	b.WriteString("disabled_plugins = [\"io.containerd.nri.v1.nri\", \"io.containerd.internal.v1.opt\"]\n")
	fmt.Fprintf(&b, "[grpc]\n  address = %s\n", q(filepath.Join(c.Dir, "c.sock")))
	fmt.Fprintf(&b, "[ttrpc]\n  address = %s\n", q(filepath.Join(c.Dir, "c.sock.ttrpc")))
	if v3 {
		b.WriteString("[plugins.\"io.containerd.cri.v1.images\"]\n")
		if hasTransfer(c.Version) {
			fmt.Fprintf(&b, "  use_local_image_pull = %t\n", c.LocalPull)
		}
		fmt.Fprintf(&b, "[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = %s\n", q(filepath.Join(c.Dir, "certs.d")))
		fmt.Fprintf(&b, "[plugins.\"io.containerd.cri.v1.runtime\".cni]\n  bin_dirs = [%s]\n  conf_dir = %s\n", q(cni), q(cni))
	} else {
		fmt.Fprintf(&b, "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = %s\n", q(filepath.Join(c.Dir, "certs.d")))
		fmt.Fprintf(&b, "[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = %s\n  conf_dir = %s\n", q(cni), q(cni))
	}
	path := filepath.Join(c.Dir, "config.toml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// StartContainerd starts containerd and returns once its CRI answers; the
// test's cleanup stops it and unmounts what it left.
func StartContainerd(t testing.TB, c ContainerdConfig) *Containerd {
	t.Helper()
	cfg, err := c.config()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{c.Bin, "--config", cfg}
	if c.Arch == "arm64" {
		qemu, err := QEMU()
		if err != nil {
			t.Fatalf("arm64 containerd needs qemu-aarch64-static (Debian's qemu-user-static): %v", err)
		}
		args = append([]string{qemu}, args...)
	}
	logPath := filepath.Join(c.Dir, "containerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	ctd := &Containerd{Endpoint: filepath.Join(c.Dir, "c.sock"), logPath: logPath}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		unmountUnder(c.Dir)
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("%s %s exited at start:\n%s", c.Runtime, c.Arch, tail(ctd.Log(), 40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, err := Dial(ctx, ctd.Endpoint)
		if err == nil {
			_, err = cl.Runtime.Version(ctx, &cri.VersionRequest{})
			cl.Close()
		}
		cancel()
		if err == nil {
			return ctd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: CRI did not answer in 90s: %v\n%s", c.Runtime, c.Arch, err, tail(ctd.Log(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts whatever a runtime left mounted below dir
// (overlay snapshots), deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			ms = append(ms, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ms)))
	for _, m := range ms {
		_ = exec.Command("umount", "-l", m).Run()
	}
}

func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// Client is a CRI client, the kubelet's side of the socket.
type Client struct {
	conn    *grpc.ClientConn
	Runtime cri.RuntimeServiceClient
	Image   cri.ImageServiceClient
}

// Dial connects to a CRI endpoint (a unix socket path).
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, Runtime: cri.NewRuntimeServiceClient(conn), Image: cri.NewImageServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
