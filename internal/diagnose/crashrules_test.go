package diagnose

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestCrashRuleOrder pins which rule explains a crash for the rules the
// fixture cases do not reach; the cases in testdata/cases cover the others.
func TestCrashRuleOrder(t *testing.T) {
	arm := &image.Entry{Digest: "sha256:a", Platform: &specs.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}
	amd := &image.Entry{Digest: "sha256:b", Platform: &specs.Platform{OS: "linux", Architecture: "amd64"}}
	pod := &cluster.Pod{Pod: &corev1.Pod{}}
	for _, tc := range []struct {
		want string
		k    crash
	}{
		{"entrypoint fine, another file foreign", crash{sig: sigExecFormat, arch: "amd64", e: amd, runs: true, ep: &image.Entrypoint{Verdict: image.VerdictOK}}},
		{"exec format error, nothing more known", crash{sig: sigExecFormat, arch: "amd64", runs: true}},
		{"foreign entry on the other pull path", crash{sig: sigExecFormat, arch: "arm64", e: amd, runs: true,
			pl: &pulled{entry: amd, alt: []*image.Pull{{Digest: "sha256:a"}}}, containerCase: &containerCase{pod: pod, rep: &image.Report{Entries: []image.Entry{*amd, *arm}}}}},
		{"foreign entry without its loader", crash{sig: sigNoSuchFile, arch: "arm64", e: amd, runs: false}},
		{"no such file, nothing more known", crash{sig: sigNoSuchFile, arch: "amd64", runs: true}},
		{"silent 32-bit arm entry on arm64", crash{sig: sigNone, arch: "arm64", e: arm, runs: true, exit: 255}},
		{"silent GOAMD64 above v1", crash{sig: sigNone, arch: "amd64", e: amd, runs: true, exit: 1,
			ep: &image.Entrypoint{Verdict: image.VerdictOK, GoSettings: map[string]string{"GOAMD64": "v3"}}}},
		{"exit code not an exec failure", crash{sig: sigNone, arch: "amd64", e: amd, runs: false, exit: 137}},
		{"application failure", crash{sig: sigNone, haveLog: true, e: amd, runs: false, exit: 1}},
	} {
		k := tc.k
		if k.e != nil && k.pl == nil {
			k.pl = &pulled{entry: k.e} // readPull's invariant: an entry comes from a pull
		}
		if k.containerCase == nil {
			k.containerCase = &containerCase{pod: pod}
		}
		got := "(none)"
		if r := k.rule(); r != nil {
			got = r.name
		}
		if got != tc.want {
			t.Errorf("rule %q, want %q", got, tc.want)
		}
	}
}

func TestCrashRulesNamed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range crashRules {
		if r.name == "" || seen[r.name] {
			t.Errorf("rule %q: every rule needs its own name", r.name)
		}
		seen[r.name] = true
		if (r.code == "") != (r.finding == nil) {
			t.Errorf("rule %q: a rule with a code has a finding, and only it", r.name)
		}
	}
}
