package remedy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// BuildAdvice is the permanent fix for one image: a proper multi-arch index.
type BuildAdvice struct {
	Image string `json:"image"`
	// Needed is false when the image already runs on every wanted arch.
	Needed bool `json:"needed"`
	// Runs are the architectures the image really runs (verified entries).
	Runs []string `json:"runs"`
	// Missing are the wanted platforms the image has no working entry for.
	Missing []string `json:"missing,omitempty"`
	// Broken are entries whose declared platform is not what they contain.
	Broken  []BrokenEntry `json:"broken,omitempty"`
	Recipes []Recipe      `json:"recipes,omitempty"`
	Notes   []string      `json:"notes,omitempty"`
	// Dockerfiles are the findings of the Dockerfile(s) the user said
	// build this image (--dockerfile): what in them blocks the fix.
	Dockerfiles []DockerfileCheck `json:"dockerfiles,omitempty"`

	// platforms are the linux/ARCH platforms the fix builds.
	platforms []string
}

// BrokenEntry is a mislabeled index entry.
type BrokenEntry struct {
	Digest   string `json:"digest"`
	Declared string `json:"declared"`         // platform on the index entry
	Actual   string `json:"actual,omitempty"` // arch of the config or binary
	Detail   string `json:"detail"`
}

// Recipe is one way to build the fix, ready to paste.
type Recipe struct {
	Title string `json:"title"`
	// Lang of Text: sh, yaml, dockerfile.
	Lang string `json:"lang"`
	Text string `json:"text"`
}

// BuildOption tunes Build.
type BuildOption func(*buildOptions)

type buildOptions struct {
	want    []string
	perArch map[string]string
}

// ForArchitectures sets the architectures the image must run on (the
// cluster's node architectures); the default is amd64 and arm64.
func ForArchitectures(archs ...string) BuildOption {
	return func(o *buildOptions) { o.want = sortedSet(archs) }
}

// WithPerArchImages names images already pushed for one architecture each
// (e.g. app:1.0-arm64); Build then suggests joining them into an index.
func WithPerArchImages(refs map[string]string) BuildOption {
	return func(o *buildOptions) { o.perArch = refs }
}

