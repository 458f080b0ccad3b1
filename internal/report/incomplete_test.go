package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/archfit/archfit/internal/diagnose"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/object"
	"github.com/archfit/archfit/internal/remedy"
)

func TestUnread(t *testing.T) {
	fail := func(ref, reason, tried string) *image.Report {
		return &image.Report{Reference: ref, Error: &image.Failure{Reason: reason, Detail: "x", Tried: tried}}
	}
	ok := &image.Report{Reference: "example.com/ok:1"}
	if inc := Unread([]*image.Report{ok}); inc != nil {
		t.Errorf("every image read: %+v", inc)
	}
	inc := Unread([]*image.Report{
		ok,
		fail("quay.io/b:1", "unreachable", "registry quay.io"),
		fail("quay.io/a:1", "unreachable", "registry quay.io"),
		// The same reference twice (two containers' requests) is one image.
		fail("quay.io/a:1", "unreachable", "registry quay.io"),
		fail("ghcr.io/p:1", "auth", "registry ghcr.io"),
		fail("example.com/l:1", "not-found", "OCI layout"),
	})
	if inc == nil || inc.UnreadImages != 4 || inc.Images != 5 {
		t.Fatalf("%+v", inc)
	}
	if inc.Headline() != "4 of 5 image(s) could not be read" {
		t.Errorf("headline %q", inc.Headline())
	}
	var got []string
	for _, g := range inc.ByReason {
		got = append(got, g.Reason+":"+strings.Join(g.Images, ","))
		if g.Advice == "" {
			t.Errorf("%s: no advice", g.Reason)
		}
	}
	// Most images first, then by reason.
	want := []string{"unreachable:quay.io/a:1,quay.io/b:1", "auth:ghcr.io/p:1", "not-found:example.com/l:1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if !inc.ByReason[2].Layout || !strings.Contains(inc.ByReason[2].Advice, "OCI layout") {
		t.Errorf("an image missing from the layout: %+v", inc.ByReason[2])
	}
	if !strings.Contains(inc.ByReason[1].Advice, "--registry-config") || !strings.Contains(inc.ByReason[0].Advice, "--oci-layout") {
		t.Errorf("advice: %+v", inc.ByReason)
	}
	if inc.Reason("ghcr.io/p:1") != "auth" || inc.Reason("example.com/ok:1") != "" {
		t.Error("Reason")
	}

	var b bytes.Buffer
	if err := Text(&b, &Document{Kind: "Inspection", Images: []*image.Report{ok, fail("quay.io/a:1", "auth", "registry quay.io")}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "INCOMPLETE: 1 of 2 image(s) could not be read") {
		t.Errorf("text:\n%s", b.String())
	}
}

// TestNodeWithoutPlatform: a node whose platform is not known (a dump
// without its Node object) is printed without empty parentheses.
func TestNodeWithoutPlatform(t *testing.T) {
	f := finding.New(finding.WrongArchBinary, "ran an amd64 binary")
	f.Workload = &object.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"}
	f.Container, f.Node = "app", "minikube"
	d := &Document{Kind: "Diagnosis", Findings: []finding.Finding{f}}
	for _, format := range []string{"text", "markdown"} {
		fm, _ := For(format)
		var b bytes.Buffer
		if err := fm(&b, d); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "()") || !strings.Contains(b.String(), "minikube") {
			t.Errorf("%s:\n%s", format, b.String())
		}
	}
	var b bytes.Buffer
	d.Text = DiagnosisText
	if err := Text(&b, d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "()") {
		t.Errorf("diagnosis text:\n%s", b.String())
	}
}

// TestNoPatchBelowWithoutPatch: diagnose's next step points at the patch
// only when one is printed below it.
func TestNoPatchBelowWithoutPatch(t *testing.T) {
	ref := object.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"}
	f := finding.New(finding.WrongArchBinary, "ran an amd64 binary")
	f.Workload = &ref
	for _, tc := range []struct {
		name string
		rem  *remedy.Remedy
		want bool
	}{
		{"no remedy", nil, false},
		{"patch error", &remedy.Remedy{Workload: ref, AllowedArchitectures: []string{"amd64"}, PatchError: "Deployment/api itself is not in the input"}, false},
		{"conflict", &remedy.Remedy{Workload: ref, Conflict: &remedy.Conflict{Message: "pinned to arm64"}}, false},
		{"patch", &remedy.Remedy{Workload: ref, AllowedArchitectures: []string{"amd64"}, Patch: &remedy.Interim{Kubectl: "kubectl patch deployment.apps api -n shop ..."}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Document{Kind: "Diagnosis", Findings: []finding.Finding{f}, Extra: map[string]any{"notArch": []diagnose.NotArch{}}}
			if tc.rem != nil {
				d.Remedies = []*remedy.Remedy{tc.rem}
			}
			var b bytes.Buffer
			if err := DiagnosisText(&b, d); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(b.String(), "(patch below)"); got != tc.want {
				t.Errorf("(patch below) shown: %v, want %v\n%s", got, tc.want, b.String())
			}
			if tc.want && !strings.Contains(b.String(), "kubectl patch") {
				t.Errorf("no patch:\n%s", b.String())
			}
		})
	}
}
