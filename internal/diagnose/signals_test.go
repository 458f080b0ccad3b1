package diagnose

import (
	"testing"
)

func TestClassifyText(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want signal
	}{
		{"runc 1.2", "exec /app: exec format error", sigExecFormat},
		{"runc 1.0", "standard_init_linux.go:228: exec user process caused: exec format error", sigExecFormat},
		{"crun", "exec container process `/usr/local/bin/app`: Exec format error", sigExecFormat},
		{"shim event", `Error: failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/app": exec format error: unknown`, sigExecFormat},
		{"goamd64", "This program can only be run on AMD64 processors with v3 microarchitecture support.", sigCPULevel},
		{"glibc level", "Fatal glibc error: CPU does not support x86-64-v2", sigCPULevel},
		{"qemu sigill", "qemu: uncaught target signal 4 (Illegal instruction) - core dumped", sigCPULevel},
		{"runc enoent", "exec /docker-entrypoint.sh: no such file or directory", sigNoSuchFile},
		{"runc enoent prefixed", "log (previous): exec /app: no such file or directory", sigNoSuchFile},
		{"crun enoent", "exec container process `/entrypoint.sh`: No such file or directory", sigNoSuchFile},
		{"bad interpreter", "/bin/bash^M: bad interpreter: No such file or directory", sigNoSuchFile},
		{"stat", `exec: "/app": stat /app: no such file or directory: unknown`, sigNoSuchFile},
		{"not in PATH", `exec: "server": executable file not found in $PATH: unknown`, sigNoSuchFile},
		{"app open", `open /etc/app.yaml: no such file or directory`, sigNone},
		{"app panic", "panic: runtime error: invalid memory address or nil pointer dereference", sigNone},
		{"containerd local", `failed to pull and unpack image "x:1": no match for platform in manifest: not found`, sigNoMatch},
		{"containerd transfer", "get image config descriptor: no match for platform in manifest sha256:abc: not found", sigNoMatch},
		{"containerd transfer, fallback entry filtered", "failed to pull and unpack image \"x:1\": get image config descriptor: content digest sha256:abc: not found", sigNoMatch},
		{"missing tag is not a platform miss", "failed to resolve reference \"x:1\": x:1: not found", sigNone},
		{"crio list", `choosing an image from manifest list docker://reg.test/cache:7: no image found in manifest list for architecture "arm64", variant "v8", OS "linux"`, sigNoMatch},
		{"crio index", `no image found in image index for architecture "amd64", variant "", OS "linux"`, sigNoMatch},
		{"docker", "no matching manifest for linux/arm64/v8 in the manifest list entries", sigNoMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classifyText(tc.in); got != tc.want {
				t.Errorf("classifyText(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestPullCause(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"401 Unauthorized", "not authorized"},
		{"pulling from host r.io failed with status code [manifests 1]: 401 Unauthorized", "not authorized"},
		{"failed to authorize: failed to fetch oauth token: unexpected status: 403 Forbidden", "access denied"},
		{"denied: requested access to the resource is denied", "access denied"},
		{"pull access denied for x, repository does not exist or may require 'docker login'", "access denied"},
		{"reading manifest 9 in r.io/x: manifest unknown", "image or tag not found"},
		{`failed to resolve reference "r.io/x:9": r.io/x:9: not found`, "image or tag not found"},
		{"toomanyrequests: You have reached your pull rate limit.", "rate limited"},
		{"429 Too Many Requests", "rate limited"},
		{"dial tcp 10.0.0.1:443: i/o timeout", "registry unreachable"},
		{"x509: certificate signed by unknown authority", "TLS error"},
		{"pull QPS exceeded", "kubelet pull QPS exceeded"},
		// Arch messages are never a not-arch cause, though they end in "not found".
		{"no match for platform in manifest: not found", ""},
		{"rpc error: code = NotFound desc = failed to pull and unpack image \"x\": no match for platform in manifest: not found", ""},
		// A digest that happens to contain 429 is not a rate limit.
		{"sha256:4290000000000000000000000000000000000000000000000000000000000000", ""},
	} {
		if got := pullCause(tc.in); got != tc.want {
			t.Errorf("pullCause(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