// Build turns an image report into build advice: which platforms are
// missing or mislabeled, and how to build a proper index (buildx, joining
// existing per-arch images with imagetools, GitHub Actions, and for Go
// binaries a cross-compile that needs no emulation).
func Build(r image.Report, opts ...BuildOption) BuildAdvice {
	o := buildOptions{want: []string{"amd64", "arm64"}}
	for _, opt := range opts {
		opt(&o)
	}
	a := BuildAdvice{Image: r.Reference, Runs: sortedSet(r.Architectures)}
	if r.Error != nil {
		a.Notes = append(a.Notes, fmt.Sprintf("the image could not be inspected (%s): no build advice", r.Error.Reason))
		return a
	}

	attestations := 0
	var goVersion string
	var goSettings map[string]string
	dynamic := false
	for _, e := range r.Entries {
		if e.Attestation {
			attestations++
			continue
		}
		if e.GoVersion != "" && goVersion == "" {
			goVersion = e.GoVersion
		}
		if ep := e.Entrypoint; ep != nil {
			if ep.GoSettings != nil && goSettings == nil {
				goSettings = ep.GoSettings
			}
			if ep.Format == "elf" && !ep.Static {
				dynamic = true
			}
		}
		if b, ok := broken(e); ok {
			a.Broken = append(a.Broken, b)
		}
	}
	for _, arch := range o.want {
		if !slices.Contains(a.Runs, arch) {
			a.Missing = append(a.Missing, "linux/"+arch)
		}
	}
	if attestations > 0 {
		if r.EffectivelySingleArch {
			a.Notes = append(a.Notes, fmt.Sprintf("this index holds one runnable image and %d attestation manifest(s) (platform unknown/unknown: provenance/SBOM that BuildKit adds by default): it is NOT multi-arch", attestations))
		} else {
			a.Notes = append(a.Notes, "the unknown/unknown entries are BuildKit attestations (provenance/SBOM), not platforms; nodes never pull them")
		}
	}
	if len(a.Missing) == 0 && len(a.Broken) == 0 {
		a.Notes = append(a.Notes, fmt.Sprintf("runs on %s: nothing to rebuild", strings.Join(a.Runs, ", ")))
		return a
	}
	a.Needed = true
	if len(a.Broken) > 0 {
		a.Notes = append(a.Notes, "mislabeled entries usually come from a Dockerfile that downloads or COPYs a prebuilt binary for the build machine's arch, or sets GOARCH: check it with `archfit dockerfile PATH`, then rebuild every platform")
	}

	platforms := make([]string, len(o.want))
	for i, arch := range o.want {
		platforms[i] = "linux/" + arch
	}
	a.platforms = platforms
	plat := strings.Join(platforms, ",")
	ref := r.Reference
	repo, tag := splitRef(ref)

	a.Recipes = append(a.Recipes, Recipe{
		Title: "Build and push one index for every platform (BuildKit runs the other arch's RUN steps under QEMU unless the Dockerfile cross-compiles)",
		Lang:  "sh",
		Text: fmt.Sprintf("docker buildx create --use --name archfit 2>/dev/null || docker buildx use archfit\n"+
			"docker buildx build --platform %s -t %s --push .\n"+
			"docker buildx imagetools inspect %s\n", plat, shellQuote(ref), shellQuote(ref)),
	})

	if join := joinRecipe(r, o, repo, tag, a.Broken); join != nil {
		a.Recipes = append(a.Recipes, *join)
	}

	reg := image.RegistryOf(repo)
	user, pass := "${{ secrets.REGISTRY_USERNAME }}", "${{ secrets.REGISTRY_PASSWORD }}"
	if reg == "ghcr.io" {
		user, pass = "${{ github.actor }}", "${{ secrets.GITHUB_TOKEN }}"
	}
	a.Recipes = append(a.Recipes, Recipe{
		Title: "GitHub Actions: build the index in CI",
		Lang:  "yaml",
		Text: fmt.Sprintf(`jobs:
  image:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      packages: write
    steps:
      - uses: actions/checkout@v4
      - uses: docker/setup-qemu-action@v3
      - uses: docker/setup-buildx-action@v3
      - uses: docker/login-action@v3
        with:
          registry: %s
          username: %s
          password: %s
      - uses: docker/build-push-action@v6
        with:
          context: .
          platforms: %s
          push: true
          tags: %s
`, reg, user, pass, plat, ref),
	})

	if goVersion != "" {
		a.Recipes = append(a.Recipes, goRecipes(goVersion, dynamic, repo, tag, plat)...)
		if dynamic {
			a.Notes = append(a.Notes, "the Go binary is dynamically linked (cgo): CGO_ENABLED=0 removes the need for a target C toolchain; if cgo is required, cross-compile with a C cross toolchain (e.g. tonistiigi/xx) rather than under QEMU")
		}
		if lvl := goSettings["GOAMD64"]; lvl != "" && lvl != "v1" {
			a.Notes = append(a.Notes, fmt.Sprintf("built with GOAMD64=%s: it refuses to start on older amd64 CPUs; build with GOAMD64=v1 unless every amd64 node supports %s", lvl, lvl))
		}
	}
	return a
}

// broken reports an entry whose declared platform is not what it contains.
func broken(e image.Entry) (BrokenEntry, bool) {
	declared := platform.String(e.Platform)
	if declared == "" {
		declared = platform.String(e.ConfigPlatform)
	}
	b := BrokenEntry{Digest: e.Digest, Declared: declared}
	switch {
	case e.Entrypoint != nil && e.Entrypoint.Verdict == image.VerdictWrongArch:
		b.Actual = e.Entrypoint.Arch
		b.Detail = fmt.Sprintf("the entrypoint %s is built for %s", e.Entrypoint.Path, e.Entrypoint.Arch)
		if e.Mismatch != "" {
			b.Detail += " (" + e.Mismatch + ")"
		}
	case e.Mismatch != "":
		if e.ConfigPlatform != nil {
			b.Actual = platform.Arch(*e.ConfigPlatform)
		}
		b.Detail = e.Mismatch
	default:
		return BrokenEntry{}, false
	}
	return b, true
}

