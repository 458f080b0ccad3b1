package audit

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/verify"
)

var (
	layoutOnce    sync.Once
	layoutReports *image.Set
)

// exampleReports inspects (and verifies) every image of the shipped OCI
// layout, examples/images, once per test binary.
func exampleReports(t *testing.T) *image.Set {
	t.Helper()
	layoutOnce.Do(func() {
		res, err := image.NewResolver(image.WithOCILayout("../../examples/images"),
			image.WithVerifier(func(ctx context.Context, img v1.Image, arch string, o *image.Override) (*image.Entrypoint, error) {
				return verify.Entrypoint(ctx, img, verify.WithArch(arch))
			}))
		if err != nil {
			t.Fatal(err)
		}
		refs := res.LayoutReferences()
		reqs := make([]image.Request, len(refs))
		for i, r := range refs {
			reqs[i] = image.Request{Ref: r, Verify: true}
		}
		layoutReports = image.NewSet(reqs, res.InspectAll(context.Background(), reqs))
	})
	if len(layoutReports.All()) == 0 {
		t.Fatal("no images in examples/images")
	}
	return layoutReports
}

func load(t *testing.T, file string) *cluster.Snapshot {
	t.Helper()
	snap, docErrs, err := cluster.LoadFiles(context.Background(), []string{filepath.Join("testdata", file)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range docErrs {
		t.Errorf("%s: %v", file, e)
	}
	return snap
}

// got is one finding in a comparable form: workload/container code [waived].
func summarize(r *Result) []string {
	var out []string
	for _, f := range r.Findings {
		s := f.Code
		if f.Workload != nil {
			s = f.Workload.Name + "/" + f.Container + " " + f.Code
		}
		if f.Waived != "" {
			s += " waived: " + f.Waived
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestRun(t *testing.T) {
	reps := exampleReports(t)
	tests := []struct {
		file     string
		waivers  []Waiver
		findings []string
		allowed  map[string]string // workload -> allowed archs
		armReady map[string]bool
		proven   map[string]bool
		// cells: "workload/container@pool" -> verdict (with "-" suffix when not admitted)
		cells map[string]string
	}{
		{
			file:     "init-blocks-arm64.yaml",
			findings: []string{"api/wait-for-db single-arch-at-risk"},
			allowed:  map[string]string{"api": "amd64"},
			armReady: map[string]bool{"api": false},
			cells: map[string]string{
				"api/wait-for-db@assumed (linux/arm64/v8)": "fails",
				"api/api@assumed (linux/arm64/v8)":         "runs",
				"api/wait-for-db@assumed (linux/amd64)":    "runs",
			},
		},
		{
			file:     "native-sidecar.yaml",
			findings: []string{"frontend/metrics mislabeled-platform", "frontend/metrics single-arch-at-risk"},
			allowed:  map[string]string{"frontend": "amd64"},
			armReady: map[string]bool{"frontend": false},
			cells:    map[string]string{"frontend/metrics@assumed (linux/arm64/v8)": "fails"},
		},
		{
			file:     "existing-pin.yaml",
			findings: nil,
			allowed:  map[string]string{"cache": "amd64"},
			armReady: map[string]bool{"cache": false},
			cells:    map[string]string{"cache/cache@assumed (linux/arm64/v8)": "fails-", "cache/cache@assumed (linux/amd64)": "runs"},
		},
		{
			file:     "conflicting-pin.yaml",
			findings: []string{"reports/ arch-constraint-conflict", "reports/reports single-arch-at-risk"},
			allowed:  map[string]string{"reports": "amd64"},
			armReady: map[string]bool{"reports": false},
			cells:    map[string]string{"reports/reports@assumed (linux/amd64)": "runs-"},
		},
		{
			file:     "multi-arch.yaml",
			findings: nil,
			allowed:  map[string]string{"catalog": "amd64,arm64"},
			armReady: map[string]bool{"catalog": true},
			proven:   map[string]bool{"catalog": true},
		},
		{
			file:     "waiver-annotation.yaml",
			findings: []string{"legacy-agent/agent single-arch-at-risk waived: replaced by v4 (OPS-1234) (annotation archfit.io/ignore)"},
			allowed:  map[string]string{"legacy-agent": "amd64"},
		},
		{
			file:     "waiver-config.yaml",
			waivers:  []Waiver{{Code: "not-an-executable", Namespace: "batch", Image: "example.com/tools/*", Reason: "run through /bin/sh"}},
			findings: []string{"migrate/migrate not-an-executable waived: run through /bin/sh"},
			allowed:  map[string]string{"migrate": "amd64,arm64"},
			proven:   map[string]bool{"migrate": false},
		},
		{
			file:     "waiver-config.yaml",
			waivers:  []Waiver{{Code: "not-an-executable", Namespace: "other", Reason: "another namespace"}},
			findings: []string{"migrate/migrate not-an-executable"},
		},
		{
			file:     "other-selector.yaml",
			findings: []string{"batch-api/wait-for-db single-arch-at-risk"},
			allowed:  map[string]string{"batch-api": "amd64"},
			cells:    map[string]string{"batch-api/wait-for-db@assumed (linux/arm64/v8)": "fails"},
		},
		{
			file:     "injected-sidecar.yaml",
			findings: []string{"search/mesh-proxy single-arch-at-risk"},
			allowed:  map[string]string{"search": "amd64"},
			armReady: map[string]bool{"search": false},
			cells:    map[string]string{"search/mesh-proxy@assumed (linux/arm64/v8)": "fails"},
		},
		{
			file:     "tainted-arm-pool.yaml",
			findings: []string{"tolerant/worker single-arch-at-risk"},
			allowed:  map[string]string{"worker": "amd64"},
			cells: map[string]string{
				"worker/worker@graviton (linux/arm64/v8)":   "fails-",
				"tolerant/worker@graviton (linux/arm64/v8)": "fails",
				"worker/worker@general (linux/amd64)":       "runs",
			},
		},
	}
	for _, tc := range tests {
		name := strings.TrimSuffix(tc.file, ".yaml")
		if len(tc.waivers) > 0 {
			name += "/" + tc.waivers[0].Reason
		}
		t.Run(name, func(t *testing.T) {
			r := Run(load(t, tc.file), reps, Options{Waivers: tc.waivers, Verify: true})
			if diff := cmp.Diff(tc.findings, summarize(r)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			byName := map[string]*Workload{}
			for _, w := range r.Workloads {
				byName[w.Ref.Name] = w
			}
			for wl, want := range tc.allowed {
				if got := strings.Join(byName[wl].Allowed.Architectures, ","); got != want {
					t.Errorf("%s allowed = %q, want %q", wl, got, want)
				}
			}
			for wl, want := range tc.armReady {
				if got := byName[wl].ArmReady; got != want {
					t.Errorf("%s armReady = %v, want %v", wl, got, want)
				}
			}
			for wl, want := range tc.proven {
				if got := byName[wl].MultiArchProven; got != want {
					t.Errorf("%s multiArchProven = %v, want %v", wl, got, want)
				}
			}
			for key, want := range tc.cells {
				wc, pool, _ := strings.Cut(key, "@")
				wl, ctr, _ := strings.Cut(wc, "/")
				got := "missing"
				for _, c := range byName[wl].Containers {
					if c.Name != ctr {
						continue
					}
					for _, cl := range c.Cells {
						if cl.Pool == pool {
							got = string(cl.Verdict)
							if !cl.Admitted {
								got += "-"
							}
						}
					}
				}
				if got != want {
					t.Errorf("cell %s = %s, want %s", key, got, want)
				}
			}
		})
	}
}

func TestCellHow(t *testing.T) {
	r := Run(load(t, "init-blocks-arm64.yaml"), exampleReports(t), Options{Verify: true})
	for _, c := range r.Workloads[0].Containers {
		if c.Name != "wait-for-db" {
			continue
		}
		how := c.Cells[1].How
		if !strings.Contains(how, "exec format error") || !strings.Contains(how, "entrypoint /app is amd64") {
			t.Errorf("how = %q, want the wrong-arch exec failure", how)
		}
	}
	r = Run(load(t, "existing-pin.yaml"), exampleReports(t), Options{Verify: true})
	how := r.Workloads[0].Containers[0].Cells[1].How
	if !strings.Contains(how, "no match for platform") && !strings.Contains(how, "no image found") {
		t.Errorf("how = %q, want the runtime's pull error", how)
	}
}

func TestBlockersRanked(t *testing.T) {
	// 40 workloads with one amd64-only init container, 3 with an amd64-only
	// main container of many replicas: the init image comes first.
	snap := Synthetic(SyntheticSpec{Workloads: 43, PodsPerWorkload: 1, Images: []string{"example.com/shop/api:1.0"}})
	for i, w := range snap.Workloads {
		if i < 40 {
			w.Containers = append([]cluster.Container{{Name: "init", Role: cluster.RoleInit, Image: "example.com/shop/worker:2.3"}}, w.Containers...)
		} else {
			n := int32(100)
			w.Replicas = &n
			w.Containers[0].Image = "example.com/shop/cache:7.2"
		}
	}
	r := Run(snap, exampleReports(t), Options{Verify: true})
	var got []string
	for _, b := range r.Blockers {
		got = append(got, b.Image+" "+strings.Join(b.Roles, ","))
	}
	want := []string{"example.com/shop/worker:2.3 init", "example.com/shop/cache:7.2 main"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("blockers (-want +got):\n%s", diff)
	}
	if b := r.Blockers[0]; b.Workloads != 40 || b.Replicas != 40 {
		t.Errorf("first blocker blocks %d workloads, %d replicas; want 40, 40", b.Workloads, b.Replicas)
	}
	if rd := r.Readiness; rd.Workloads != 43 || rd.ReadyWorkloads != 0 || rd.Replicas != 340 {
		t.Errorf("readiness = %+v", rd)
	}
}

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig("../../examples/manifests/.archfit.yaml", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Waivers) != 1 || c.Waivers[0].Code != "single-arch-at-risk" || c.Waivers[0].Container != "wait-for-db" {
		t.Errorf("waivers = %+v", c.Waivers)
	}
	if _, err := LoadConfig("testdata/missing.yaml", true); err != nil {
		t.Errorf("optional missing config: %v", err)
	}
	if _, err := LoadConfig("testdata/missing.yaml", false); err == nil {
		t.Error("missing config: no error")
	}
}
