package cli

import (
	"encoding/json"
	"strings"
	"testing"
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

func TestInspectUninspectableIsAWarning(t *testing.T) {
	out, _, code := runArchfit(t, "", "inspect", "--oci-layout", "../../examples/images", "--no-cache", "example.com/nope:1", "example.com/shop/api:1.0")
	if code != ExitOK {
		t.Errorf("exit %d: an uninspectable image is a warning, below the default --fail-on error", code)
	}
	if !strings.Contains(out, "UNINSPECTABLE (not-found)") || !strings.Contains(out, "example.com/shop/api:1.0") {
		t.Errorf("output:\n%s", out)
	}
}