// joinRecipe suggests imagetools create when per-arch images exist: the
// ones the caller named, else the image's own working single-arch entry
// plus a new build for each missing arch.
func joinRecipe(r image.Report, o buildOptions, repo, tag string, brokenEntries []BrokenEntry) *Recipe {
	var sources []string
	var title string
	if len(o.perArch) > 0 {
		for _, arch := range o.want {
			if ref, ok := o.perArch[arch]; ok {
				sources = append(sources, shellQuote(ref))
			}
		}
		title = "Join the per-arch images you already push into one index (no rebuild)"
	} else {
		if len(r.Architectures) != 1 || len(brokenEntries) > 0 || repo == "" {
			return nil
		}
		existing := r.Architectures[0]
		digest := r.Digest
		for _, e := range r.Entries {
			if !e.Attestation && e.Mismatch == "" && platformArch(e) == existing {
				digest = e.Digest
			}
		}
		if digest == "" {
			return nil
		}
		sources = append(sources, shellQuote(repo+"@"+digest))
		var builds []string
		for _, arch := range o.want {
			if arch == existing {
				continue
			}
			perArch := repo + ":" + tagOr(tag) + "-" + arch
			builds = append(builds, fmt.Sprintf("docker buildx build --platform linux/%s -t %s --push .", arch, shellQuote(perArch)))
			sources = append(sources, shellQuote(perArch))
		}
		title = fmt.Sprintf("Or keep the existing %s image as it is and add the others beside it (REF-ARCH tags per arch)", existing)
		return &Recipe{Title: title, Lang: "sh", Text: strings.Join(builds, "\n") + "\n" +
			fmt.Sprintf("docker buildx imagetools create -t %s %s\n", shellQuote(r.Reference), strings.Join(sources, " "))}
	}
	if len(sources) == 0 {
		return nil
	}
	return &Recipe{Title: title, Lang: "sh", Text: fmt.Sprintf("docker buildx imagetools create -t %s %s\n", shellQuote(r.Reference), strings.Join(sources, " "))}
}

func platformArch(e image.Entry) string {
	switch {
	case e.Platform != nil:
		return platform.Arch(*e.Platform)
	case e.ConfigPlatform != nil:
		return platform.Arch(*e.ConfigPlatform)
	}
	return ""
}

var goMinor = regexp.MustCompile(`^go(\d+\.\d+)`)

func goRecipes(goVersion string, dynamic bool, repo, tag, plat string) []Recipe {
	golang := "golang"
	if m := goMinor.FindStringSubmatch(goVersion); m != nil {
		golang += ":" + m[1]
	}
	cgo := "CGO_ENABLED=0 "
	final := "gcr.io/distroless/static-debian12:nonroot"
	if dynamic {
		final = "gcr.io/distroless/base-debian12:nonroot"
	}
	return []Recipe{
		{
			Title: fmt.Sprintf("Go binary (%s): ko cross-compiles every platform natively, no Dockerfile, no QEMU", goVersion),
			Lang:  "sh",
			Text:  fmt.Sprintf("KO_DOCKER_REPO=%s ko build --bare --tags=%s --platform=%s ./cmd/APP\n", shellQuote(repo), shellQuote(tagOr(tag)), plat),
		},
		{
			Title: "Or in the Dockerfile: compile on the build machine's platform for the target one, so nothing runs under emulation",
			Lang:  "dockerfile",
			Text: fmt.Sprintf(`FROM --platform=$BUILDPLATFORM %s AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN %sGOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -o /out/app ./cmd/APP

FROM %s
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
`, golang, cgo, final),
		},
	}
}

// splitRef returns the repository and tag of a reference ("" when it has
// none or does not parse).
func splitRef(ref string) (repo, tag string) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", ""
	}
	repo = r.Context().Name()
	if t, ok := r.(name.Tag); ok {
		tag = t.TagStr()
	}
	if strings.HasPrefix(ref, repo) || !strings.HasPrefix(repo, name.DefaultRegistry+"/") {
		return repo, tag
	}
	// Keep the user's spelling for Docker Hub (nginx, not index.docker.io/library/nginx).
	if i := strings.IndexAny(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref, tag
}

func tagOr(tag string) string {
	if tag == "" {
		return "latest"
	}
	return tag
}
