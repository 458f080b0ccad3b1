package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/testimage"
)

// TestDockerfileCheckBase runs `archfit dockerfile --check-base` against a
// real (in-process) registry holding a multi-arch build image, an
// amd64-only runtime image and a multi-arch later tag of it.
func TestDockerfileCheckBase(t *testing.T) {
	host, push := testRegistry(t)
	push("golang:1.23", testimage.MultiArch("linux/amd64", "linux/arm64"))
	push("runtime:1", testimage.App("linux/amd64", "amd64"))
	push("runtime:2", testimage.MultiArch("linux/amd64", "linux/arm64"))

	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	src := fmt.Sprintf(`ARG RUNTIME=%[1]s/runtime:1
FROM --platform=$BUILDPLATFORM %[1]s/golang:1.23 AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /app .

FROM ${RUNTIME}
COPY --from=build /app /app
`, host)
	if err := os.WriteFile(df, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"dockerfile", df, "--check-base", "--no-cache"}

	out, _, code := runArchfit(t, "", append(base, "-o", "json", "--suggest-tags", "5")...)
	if code != ExitFindings {
		t.Errorf("amd64-only runtime base: exit %d, want %d\n%s", code, ExitFindings, out)
	}
	var doc struct {
		Findings []struct {
			Code, File, Fix string
			Line            int
		}
		Extra struct {
			BaseChecks []struct {
				Ref     string
				Needs   []string
				Has     []string
				Missing []string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(doc.Findings) != 1 || doc.Findings[0].Code != "base-image-missing-platform" || doc.Findings[0].Line != 6 || doc.Findings[0].File != df {
		t.Fatalf("findings: %+v, want one base-image-missing-platform at %s:6", doc.Findings, df)
	}
	if want := "FROM " + host + "/runtime:2"; doc.Findings[0].Fix != want {
		t.Errorf("fix %q, want %q (the multi-arch tag --suggest-tags found)", doc.Findings[0].Fix, want)
	}
	if len(doc.Extra.BaseChecks) != 2 {
		t.Fatalf("baseChecks: %+v", doc.Extra.BaseChecks)
	}
	build, final := doc.Extra.BaseChecks[0], doc.Extra.BaseChecks[1]
	if len(build.Needs) != 0 || strings.Join(build.Has, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("$BUILDPLATFORM stage: %+v, want no needs and both platforms seen", build)
	}
	if strings.Join(final.Missing, ",") != "linux/arm64" || strings.Join(final.Has, ",") != "linux/amd64" {
		t.Errorf("runtime stage: %+v", final)
	}

	// The build only targets amd64: nothing is missing.
	if out, _, code := runArchfit(t, "", append(base, "--platform", "linux/amd64")...); code != ExitOK {
		t.Errorf("--platform linux/amd64: exit %d\n%s", code, out)
	}
	// --build-arg picks the multi-arch tag, as docker build would.
	if out, _, code := runArchfit(t, "", append(base, "--build-arg", "RUNTIME="+host+"/runtime:2")...); code != ExitOK {
		t.Errorf("--build-arg RUNTIME=runtime:2: exit %d\n%s", code, out)
	}
	// A base that is not there is reported on its FROM line, never judged.
	out, _, _ = runArchfit(t, "", append(base, "--build-arg", "RUNTIME="+host+"/gone:1", "--fail-on", "never")...)
	if !strings.Contains(out, df+":6: warning [image-uninspectable]") {
		t.Errorf("missing base: want an image-uninspectable warning at line 6, got\n%s", out)
	}
	// An unread base makes the answer incomplete: exit 4, the header says
	// which; --allow-unverified accepts it.
	gone := append(base, "--build-arg", "RUNTIME="+host+"/gone:1")
	out, _, code = runArchfit(t, "", gone...)
	if code != ExitIncomplete || !strings.Contains(out, "INCOMPLETE: 1 of 2 image(s) could not be read") {
		t.Errorf("missing base: exit %d, want %d with the INCOMPLETE header\n%s", code, ExitIncomplete, out)
	}
	if _, _, code := runArchfit(t, "", append(gone, "--allow-unverified")...); code != ExitOK {
		t.Errorf("missing base, --allow-unverified: exit %d, want 0", code)
	}
	// Without --check-base nothing is read from a registry.
	if out, _, code := runArchfit(t, "", "dockerfile", df); code != ExitOK || strings.Contains(out, "base-image") {
		t.Errorf("without --check-base: exit %d\n%s", code, out)
	}
}

// TestDockerfileCheckBaseBounded: a Dockerfile naming more distinct base
// images than --check-base reads gets the rest reported unread (exit 4),
// never read and never passed.
func TestDockerfileCheckBaseBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; i <= maxBaseImages; i++ {
		fmt.Fprintf(&b, "FROM example.com/base/n%d:1\n", i)
	}
	df := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(df, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	layout := testLayout(t, t.TempDir(), nil) // an empty layout: nothing is fetched
	out, _, code := runArchfit(t, "", "dockerfile", df, "--check-base", "--oci-layout", layout, "--no-cache", "-o", "json")
	if code != ExitIncomplete {
		t.Fatalf("exit %d, want %d", code, ExitIncomplete)
	}
	if n := strings.Count(out, "more than 256 distinct base images"); n < 1 {
		t.Errorf("the base image beyond the bound is not reported as unread:\n%.2000s", out)
	}
}
