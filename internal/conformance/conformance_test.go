package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/truth.json with what the real runtimes did (review the diff)")

// TestModelMatchesTruth checks archfit's prediction against every recorded
// row: what real runtimes did. It needs no runtime.
func TestModelMatchesTruth(t *testing.T) {
	truth, err := ReadTruth(TruthFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(truth.Rows) == 0 {
		t.Fatal("the truth table is empty")
	}
	reg := ServeCases(t)
	type group struct{ runtime, path, arch string }
	rows := map[group][]Row{}
	var order []group
	for _, r := range truth.Rows {
		g := group{r.Runtime, r.Path, r.Arch}
		if _, ok := rows[g]; !ok {
			order = append(order, g)
		}
		rows[g] = append(rows[g], r)
	}
	for _, g := range order {
		pred, err := Predict(t.Context(), reg, g.runtime, g.path, g.arch)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range disagreements(rows[g], pred) {
			t.Errorf("%s", d)
		}
	}
}

// disagreements compares real rows with predicted ones, case by case.
func disagreements(real, pred []Row) []string {
	by := map[string]Row{}
	for _, p := range pred {
		by[p.Key()] = p
	}
	var out []string
	for _, r := range real {
		p, ok := by[r.Key()]
		if !ok {
			out = append(out, fmt.Sprintf("%s: no prediction (unknown case?)", r.Key()))
			continue
		}
		if r.Entry != p.Entry || r.Error != p.Error {
			out = append(out, fmt.Sprintf("%s:\n  runtime: %s\n  archfit: %s", r.Key(), r.Outcome(), p.Outcome()))
		}
	}
	return out
}

// runtimesRequired: under CI (or ARCHFIT_RUNTIMES=required) a missing
// runtime or qemu fails the suite instead of skipping it.
func runtimesRequired() bool {
	return os.Getenv("ARCHFIT_RUNTIMES") == "required" || os.Getenv("CI") != ""
}

// TestRuntimes pulls every case with every containerd hack/runtimes.sh
// built, on both architectures and both pull paths, and compares what each
// did with the truth table and with archfit's prediction.
func TestRuntimes(t *testing.T) {
	if testing.Short() {
		t.Skip("real runtimes: not in -short")
	}
	if os.Geteuid() != 0 {
		if runtimesRequired() {
			t.Fatal("the runtime suite runs containerd, which needs root")
		}
		t.Skip("containerd needs root")
	}
	built := BuiltContainerd(CacheDir())
	if len(built) == 0 {
		if runtimesRequired() {
			t.Fatalf("no runtime built in %s: run hack/runtimes.sh build", CacheDir())
		}
		t.Skipf("no runtime built in %s (hack/runtimes.sh build)", CacheDir())
	}
	if _, err := QEMU(); err != nil {
		if runtimesRequired() {
			t.Fatalf("arm64 runtimes need qemu-aarch64-static (Debian's qemu-user-static): %v", err)
		}
		t.Skipf("no qemu-aarch64-static: %v", err)
	}
	reg := ServeCases(t)
	truth, err := ReadTruth(TruthFile)
	if err != nil && !*update {
		t.Fatal(err)
	}
	if truth == nil {
		truth = &Truth{}
	}
	var mu sync.Mutex
	var got []Row
	// record keeps what one runtime did and checks it against archfit's
	// prediction and (unless re-recording) the truth table.
	record := func(t *testing.T, rows []Row, runtime, path, arch string) {
		mu.Lock()
		got = append(got, rows...)
		mu.Unlock()
		pred, err := Predict(t.Context(), reg, runtime, path, arch)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range disagreements(rows, pred) {
			t.Errorf("archfit disagrees with the runtime: %s", d)
		}
		if !*update {
			for _, d := range disagreements(rows, truth.Rows) {
				t.Errorf("the runtime no longer does what testdata/truth.json says: %s", d)
			}
		}
	}
	sem := make(chan struct{}, 2)
	t.Run("containerd", func(t *testing.T) {
		for _, rt := range built {
			paths := []string{"local"}
			if hasTransfer(rt.Version) {
				paths = []string{"transfer", "local"}
			}
			for _, path := range paths {
				t.Run(rt.Version+"/"+rt.Arch+"/"+path, func(t *testing.T) {
					t.Parallel()
					sem <- struct{}{}
					defer func() { <-sem }()
					record(t, pullAll(t, reg, rt, path), rt.String(), path, rt.Arch)
				})
			}
		}
	})
	t.Run("cri-o", func(t *testing.T) {
		var n int
		for _, b := range CRIOBuilds() {
			// The proxy's "1.34.0" is a main-branch commit that calls
			// itself 1.34.0, not the release (hack/runtimes-crio.sh):
			// its rows would stand for a version it is not.
			if b.Source == "proxy" {
				continue
			}
			n++
			t.Run(b.Version+"/"+b.Arch, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				record(t, crioPullAll(t, reg, b), "cri-o://"+b.Version, "default", b.Arch)
			})
		}
		if n == 0 {
			// CRI-O releases build only from a source tree
			// (ARCHFIT_CRIO_SRC): the module proxy serves none.
			t.Skip("no CRI-O release built (hack/runtimes-crio.sh build with ARCHFIT_CRIO_SRC)")
		}
	})
	if *update {
		truth.Note = "Recorded by TestRuntimes (go test ./internal/conformance -run TestRuntimes -update): containerd built from the Go module proxy by hack/runtimes.sh, arm64 under qemu-aarch64-static, pulling through the CRI from an in-process registry."
		truth.Merge(got)
		if err := truth.Write(TruthFile); err != nil {
			t.Fatal(err)
		}
		if err := writeTable(filepath.Join("..", "..", "docs", "runtime-truth.md"), truth); err != nil {
			t.Fatal(err)
		}
	}
}

