package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/testimage"
	"github.com/archfit/archfit/internal/verify"
)

// A case file (testdata/cases/NAME.yaml) is one multi-document YAML file:
// the first document (kind: Case) declares the images the case needs, the
// container logs and the expected findings; the others are the cluster
// objects as kubectl prints them. testdata/nodes.yaml is loaded with every
// case.
type caseFile struct {
	Description string            `json:"description"`
	Images      []imageSpec       `json:"images"`
	Logs        map[string]string `json:"logs"` // NS/POD/CONTAINER[.previous] -> text
	Want        []want            `json:"want"`
}

// imageSpec declares one image: a single manifest (Index "") or an index
// ("oci" or "docker") of entries.
type imageSpec struct {
	Ref     string      `json:"ref"`
	Index   string      `json:"index"`
	Entries []entrySpec `json:"entries"`
}

// entrySpec is one image manifest. Platform is what the index entry
// declares ("none": no platform field), Config what the config blob says
// (default: Platform), Binary what /app really is: an architecture (static
// ELF), "script" (no #!), "crlf" (#!/bin/sh\r), "dynamic" (an ELF of the
// config's arch whose loader is absent), "missing" (no /app). Attestation
// adds BuildKit's attestation manifest for the previous entry. OSFeatures is
// the entry's platform os.features.
type entrySpec struct {
	Platform    string   `json:"platform"`
	OSFeatures  []string `json:"osFeatures"`
	Config      string   `json:"config"`
	Binary      string   `json:"binary"`
	Attestation bool     `json:"attestation"`
}

// want is the part of a finding a case pins down.
type want struct {
	Code          string   `json:"code"`
	Workload      string   `json:"workload"`
	Container     string   `json:"container,omitempty"`
	ContainerType string   `json:"containerType,omitempty"`
	Confidence    string   `json:"confidence,omitempty"`
	Missing       []string `json:"missing,omitempty"`
}

const shPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func archOf(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) < 2 {
		return "amd64"
	}
	if parts[1] == "arm" {
		return "arm"
	}
	return parts[1]
}

func buildImage(t *testing.T, e entrySpec) v1.Image {
	t.Helper()
	cfg := e.Config
	if cfg == "" {
		cfg = e.Platform
	}
	if cfg == "" || cfg == "none" {
		t.Fatalf("entry %+v: need platform or config", e)
	}
	var files []testimage.File
	sh := testimage.File{Path: "/bin/sh", Data: testimage.ELF(archOf(cfg))}
	switch e.Binary {
	case "script":
		files = []testimage.File{{Path: "/bin", Dir: true}, sh, {Path: "/app", Data: []byte("set -e\necho hello\n")}}
	case "crlf":
		files = []testimage.File{{Path: "/bin", Dir: true}, sh, {Path: "/app", Data: []byte("#!/bin/sh\r\necho hello\r\n")}}
	case "dynamic":
		files = []testimage.File{{Path: "/app", Data: testimage.DynamicELF(archOf(cfg), "/lib/ld-musl-"+archOf(cfg)+".so.1")}}
	case "missing":
		files = []testimage.File{{Path: "/bin", Dir: true}, sh}
	default:
		files = []testimage.File{{Path: "/app", Data: testimage.ELF(e.Binary)}}
	}
	return testimage.Must(testimage.Spec{Platform: cfg, Layers: [][]testimage.File{files}, Entrypoint: []string{"/app"}, Env: []string{shPath}}.Build())
}

// writeLayout builds the case's images into an OCI layout.
func writeLayout(t *testing.T, dir string, specs []imageSpec) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		ann := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": s.Ref})
		if s.Index == "" {
			if err := p.AppendImage(buildImage(t, s.Entries[0]), ann); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var es []testimage.Entry
		var prev v1.Image
		for _, e := range s.Entries {
			if e.Attestation {
				es = append(es, testimage.Attestation(prev))
				continue
			}
			img := buildImage(t, e)
			prev = img
			ent := testimage.Entry{Image: img}
			if e.Platform != "none" {
				ent.Platform = testimage.ParsePlatform(e.Platform)
				ent.Platform.OSFeatures = e.OSFeatures
			}
			es = append(es, ent)
		}
		idx := testimage.Index(es...)
		if s.Index == "docker" {
			idx = testimage.DockerList(es...)
		}
		if err := p.AppendIndex(idx, ann); err != nil {
			t.Fatal(err)
		}
	}
}

func verifier(ctx context.Context, img v1.Image, wantArch string, o *image.Override) (*image.Entrypoint, error) {
	opts := []verify.Option{verify.WithArch(wantArch)}
	if o != nil {
		opts = append(opts, verify.WithCommand(o.Command, o.Args))
	}
	return verify.Entrypoint(ctx, img, opts...)
}

// runCase loads a case and diagnoses it as `archfit diagnose -f` would.
func runCase(t *testing.T, path string) (caseFile, *cluster.Snapshot, *Images, []finding.Finding) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := bytes.Cut(raw, []byte("\n---\n"))
	var cf caseFile
	if err := yaml.UnmarshalStrict(head, &struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		*caseFile
	}{caseFile: &cf}); err != nil {
		t.Fatalf("%s: case header: %v", path, err)
	}
	tmp := t.TempDir()
	writeLayout(t, filepath.Join(tmp, "images"), cf.Images)
	logDir := filepath.Join(tmp, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, text := range cf.Logs {
		p := filepath.Join(logDir, filepath.FromSlash(k)+".log")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	snap, docErrs, err := cluster.LoadFiles(ctx, []string{path, "testdata/nodes.yaml", logDir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range docErrs {
		t.Errorf("%s: %v", path, e)
	}
	res, err := image.NewResolver(image.WithOCILayout(filepath.Join(tmp, "images")), image.WithVerifier(verifier))
	if err != nil {
		t.Fatal(err)
	}
	reqs := Requests(snap)
	images := NewImages(reqs, res.InspectAll(ctx, reqs))
	return cf, snap, images, Diagnose(snap, images)
}

func project(fs []finding.Finding) []want {
	out := []want{}
	for _, f := range fs {
		w := want{Code: f.Code, Container: f.Container, ContainerType: f.ContainerType, Confidence: string(f.Confidence), Missing: f.Missing}
		if f.Workload != nil {
			w.Workload = f.Workload.String()
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		return fmt.Sprint(out[i]) < fmt.Sprint(out[j])
	})
	return out
}

func TestCases(t *testing.T) {
	paths, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cf, _, _, got := runCase(t, p)
			exp := cf.Want
			if exp == nil {
				exp = []want{}
			}
			for i := range exp {
				switch exp[i].Confidence {
				case "":
					exp[i].Confidence = string(finding.High)
				case "none":
					exp[i].Confidence = ""
				}
			}
			sort.Slice(exp, func(i, j int) bool { return fmt.Sprint(exp[i]) < fmt.Sprint(exp[j]) })
			if diff := cmp.Diff(exp, project(got)); diff != "" {
				t.Errorf("%s\nfindings (-want +got):\n%s", cf.Description, diff)
				for _, f := range got {
					t.Logf("%s %s: %s\n  evidence: %q", f.Code, f.Container, f.Message, f.Evidence)
				}
			}
			// Evidence must be the strings as seen: every finding has some.
			for _, f := range got {
				if len(f.Evidence) == 0 {
					t.Errorf("%s %s: no evidence", f.Code, f.Container)
				}
			}
		})
	}
}
