package conformance

import (
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/testenv/twin"
)

// TestTwinMatchesTruth checks the test cluster's node twins, which play
// container runtime for the cluster tests, against what real runtimes did:
// the same entry, or the same gRPC code and message a kubelet would show.
func TestTwinMatchesTruth(t *testing.T) {
	truth, err := ReadTruth(TruthFile)
	if err != nil {
		t.Fatal(err)
	}
	reg := ServeCases(t)
	n := 0
	for _, r := range truth.Rows {
		if !strings.HasPrefix(r.Runtime, "containerd://") {
			continue
		}
		n++
		spec := twin.NodeSpec{Name: "n", Arch: r.Arch, Runtime: r.Runtime, LocalPull: r.Path == "local"}
		m, err := twin.Pull(t.Context(), spec, reg.Ref(r.Case))
		got := Row{Entry: m}
		if err != nil {
			msg := err.Error()
			rest, ok := strings.CutPrefix(msg, "rpc error: code = ")
			code, desc, ok2 := strings.Cut(rest, " desc = ")
			if !ok || !ok2 {
				t.Errorf("%s: the twin's error is not a gRPC status: %s", r.Key(), msg)
				continue
			}
			got = Row{Code: code, Error: reg.Redact(desc)}
		}
		if got.Entry != r.Entry || got.Code != r.Code || got.Error != r.Error {
			t.Errorf("%s:\n  runtime: %s\n  twin:    %s", r.Key(), r.Outcome(), got.Outcome())
		}
	}
	if n == 0 {
		t.Fatal("no containerd row in the truth table")
	}
}