// pullAll starts one containerd with a fresh state directory and pulls
// every case through its CRI.
func pullAll(t *testing.T, reg *Registry, rt Runtime, path string) []Row {
	dir, err := os.MkdirTemp("", "archfit-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	start := time.Now()
	ctd := StartContainerd(t, ContainerdConfig{Runtime: rt, Dir: dir, Registry: reg.Host, LocalPull: path == "local"})
	t.Logf("%s %s started in %s", rt, rt.Arch, time.Since(start).Round(time.Millisecond))
	cl, err := Dial(t.Context(), ctd.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v, err := cl.Runtime.Version(t.Context(), &cri.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "v" + rt.Version; v.RuntimeVersion != want {
		t.Fatalf("%s reports version %q, want %q", rt.Bin, v.RuntimeVersion, want)
	}
	var rows []Row
	for _, c := range Cases {
		row := Row{Runtime: rt.String(), Path: path, Arch: rt.Arch, Case: c.Name}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		resp, err := cl.Image.PullImage(ctx, &cri.PullImageRequest{Image: &cri.ImageSpec{Image: reg.Ref(c.Name)}})
		cancel()
		if err != nil {
			st := status.Convert(err)
			row.Code, row.Error = st.Code().String(), reg.Redact(st.Message())
		} else {
			b := reg.Built[c.Name]
			m, ok := b.ManifestOfCfg[resp.ImageRef]
			if !ok {
				t.Fatalf("case %s: the runtime reports image %s, the config of no entry", c.Name, resp.ImageRef)
			}
			row.Entry, row.Platform = m, entryPlatform(c, b, m)
		}
		rows = append(rows, row)
	}
	log := ctd.Log()
	if fell := strings.Contains(log, "Falling back to local image pull mode"); fell && path == "transfer" {
		t.Fatalf("%s fell back to the local pull path; the transfer path was not tested:\n%s", rt, tail(log, 20))
	}
	t.Logf("%s %s %s: %d cases in %s", rt, rt.Arch, path, len(Cases), time.Since(start).Round(time.Millisecond))
	return rows
}

// crioPullAll starts one CRI-O with a fresh directory and pulls every case
// through its CRI.
func crioPullAll(t *testing.T, reg *Registry, b CRIOBuild) []Row {
	dir, err := os.MkdirTemp("", "archfit-crio-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	start := time.Now()
	endpoint := StartCRIO(t, CRIOConfig{Bin: b.Bin, Arch: b.Arch, Dir: dir, Registry: reg.Host})
	runtime := "cri-o://" + b.Version
	if v, err := CRIOVersion(t.Context(), endpoint); err != nil || v != runtime {
		t.Fatalf("%s reports %q (%v), want %q", b.Bin, v, err, runtime)
	}
	var rows []Row
	for _, c := range Cases {
		row := Row{Runtime: runtime, Path: "default", Arch: b.Arch, Case: c.Name}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		id, err := CRIOPull(ctx, endpoint, reg.Ref(c.Name))
		cancel()
		var refused *CRIOPullError
		switch {
		case errors.As(err, &refused):
			row.Code, row.Error = refused.Code, reg.Redact(refused.Message)
		case err != nil:
			t.Fatalf("case %s: %v", c.Name, err)
		default:
			bt := reg.Built[c.Name]
			m, ok := bt.ManifestOfCfg[id]
			if !ok {
				t.Fatalf("case %s: CRI-O reports image %s, the config of no entry", c.Name, id)
			}
			row.Entry, row.Platform = m, entryPlatform(c, bt, m)
		}
		rows = append(rows, row)
	}
	t.Logf("%s %s: %d cases in %s", runtime, b.Arch, len(Cases), time.Since(start).Round(time.Millisecond))
	return rows
}
