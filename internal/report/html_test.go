package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/image"
)

func exampleHTML(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	snap, res := example(t, "../../examples/manifests/workloads")
	refs := res.LayoutReferences()
	reqs := make([]image.Request, len(refs))
	for i, r := range refs {
		reqs[i] = image.Request{Ref: r, Verify: true}
	}
	r := audit.Run(snap, image.NewSet(reqs, res.InspectAll(ctx, reqs)), audit.Options{Verify: true})
	var b bytes.Buffer
	sections := []HTMLSection{{Title: "Plan, phase 1: Taint the Arm pools", Items: []HTMLItem{{Title: "Taint", Code: "kubectl taint nodes -l kubernetes.io/arch=arm64 kubernetes.io/arch=arm64:NoSchedule"}}}}
	if err := HTML(&b, r, r.Findings, sections, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHTMLSelfContained(t *testing.T) {
	page := string(exampleHTML(t))
	for _, s := range []string{`<td class="fails"`, `<td class="runs"`, "arm64-ready workloads", "example.com/shop/worker:2.3", "Plan, phase 1", "waived:"} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	for _, s := range []string{"<script", "<link", "http://", "https://"} {
		if strings.Contains(page, s) {
			t.Errorf("page is not self-contained: has %q", s)
		}
	}
}

// TestHTMLInBrowser renders the page in headless Chromium and checks that
// the coverage grid really is coloured (red and green pixels). Skipped
// without chromium; the screenshot path is logged.
func TestHTMLInBrowser(t *testing.T) {
	bin := ""
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium in PATH: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("no chromium in PATH (apt-get install chromium)")
	}
	dir := t.TempDir()
	if d := os.Getenv("ARCHFIT_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	page := filepath.Join(dir, "audit.html")
	shot := filepath.Join(dir, "audit.png")
	if err := os.WriteFile(page, exampleHTML(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1600,1400", "--screenshot="+shot, "file://"+page)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var red, green int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			switch {
			case r > 230 && g > 150 && g < 180 && bl > 150 && bl < 180: // #f4a6a6 fails
				red++
			case r > 170 && r < 195 && g > 220 && bl > 190 && bl < 210: // #b7e4c7 runs
				green++
			}
		}
	}
	t.Logf("screenshot: %s (%dx%d), %d red and %d green grid pixels sampled", shot, b.Dx(), b.Dy(), red, green)
	if red == 0 || green == 0 {
		t.Errorf("the coverage grid is not coloured in the browser: %d red, %d green pixels", red, green)
	}
}
