package report

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/diagnose"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/verify"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// exampleDocument diagnoses examples/cluster against examples/images, as
// `archfit diagnose -f examples/cluster --oci-layout examples/images` does.
func exampleDocument(t *testing.T) *Document {
	t.Helper()
	ctx := context.Background()
	snap, res := example(t, "../../examples/cluster")
	reqs := diagnose.Requests(snap)
	images := diagnose.NewImages(reqs, res.InspectAll(ctx, reqs))
	fs := diagnose.Diagnose(snap, images)
	doc := &Document{Kind: "Diagnosis", Findings: fs, Images: images.All(), Text: DiagnosisText,
		Extra: map[string]any{"notArch": diagnose.NotArchFailures(snap, fs)}, Remedies: diagnose.Remedies(snap, images, fs)}
	return doc
}

// example loads the dump at dir and a resolver over examples/images that
// verifies entrypoints.
func example(t *testing.T, dir string) (*cluster.Snapshot, *image.Resolver) {
	t.Helper()
	snap, docErrs, err := cluster.LoadFiles(context.Background(), []string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range docErrs {
		t.Error(e)
	}
	res, err := image.NewResolver(image.WithOCILayout("../../examples/images"), image.WithVerifier(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return snap, res
}

// verifier reads the entrypoint as the pod would run it (its command and
// args override the image's).
func verifier(ctx context.Context, img v1.Image, wantArch string, o *image.Override) (*image.Entrypoint, error) {
	opts := []verify.Option{verify.WithArch(wantArch)}
	if o != nil {
		opts = append(opts, verify.WithCommand(o.Command, o.Args))
	}
	return verify.Entrypoint(ctx, img, opts...)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", p, diff)
	}
}

// TestExample pins the output of the README's first command. Review the
// golden files when they change: they are what users see.
func TestExample(t *testing.T) {
	doc := exampleDocument(t)
	for _, tc := range []struct{ format, file string }{
		{"text", "example.txt.golden"},
		{"markdown", "example.md.golden"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			f, err := For(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := f(&b, doc); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
	t.Run("json", func(t *testing.T) {
		// Findings, remedies and the unread images only: image stats (cache hits) depend on
		// scheduling.
		b, err := json.MarshalIndent(map[string]any{"findings": doc.Findings, "remedies": doc.Remedies, "incomplete": doc.Incomplete}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "example.json.golden", append(b, '\n'))
	})
	t.Run("every code", func(t *testing.T) {
		seen := map[string]bool{}
		for _, f := range doc.Findings {
			seen[f.Code] = true
		}
		for _, code := range []string{"wrong-arch-binary", "missing-platform", "mislabeled-platform", "cpu-level-unsupported", "not-an-executable",
			"arch-constraint-conflict", "single-arch-at-risk", "pull-failure-not-arch", "image-uninspectable"} {
			if !seen[code] {
				t.Errorf("the example shows no %s finding", code)
			}
		}
	})
}
