package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/archfit/archfit/internal/cluster"
)

func annotated(v string) *cluster.Workload {
	u := &unstructured.Unstructured{}
	u.SetAnnotations(map[string]string{IgnoreAnnotation: v})
	return &cluster.Workload{Ref: cluster.Ref{Kind: "Deployment", Namespace: "shop", Name: "api"}, Original: u}
}

// Anyone who can edit a manifest can write the annotation: it must name a
// known code and say why; "*" (every finding) is refused.
func TestAnnotationWaivers(t *testing.T) {
	tests := []struct {
		value string
		codes []string
		errs  []string
	}{
		{"single-arch-at-risk: replaced by v4", []string{"single-arch-at-risk"}, nil},
		{"single-arch-at-risk: a; not-an-executable: b", []string{"single-arch-at-risk", "not-an-executable"}, nil},
		{"*: silence the gate", nil, []string{`"*" waives every finding and is not accepted: name the codes`}},
		{"*", nil, []string{`"*" waives every finding`}},
		{"no-such-code: because", nil, []string{`unknown code "no-such-code"`}},
		{"single-arch-at-risk", nil, []string{"single-arch-at-risk has no reason"}},
		{"single-arch-at-risk:   ", nil, []string{"single-arch-at-risk has no reason"}},
		{"*: x\nwrong-arch-binary: known, tracked in OPS-1", []string{"wrong-arch-binary"}, []string{`"*" waives every finding`}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			ws, errs := AnnotationWaivers(annotated(tt.value))
			var codes []string
			for _, w := range ws {
				codes = append(codes, w.Code)
			}
			if diff := cmp.Diff(tt.codes, codes); diff != "" {
				t.Errorf("codes (-want +got):\n%s", diff)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("errors %v, want %d", errs, len(tt.errs))
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.errs[i]) || !strings.Contains(e.Error(), "shop/Deployment/api") {
					t.Errorf("error %q does not say %q and name the workload", e, tt.errs[i])
				}
			}
		})
	}
}

func TestWildcardAnnotationWaivesNothing(t *testing.T) {
	snap := load(t, "waiver-annotation.yaml")
	snap.Workloads[0].Original.SetAnnotations(map[string]string{IgnoreAnnotation: "*: silence"})
	r := Run(snap, exampleReports(t), Options{})
	if diff := cmp.Diff([]string{"legacy-agent/agent single-arch-at-risk"}, summarize(r)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `"*"`) {
		t.Errorf("warnings %q, want the refused wildcard", r.Warnings)
	}
}

// --no-annotation-waivers: only the platform team's config waives.
func TestNoAnnotationWaivers(t *testing.T) {
	r := Run(load(t, "waiver-annotation.yaml"), exampleReports(t), Options{NoAnnotationWaivers: true})
	if diff := cmp.Diff([]string{"legacy-agent/agent single-arch-at-risk"}, summarize(r)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "not accepted") {
		t.Errorf("warnings %q, want the ignored annotation named", r.Warnings)
	}
	cfg := []Waiver{{Code: "single-arch-at-risk", Namespace: "monitoring", Reason: "platform: v4 is coming"}}
	r = Run(load(t, "waiver-annotation.yaml"), exampleReports(t), Options{NoAnnotationWaivers: true, Waivers: cfg})
	if diff := cmp.Diff([]string{"legacy-agent/agent single-arch-at-risk waived: platform: v4 is coming"}, summarize(r)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestLoadConfigRefusesWildcard(t *testing.T) {
	p := filepath.Join(t.TempDir(), "archfit.yaml")
	if err := os.WriteFile(p, []byte("waivers:\n- code: \"*\"\n  reason: everything\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p, false); err == nil || !strings.Contains(err.Error(), `"*"`) {
		t.Errorf("got %v, want the wildcard refused", err)
	}
}
