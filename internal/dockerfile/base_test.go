package dockerfile

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/image"
	ti "github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

// inspectAll writes imgs to an OCI layout and reads them back with the
// resolver inspect uses (entrypoint verification on), so the reports are
// what --check-base judges.
func inspectAll(t *testing.T, imgs map[string]any) map[string]*image.Report {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for ref, obj := range imgs {
		ann := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})
		switch o := obj.(type) {
		case v1.ImageIndex:
			err = p.AppendIndex(o, ann)
		case v1.Image:
			err = p.AppendImage(o, ann)
		}
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	res, err := image.NewResolver(image.WithOCILayout(dir), image.WithVerifier(verify.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]image.Request, len(refs))
	for i, r := range refs {
		reqs[i] = image.Request{Ref: r, Verify: true}
	}
	out := map[string]*image.Report{}
	for i, rep := range res.InspectAll(context.Background(), reqs) {
		out[refs[i]] = rep
	}
	return out
}

func TestCheckBases(t *testing.T) {
	targets := []specs.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	amd := ti.App("linux/amd64", "amd64")
	reports := inspectAll(t, map[string]any{
		"example.com/multi:1": ti.Index(ti.For(amd, "linux/amd64"), ti.For(ti.App("linux/arm64/v8", "arm64"), "linux/arm64/v8"), ti.Attestation(amd)),
		"example.com/amd:1":   amd,
		// the arm64 entry holds an amd64 binary.
		"example.com/mislabeled:1": ti.Index(ti.For(amd, "linux/amd64"), ti.For(ti.App("linux/arm64", "amd64"), "linux/arm64")),
		// no arm64 entry, but 32-bit arm, which platforms.Only(linux/arm64) accepts.
		"example.com/arm32:1":  ti.Index(ti.For(amd, "linux/amd64"), ti.For(ti.App("linux/arm/v7", "arm"), "linux/arm/v7")),
		"example.com/amdidx:1": ti.Index(ti.For(amd, "linux/amd64")),
	})
	reports["example.com/gone:1"] = &image.Report{Reference: "example.com/gone:1", Error: &image.Failure{Reason: "not-found", Detail: "MANIFEST_UNKNOWN"}}

	for _, tc := range []struct {
		name    string
		base    BaseImage
		targets []specs.Platform
		code    string // "" for no finding
		missing string
		why     string // in the message
	}{
		{"multi-arch target stage", BaseImage{Ref: "example.com/multi:1"}, targets, "", "", ""},
		{"arm64/v8 answers for arm64", BaseImage{Ref: "example.com/multi:1", Platform: "$TARGETPLATFORM"}, targets, "", "", ""},
		{"single amd64 manifest, target stage", BaseImage{Ref: "example.com/amd:1", Line: 3}, targets, "base-image-missing-platform", "linux/arm64", "BuildKit uses it for the linux/arm64 build too"},
		{"amd64-only index, target stage", BaseImage{Ref: "example.com/amdidx:1", Line: 3}, targets, "base-image-missing-platform", "linux/arm64", "no match for platform in manifest"},
		{"amd64-only build stage", BaseImage{Ref: "example.com/amd:1", Platform: "$BUILDPLATFORM"}, targets, "", "", ""},
		{"amd64-only, braces", BaseImage{Ref: "example.com/amd:1", Platform: "${BUILDPLATFORM}"}, targets, "", "", ""},
		{"literal platform it has", BaseImage{Ref: "example.com/amdidx:1", Platform: "linux/amd64"}, targets, "", "", ""},
		{"literal platform it lacks", BaseImage{Ref: "example.com/amdidx:1", Platform: "linux/arm64"}, targets, "base-image-missing-platform", "linux/arm64", "no match"},
		{"mislabeled entry", BaseImage{Ref: "example.com/mislabeled:1"}, targets, "base-image-missing-platform", "linux/arm64", "by its arm64 label"},
		{"32-bit arm fallback", BaseImage{Ref: "example.com/arm32:1"}, targets, "base-image-missing-platform", "linux/arm64", "falls back to linux/arm/v7"},
		{"unreadable", BaseImage{Ref: "example.com/gone:1"}, targets, "image-uninspectable", "", "MANIFEST_UNKNOWN"},
		{"unresolved ARG", BaseImage{Ref: "${BASE}", Unresolved: true}, targets, "image-uninspectable", "", "--build-arg"},
		{"computed platform", BaseImage{Ref: "example.com/amd:1", Platform: "$MYPLATFORM"}, targets, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checks, fs := CheckBases([]BaseImage{tc.base}, reports, tc.targets)
			if len(checks) != 1 {
				t.Fatalf("checks: %+v", checks)
			}
			if tc.code == "" {
				if len(fs) != 0 {
					t.Fatalf("findings: %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Code != tc.code || fs[0].Line != tc.base.Line {
				t.Fatalf("findings %+v, want one %s on line %d", fs, tc.code, tc.base.Line)
			}
			if got := strings.Join(checks[0].Missing, ","); got != tc.missing {
				t.Errorf("missing %q, want %q", got, tc.missing)
			}
			if !strings.Contains(fs[0].Message, tc.why) {
				t.Errorf("message %q lacks %q", fs[0].Message, tc.why)
			}
		})
	}
}

func TestBuildArgsOverrideGlobalDefaults(t *testing.T) {
	src := "ARG BASE=alpine:3.20\nARG UNUSED\nFROM ${BASE}\n"
	a, err := Analyze("Dockerfile", strings.NewReader(src), WithBuildArgs(map[string]string{"BASE": "debian:12", "NOTDECLARED": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.BaseImages) != 1 || a.BaseImages[0].Ref != "debian:12" || a.BaseImages[0].Unresolved {
		t.Errorf("base images %+v, want debian:12 from --build-arg", a.BaseImages)
	}
	a, err = Analyze("Dockerfile", strings.NewReader("ARG BASE\nFROM ${BASE}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.BaseImages) != 1 || !a.BaseImages[0].Unresolved {
		t.Errorf("ARG without default and no --build-arg: %+v, want unresolved", a.BaseImages)
	}
}
