package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInspectExample(t *testing.T) {
	layout := "../../examples/images"
	out, _, code := runArchfit(t, "", "inspect", "--oci-layout", layout, "--verify", "--no-cache")
	if code != ExitFindings {
		t.Errorf("exit %d, want %d (the example holds a mislabeled image)", code, ExitFindings)
	}
	for _, want := range []string{
		"MISLABELED: entry claims arm64, entrypoint /bin/exporter is amd64",
		"(effectively single-arch)",
		`no image found in image index for architecture "arm64", variant "v8", OS "linux"`,
		"PROBLEM [not-an-executable]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	_, _, code = runArchfit(t, "", "inspect", "--oci-layout", layout, "--verify", "--no-cache", "--fail-on", "never")
	if code != ExitOK {
		t.Errorf("--fail-on never: exit %d", code)
	}
	out, _, _ = runArchfit(t, "", "inspect", "--oci-layout", layout, "--no-cache", "-o", "json", "example.com/shop/api:1.0")
	var doc struct {
		Images []struct {
			Architectures []string `json:"architectures"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(doc.Images) != 1 || strings.Join(doc.Images[0].Architectures, ",") != "amd64,arm64" {
		t.Errorf("json images: %+v", doc.Images)
	}
}

func TestInspectUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"inspect"},
		{"inspect", "x:1", "-o", "xml"},
		{"inspect", "x:1", "--fail-on", "sometimes"},
		{"inspect", "x:1", "--concurrency", "0"},
		{"inspect", "--oci-layout", "/nonexistent"},
	} {
		_, _, code := runArchfit(t, "", args...)
		if code != ExitFailure {
			t.Errorf("%v: exit %d, want %d", args, code, ExitFailure)
		}
	}
}

// TestInspectUnreadImageIsIncomplete: an image that cannot be read is no
// finding at or above --fail-on, but the answer is incomplete: exit 4,
// said at the top, unless --allow-unverified or --fail-on never.
func TestInspectUnreadImageIsIncomplete(t *testing.T) {
	args := []string{"inspect", "--oci-layout", "../../examples/images", "--no-cache", "example.com/nope:1", "example.com/shop/api:1.0"}
	out, errOut, code := runArchfit(t, "", args...)
	if code != ExitIncomplete {
		t.Errorf("exit %d, want %d", code, ExitIncomplete)
	}
	if !strings.HasPrefix(out, "INCOMPLETE: 1 of 2 image(s) could not be read") || !strings.Contains(out, "not-found in the OCI layout (1): example.com/nope:1") {
		t.Errorf("no header naming the unread image:\n%s", out)
	}
	if !strings.Contains(out, "UNINSPECTABLE (not-found)") || !strings.Contains(out, "example.com/shop/api:1.0") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 2 image(s) could not be read") {
		t.Errorf("stderr does not say why the exit code: %s", errOut)
	}
	for _, tc := range []struct {
		flags []string
		want  int
	}{
		{[]string{"--allow-unverified"}, ExitOK},
		{[]string{"--fail-on", "never"}, ExitOK},
		// An unread image is not a finding about anything: 4, not 3.
		{[]string{"--fail-on", "warning"}, ExitIncomplete},
		{[]string{"--fail-on", "warning", "--allow-unverified"}, ExitOK},
	} {
		if _, _, code := runArchfit(t, "", append(args, tc.flags...)...); code != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.flags, code, tc.want)
		}
	}
	// Every image read: no header, no incomplete.
	out, _, code = runArchfit(t, "", "inspect", "--oci-layout", "../../examples/images", "--no-cache", "-o", "json", "example.com/shop/api:1.0")
	if code != ExitOK || strings.Contains(out, `"incomplete"`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// TestInspectNodes: --node predicts for exactly the nodes named, with the
// runtime string as given, and the transfer path of containerd 2.1 fails
// on a fallback entry it never fetched while its local path pulls it.
func TestInspectNodes(t *testing.T) {
	out, errOut, code := runArchfit(t, "", "inspect", "--oci-layout", "../../examples/images", "--no-cache", "-o", "json",
		"--node", "linux/arm64=containerd://2.1.9", "--node", "linux/amd64=cri-o://1.34.1", "example.com/shop/legacy:3")
	if code != ExitOK && code != ExitFindings {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Images []struct {
			Pulls []struct {
				Node, Runtime, NodeRuntime, Platform, Error string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Images) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	var got []string
	for _, p := range doc.Images[0].Pulls {
		what := p.Platform
		if p.Error != "" {
			if !strings.HasPrefix(p.Error, "get image config descriptor: content digest sha256:") {
				t.Errorf("transfer-path message %q, want the runtime's own (content digest ... not found)", p.Error)
			}
			what = "error"
		}
		got = append(got, p.Node+" "+p.NodeRuntime+" "+p.Runtime+" "+what)
	}
	want := []string{
		"linux/arm64/v8 containerd://2.1.9 containerd-transfer@pre-rc.5 error",
		"linux/arm64/v8 containerd://2.1.9 containerd-local@pre-rc.5 linux/arm/v7",
		"linux/amd64 cri-o://1.34.1 cri-o linux/amd64",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pulls (-want +got):\n%s", diff)
	}
	if _, errOut, code := runArchfit(t, "", "inspect", "--oci-layout", "../../examples/images", "--node", "linux/arm64"); code != ExitFailure || !strings.Contains(errOut, "PLATFORM=RUNTIME://VERSION") {
		t.Errorf("a --node without a runtime: exit %d, %s", code, errOut)
	}
}
