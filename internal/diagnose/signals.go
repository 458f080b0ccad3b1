package diagnose

import (
	"regexp"
	"strings"
)

// signal is what one string (a log line, an event or status message) says.
type signal int

const (
	sigNone signal = iota
	// sigExecFormat: the kernel refused the file (ENOEXEC). Wrong-arch ELF
	// or a script without #!: the string alone cannot tell which.
	sigExecFormat
	// sigNoSuchFile: ENOENT while exec'ing: a missing interpreter or loader,
	// a CRLF shebang, or a path that is not there.
	sigNoSuchFile
	// sigCPULevel: right arch, too-new CPU level (GOAMD64, glibc x86-64-vN,
	// SIGILL under emulation).
	sigCPULevel
	// sigNoMatch: the runtime found no index entry for the node's platform.
	sigNoMatch
)

var (
	// runc >= 1.2 "exec /app: exec format error", runc <= 1.0
	// "standard_init_linux.go:228: exec user process caused: exec format
	// error", crun "exec container process `/app`: Exec format error",
	// and the same in event messages (failed to create containerd task ...).
	reExecFormat = regexp.MustCompile(`(?i)exec format error`)
	reCPULevel   = regexp.MustCompile(`This program can only be run on AMD64 processors with v\d microarchitecture support|CPU does not support x86-64-v\d|qemu: uncaught target signal 4|Illegal instruction`)
	// The exec itself failing with ENOENT, as runc, crun and the kubelet
	// word it. A bare "no such file or directory" in an application log is
	// not this.
	reNoSuchFile = regexp.MustCompile(`(?i)((?:^|\s)exec [^:\s]+: no such file or directory|exec user process caused: no such file or directory|exec container process .*: No such file or directory|bad interpreter: No such file or directory|exec: "[^"]*": stat [^:]+: no such file or directory|exec: "[^"]*": executable file not found in \$PATH|starting container process caused: exec: .*: no such file or directory|\r: No such file or directory|/usr/bin/env: '[^']*\r': No such file or directory)`)
	// containerd local path, transfer path, CRI-O (every wrapping), docker.
	// "get image config descriptor: content digest ...: not found" is
	// containerd >= 2.1's transfer path when its platform filter and its
	// config lookup disagree (an index with only a fallback entry such as
	// arm/v7 on an arm64 node): the index resolved, the platform did not.
	// A missing tag fails earlier, at "failed to resolve reference".
	reNoMatch = regexp.MustCompile(`no match for platform in manifest|get image config descriptor: content digest \S+: not found|get image compressed resource size: content digest \S+: not found|no image found in (manifest list|image index) for architecture|no matching manifest for \S+ in the manifest list entries|image with reference \S+ was found but does not match the specified platform`)
	// Not-arch pull causes. Order matters only for naming the cause.
	notArchPull = []struct {
		re    *regexp.Regexp
		cause string
	}{
		{regexp.MustCompile(`(?i)toomanyrequests|too many requests|pull rate limit|429 Too Many Requests`), "rate limited"},
		{regexp.MustCompile(`(?i)401 Unauthorized|\bunauthorized\b|authentication required|no basic auth credentials|insufficient_scope`), "not authorized"},
		{regexp.MustCompile(`(?i)\bdenied\b|403 Forbidden|pull access denied`), "access denied"},
		{regexp.MustCompile(`(?i)manifest unknown|: not found|\bnot found\b|name unknown|repository does not exist|NotFound`), "image or tag not found"},
		{regexp.MustCompile(`(?i)x509:|certificate signed by unknown authority|tls: `), "TLS error"},
		{regexp.MustCompile(`(?i)dial tcp|i/o timeout|no such host|connection refused|connection reset|context deadline exceeded|server misbehaving|EOF`), "registry unreachable"},
		{regexp.MustCompile(`(?i)invalid reference format|InvalidImageName|couldn't parse image`), "invalid image name"},
		{regexp.MustCompile(`(?i)pull QPS exceeded`), "kubelet pull QPS exceeded"},
		{regexp.MustCompile(`(?i)ErrImageNeverPull|imagePullPolicy is "Never"|Container image .* is not present with pull policy of Never`), "image not present and pull policy Never"},
	}
)

// classifyText returns what s shows, most specific first.
func classifyText(s string) signal {
	switch {
	case reNoMatch.MatchString(s):
		return sigNoMatch
	case reCPULevel.MatchString(s):
		return sigCPULevel
	case reExecFormat.MatchString(s):
		return sigExecFormat
	case reNoSuchFile.MatchString(s):
		return sigNoSuchFile
	}
	return sigNone
}

// pullCause names the not-arch cause of a pull failure message, "" if it
// names none. A no-match message is never not-arch, even though it ends in
// "not found".
func pullCause(s string) string {
	if reNoMatch.MatchString(s) {
		return ""
	}
	for _, c := range notArchPull {
		if c.re.MatchString(s) {
			return c.cause
		}
	}
	return ""
}

// matchingLines returns the lines of a log that carry a signal, in order,
// without duplicates, at most max.
func matchingLines(text string, max int) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || seen[t] {
			continue
		}
		if classifyText(l) != sigNone {
			seen[t] = true
			out = append(out, t)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// lastLine returns the last non-empty line of a log.
func lastLine(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\r\n "), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if t := strings.TrimSpace(lines[i]); t != "" {
			return t
		}
	}
	return ""
}
