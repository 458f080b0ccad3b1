package remedy

import (
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/finding"
)

func TestAttachDockerfiles(t *testing.T) {
	hub := func() *BuildAdvice {
		return &BuildAdvice{Image: "nginx:1.27", Needed: true, platforms: []string{"linux/amd64", "linux/arm64"}}
	}
	app := func() *BuildAdvice {
		return &BuildAdvice{Image: "example.com/shop/app@sha256:" + strings.Repeat("a", 64), Needed: true}
	}
	fine := func() *BuildAdvice { return &BuildAdvice{Image: "example.com/shop/fine:1"} }
	broken := DockerfileFile{Path: "Dockerfile", Findings: []finding.Finding{{Code: finding.HardcodedGOARCH, File: "Dockerfile", Line: 3}}}
	clean := DockerfileFile{Path: "cross.Dockerfile"}

	t.Run("IMAGE=PATH matches the repository, whatever the tag or digest", func(t *testing.T) {
		h, a, f := hub(), app(), fine()
		w := AttachDockerfiles([]*BuildAdvice{h, a, f}, []DockerfileSource{
			{Image: "docker.io/library/nginx:latest", Path: "Dockerfile", Files: []DockerfileFile{broken}},
			{Image: "example.com/shop/app:2", Path: "cross.Dockerfile", Files: []DockerfileFile{clean}},
		})
		if len(w) != 0 {
			t.Errorf("warnings %q", w)
		}
		if len(h.Dockerfiles) != 1 || len(h.Dockerfiles[0].Findings) != 1 || h.Dockerfiles[0].Findings[0].Code != finding.HardcodedGOARCH {
			t.Errorf("nginx: %+v", h.Dockerfiles)
		}
		if !strings.Contains(h.Dockerfiles[0].Summary, "1 finding(s) in Dockerfile") {
			t.Errorf("nginx summary %q", h.Dockerfiles[0].Summary)
		}
		if len(a.Dockerfiles) != 1 || len(a.Dockerfiles[0].Findings) != 0 || a.Dockerfiles[0].Findings == nil {
			t.Errorf("app: %+v", a.Dockerfiles)
		}
		if s := a.Dockerfiles[0].Summary; !strings.HasPrefix(s, "no finding:") || !strings.Contains(s, "-f cross.Dockerfile -t "+shellQuote(a.Image)+" --push .") {
			t.Errorf("app summary %q", s)
		}
		if f.Dockerfiles != nil {
			t.Errorf("advice that is not needed got %+v", f.Dockerfiles)
		}
	})
	t.Run("PATH alone goes to the one image to rebuild", func(t *testing.T) {
		h1, h2, f := hub(), hub(), fine()
		w := AttachDockerfiles([]*BuildAdvice{h1, nil, f, h2}, []DockerfileSource{{Path: "Dockerfile", Files: []DockerfileFile{broken}}})
		if len(w) != 0 || len(h1.Dockerfiles) != 1 || len(h2.Dockerfiles) != 1 || f.Dockerfiles != nil {
			t.Errorf("warnings %q, %+v %+v %+v", w, h1.Dockerfiles, h2.Dockerfiles, f.Dockerfiles)
		}
	})
	t.Run("PATH alone with two images to rebuild is not placed", func(t *testing.T) {
		h, a := hub(), app()
		w := AttachDockerfiles([]*BuildAdvice{h, a}, []DockerfileSource{{Path: "Dockerfile", Files: []DockerfileFile{broken}}})
		if len(w) != 1 || !strings.Contains(w[0], "2 images need a rebuild (example.com/shop/app, index.docker.io/library/nginx)") || !strings.Contains(w[0], "IMAGE=Dockerfile") {
			t.Errorf("warnings %q", w)
		}
		if h.Dockerfiles != nil || a.Dockerfiles != nil {
			t.Errorf("attached: %+v %+v", h.Dockerfiles, a.Dockerfiles)
		}
	})
	t.Run("nothing to rebuild or no such image: a warning naming it", func(t *testing.T) {
		w := AttachDockerfiles([]*BuildAdvice{fine()}, []DockerfileSource{
			{Path: "Dockerfile", Files: []DockerfileFile{broken}},
			{Image: "example.com/shop/fine", Path: "x/Dockerfile", Files: []DockerfileFile{broken}},
		})
		if len(w) != 2 || !strings.Contains(w[0], "--dockerfile Dockerfile: no image needs a rebuild") ||
			!strings.Contains(w[1], "--dockerfile example.com/shop/fine=x/Dockerfile: no image of repository example.com/shop/fine") {
			t.Errorf("warnings %q", w)
		}
	})
}

func TestValidImageKey(t *testing.T) {
	for _, k := range []string{"nginx", "example.com:5000/a/b:1", "ghcr.io/x/y@sha256:" + strings.Repeat("0", 64)} {
		if err := ValidImageKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	for _, k := range []string{"UPPER/case", "a b", "x:"} {
		if err := ValidImageKey(k); err == nil {
			t.Errorf("%q accepted", k)
		}
	}
}
