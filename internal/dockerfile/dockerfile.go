// Package dockerfile reads a Dockerfile with BuildKit's own parser and finds
// what keeps it from producing a working multi-arch image: hardcoded
// platforms and architectures, arch-specific downloads and packages, and
// compile steps that would run under QEMU emulation. It also lists the base
// images, so the caller can check that they are multi-arch themselves.
package dockerfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Rules (Finding.Rule).
const (
	// RuleHardcodedPlatform: FROM --platform=linux/amd64 (a literal platform).
	RuleHardcodedPlatform = "hardcoded-platform"
	// RuleBuildPlatformFinal: the image's own stage runs on $BUILDPLATFORM,
	// so every platform gets the build machine's filesystem.
	RuleBuildPlatformFinal = "build-platform-final-stage"
	// RuleArchDownload: a URL naming one architecture (curl, wget, ADD, or
	// an ARG/ENV holding it) with no TARGETARCH in sight.
	RuleArchDownload = "arch-specific-download"
	// RuleHardcodedGOARCH: GOARCH set to a literal architecture.
	RuleHardcodedGOARCH = "hardcoded-goarch"
	// RuleEmulatedCompile: a compile step in a stage built for the target
	// platform: under QEMU for every non-native platform.
	RuleEmulatedCompile = "emulated-compile"
	// RuleCrossCompileNoTarget: a compile step in a $BUILDPLATFORM stage that
	// never looks at TARGETARCH: it builds for the build machine.
	RuleCrossCompileNoTarget = "cross-compile-without-target"
	// RuleArchPackage: apt/apk/dpkg packages pinned to one architecture.
	RuleArchPackage = "arch-specific-package"
	// RuleUndeclaredPlatformArg: $TARGETARCH & co used in a stage that does
	// not declare them with ARG (they expand to nothing).
	RuleUndeclaredPlatformArg = "undeclared-platform-arg"
)

// Severities.
const (
	SeverityError   = "error"   // the multi-arch image will be wrong
	SeverityWarning = "warning" // slow or fragile, or wrong in some setups
)

// Finding is one problem, at a line of the Dockerfile.
type Finding struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	// Evidence is the offending text (a URL, a flag, a package).
	Evidence string `json:"evidence"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
}

// Position formats file:line.
func (f Finding) Position() string { return fmt.Sprintf("%s:%d", f.File, f.Line) }

// BaseImage is an image a FROM (or COPY --from) pulls in.
type BaseImage struct {
	// Ref as written, with the global ARG defaults substituted.
	Ref   string `json:"ref"`
	Stage string `json:"stage,omitempty"`
	Line  int    `json:"line"`
	// Platform is the --platform flag as written ("" when absent).
	Platform string `json:"platform,omitempty"`
	// Unresolved: the reference still holds a variable without a default.
	Unresolved bool `json:"unresolved,omitempty"`
	// Final: the stage that becomes the image (the last one).
	Final bool `json:"final,omitempty"`
}

// Analysis of one Dockerfile.
type Analysis struct {
	File       string      `json:"file"`
	BaseImages []BaseImage `json:"baseImages"`
	Findings   []Finding   `json:"findings"`
}

// AnalyzeFile reads and analyzes a Dockerfile on disk.
func AnalyzeFile(path string) (*Analysis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	return Analyze(path, bytes.NewReader(b))
}

// stage is what the rules need to know about one FROM ... block.
type stage struct {
	name     string
	index    int
	base     string
	platform string
	line     int
	final    bool
	nodes    []*parser.Node
}

// Analyze parses a Dockerfile (name is used in findings) and runs every rule.
func Analyze(name string, r io.Reader) (*Analysis, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	a := &Analysis{File: name, BaseImages: []BaseImage{}, Findings: []Finding{}}
	lines := strings.Split(string(src), "\n")
	c := &checker{a: a, lines: lines, meta: map[string]string{}}

	var stages []*stage
	for _, n := range res.AST.Children {
		cmd := strings.ToLower(n.Value)
		if cmd == "from" {
			stages = append(stages, c.fromStage(n, len(stages)))
			continue
		}
		if len(stages) == 0 {
			if cmd == "arg" {
				for _, kv := range args(n) {
					k, v, _ := strings.Cut(kv, "=")
					c.meta[k] = v
				}
			}
			continue
		}
		s := stages[len(stages)-1]
		s.nodes = append(s.nodes, n)
	}
	if len(stages) == 0 {
		return a, nil
	}
	stages[len(stages)-1].final = true

	names := map[string]*stage{}
	for _, s := range stages {
		c.baseImage(s, names)
		if s.name != "" {
			names[strings.ToLower(s.name)] = s
		}
		c.checkStage(s)
	}
	// The final image's base: follow FROM <stage> back to an image.
	root := stages[len(stages)-1]
	for {
		parent, ok := names[strings.ToLower(root.base)]
		if !ok || parent.index >= root.index {
			break
		}
		root = parent
	}
	for i := range a.BaseImages {
		a.BaseImages[i].Final = a.BaseImages[i].Line == root.line
	}
	slices.SortStableFunc(a.Findings, func(x, y Finding) int { return x.Line - y.Line })
	return a, nil
}

type checker struct {
	a     *Analysis
	lines []string
	meta  map[string]string // global ARG defaults
}

func (c *checker) add(f Finding) {
	f.File = c.a.File
	c.a.Findings = append(c.a.Findings, f)
}

// lineOf finds the source line of a node that holds needle, for multi-line
// instructions (the node's own start line otherwise).
func (c *checker) lineOf(n *parser.Node, needle string) int {
	end := n.EndLine
	if end < n.StartLine {
		end = n.StartLine
	}
	for i := n.StartLine; i <= end && i <= len(c.lines); i++ {
		if strings.Contains(c.lines[i-1], needle) {
			return i
		}
	}
	return n.StartLine
}

func args(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// text is the instruction as the shell will see it, heredocs included.
func text(n *parser.Node) string {
	t := strings.Join(args(n), " ")
	for _, h := range n.Heredocs {
		t += "\n" + h.Content
	}
	return t
}

func platformFlag(n *parser.Node) string {
	for _, f := range n.Flags {
		if v, ok := strings.CutPrefix(f, "--platform="); ok {
			return v
		}
	}
	return ""
}

func (c *checker) fromStage(n *parser.Node, index int) *stage {
	a := args(n)
	s := &stage{index: index, line: n.StartLine, platform: platformFlag(n)}
	if len(a) > 0 {
		s.base = a[0]
	}
	if len(a) >= 3 && strings.EqualFold(a[1], "as") {
		s.name = a[2]
	}
	return s
}

// expand substitutes global ARG defaults ($X, ${X}, ${X:-default}).
func (c *checker) expand(s string) (string, bool) {
	resolved := true
	out := os.Expand(s, func(k string) string {
		name, def, hasDef := strings.Cut(k, ":-")
		if v, ok := c.meta[name]; ok && v != "" {
			return v
		}
		if hasDef {
			return def
		}
		resolved = false
		return "${" + k + "}"
	})
	return out, resolved
}

func (c *checker) baseImage(s *stage, earlier map[string]*stage) {
	ref, ok := c.expand(s.base)
	if strings.EqualFold(ref, "scratch") || earlier[strings.ToLower(ref)] != nil {
		return
	}
	c.a.BaseImages = append(c.a.BaseImages, BaseImage{Ref: ref, Stage: s.name, Line: s.line, Platform: s.platform, Unresolved: !ok})
}

var (
	urlRe     = regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s"'<>|;)]+`)
	archToken = regexp.MustCompile(`(?i)(?:^|[^a-z0-9])(amd64|x86_64|x86-64|x64|linux64|aarch64|arm64)(?:[^a-z0-9]|$)`)
	// Anything that computes the arch at build time.
	archAware = regexp.MustCompile(`TARGETARCH|TARGETPLATFORM|TARGETVARIANT|uname\s+-m|dpkg\s+--print-architecture|apk\s+--print-arch|\barch\b\s*\)|\$\(arch\)|` + "`arch`")
	goarchRe  = regexp.MustCompile(`\bGOARCH=["']?(amd64|arm64|386|arm|ppc64le|s390x|riscv64)\b`)
	platArgs  = regexp.MustCompile(`\$\{?(TARGETARCH|TARGETOS|TARGETPLATFORM|TARGETVARIANT|BUILDPLATFORM|BUILDARCH|BUILDOS)\b`)
	pkgArch   = regexp.MustCompile(`\S+:(amd64|arm64|i386|armhf|armel)\b`)
	addArch   = regexp.MustCompile(`dpkg\s+--add-architecture\s+(\S+)`)
	installRe = regexp.MustCompile(`\b(apt-get|apt|apk|yum|dnf|microdnf)\s+(?:[-\w=]+\s+)*(install|add)\b`)
)

// Shell command words that compile: slow or fragile under emulation.
var compilers = map[string]string{
	"go": "go", "cargo": "rust", "rustc": "rust",
	"gcc": "c", "g++": "c", "cc": "c", "clang": "c", "clang++": "c", "make": "c", "cmake": "c", "ninja": "c", "./configure": "c",
}

var (
	segmentSep  = regexp.MustCompile(`&&|\|\||;|\||\n`)
	envAssign   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=\S*$`)
	toolchain   = regexp.MustCompile(`\b(build-essential|build-base|g\+\+|gcc|make|python3?|node-gyp)\b`)
	nodeInstall = map[string][]string{"npm": {"ci", "install", "i"}, "yarn": {"", "install"}, "pnpm": {"install", "i"}}
)

// compileStep returns the compile command of a shell script and its
// language, ignoring package-manager lines ("apt-get install make").
func compileStep(script string, withToolchain bool) (needle, lang string) {
	for _, seg := range segmentSep.Split(script, -1) {
		words := strings.Fields(seg)
		for len(words) > 0 && (words[0] == "sudo" || words[0] == "env" || words[0] == "exec" || envAssign.MatchString(words[0])) {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		w := words[0]
		next := ""
		if len(words) > 1 {
			next = words[1]
		}
		switch l := compilers[w]; {
		case l == "go" || l == "rust" && w == "cargo":
			if next == "build" || next == "install" {
				return w + " " + next, l
			}
		case l == "rust" || l == "c":
			return w, l
		}
		if subs, ok := nodeInstall[w]; ok && withToolchain && slices.Contains(subs, next) {
			return strings.TrimSpace(w + " " + next), "node"
		}
	}
	return "", ""
}

func (c *checker) checkStage(s *stage) {
	c.checkFrom(s)
	buildPlat := strings.Contains(s.platform, "BUILDPLATFORM")
	stageText := ""
	for _, n := range s.nodes {
		stageText += text(n) + "\n"
	}
	stageAware := archAware.MatchString(stageText) || strings.Contains(stageText, "GOARCH=$") || strings.Contains(stageText, "GOARCH=${")
	installsToolchain := false
	for _, n := range s.nodes {
		if strings.EqualFold(n.Value, "run") && installRe.MatchString(text(n)) && toolchain.MatchString(text(n)) {
			installsToolchain = true
		}
	}

	for _, n := range s.nodes {
		cmd := strings.ToLower(n.Value)
		t := text(n)
		c.checkPlatformArgs(s, n, t)
		switch cmd {
		case "run":
			if !buildPlat {
				c.checkDownloads(n, t, "RUN")
			}
			c.checkGOARCH(n, t)
			c.checkPackages(s, n, t, buildPlat)
			c.checkCompile(s, n, t, buildPlat, stageAware, installsToolchain)
		case "add":
			if !buildPlat {
				c.checkDownloads(n, t, "ADD")
			}
		case "arg", "env":
			if !buildPlat {
				c.checkDownloads(n, t, strings.ToUpper(cmd))
			}
			c.checkGOARCH(n, t)
		}
	}
}

func (c *checker) checkFrom(s *stage) {
	p := s.platform
	switch {
	case p == "":
	case !strings.Contains(p, "$"):
		fix := "remove --platform so that each platform of `docker buildx build --platform ...` gets its own base image"
		if !s.final {
			fix += "; if this stage only produces build tools or cross-compiles, use --platform=$BUILDPLATFORM and ARG TARGETOS TARGETARCH"
		}
		c.add(Finding{
			Rule: RuleHardcodedPlatform, Severity: SeverityError, Line: s.line, Evidence: "--platform=" + p,
			Message: fmt.Sprintf("FROM pins %s: every platform of a multi-arch build gets this stage's %s filesystem and binaries, so the other platforms' images are mislabeled", p, p),
			Fix:     fix,
		})
	case s.final && strings.Contains(p, "BUILDPLATFORM") && !strings.EqualFold(s.base, "scratch"):
		c.add(Finding{
			Rule: RuleBuildPlatformFinal, Severity: SeverityError, Line: s.line, Evidence: "--platform=" + p,
			Message: "the image's own stage is built on $BUILDPLATFORM: its base image and everything its RUN steps install are the build machine's architecture, in every platform's image",
			Fix:     "keep --platform=$BUILDPLATFORM on the compile stage only; start the final stage with a plain FROM (it defaults to $TARGETPLATFORM) and COPY --from the compile stage",
		})
	}
}

func (c *checker) checkDownloads(n *parser.Node, t, instr string) {
	if archAware.MatchString(t) {
		return
	}
	for _, u := range urlRe.FindAllString(t, -1) {
		m := archToken.FindStringSubmatch(u)
		if m == nil {
			continue
		}
		how := "downloads"
		switch instr {
		case "ARG", "ENV":
			how = "sets a URL to"
		}
		c.add(Finding{
			Rule: RuleArchDownload, Severity: SeverityError, Line: c.lineOf(n, u), Evidence: u,
			Message: fmt.Sprintf("%s %s an artifact built for %s only: every platform's image gets that binary", instr, how, m[1]),
			Fix:     "declare ARG TARGETARCH in the stage and build the URL from it (e.g. .../linux-${TARGETARCH}.tar.gz; map to x86_64/aarch64 with a case statement when the project names them so)",
		})
	}
}

func (c *checker) checkGOARCH(n *parser.Node, t string) {
	if m := goarchRe.FindStringSubmatch(t); m != nil {
		c.add(Finding{
			Rule: RuleHardcodedGOARCH, Severity: SeverityError, Line: c.lineOf(n, "GOARCH"), Evidence: m[0],
			Message: fmt.Sprintf("GOARCH is hardcoded to %s: every platform's image gets a binary built for %s", m[1], m[1]),
			Fix:     "ARG TARGETOS TARGETARCH, then GOOS=$TARGETOS GOARCH=$TARGETARCH go build (in a FROM --platform=$BUILDPLATFORM stage: no emulation)",
		})
		return
	}
	// ENV GOARCH amd64 / ARG GOARCH=amd64 (the key=value form is above).
	cmd := strings.ToLower(n.Value)
	if cmd == "env" || cmd == "arg" {
		a := args(n)
		for i := 0; i+1 < len(a); i += 2 {
			if a[i] == "GOARCH" && !strings.Contains(a[i+1], "$") && a[i+1] != "" {
				c.add(Finding{
					Rule: RuleHardcodedGOARCH, Severity: SeverityError, Line: n.StartLine, Evidence: "GOARCH=" + a[i+1],
					Message: fmt.Sprintf("GOARCH is hardcoded to %s: every platform's image gets a binary built for %s", a[i+1], a[i+1]),
					Fix:     "ARG TARGETARCH and GOARCH=$TARGETARCH",
				})
			}
		}
	}
}

func (c *checker) checkPackages(s *stage, n *parser.Node, t string, buildPlat bool) {
	if m := addArch.FindStringSubmatch(t); m != nil && !strings.Contains(m[1], "$") {
		c.add(Finding{
			Rule: RuleArchPackage, Severity: SeverityWarning, Line: c.lineOf(n, "--add-architecture"), Evidence: m[0],
			Message: fmt.Sprintf("adds the %s dpkg architecture: packages of that arch get installed on every platform", m[1]),
			Fix:     "drop it in the target-platform image; for cross builds do it in a FROM --platform=$BUILDPLATFORM stage with $(xx-info debian-arch) or a TARGETARCH mapping",
		})
	}
	if !installRe.MatchString(t) {
		return
	}
	for _, m := range pkgArch.FindAllStringSubmatch(t, -1) {
		if strings.Contains(m[0], "://") || strings.Contains(m[0], "$") {
			continue
		}
		if buildPlat {
			continue // cross toolchain packages for the target belong here
		}
		c.add(Finding{
			Rule: RuleArchPackage, Severity: SeverityError, Line: c.lineOf(n, m[0]), Evidence: m[0],
			Message: fmt.Sprintf("installs %s, a package pinned to %s: on other platforms it is a foreign-arch library the binaries cannot use (or the install fails)", m[0], m[1]),
			Fix:     fmt.Sprintf("install %s without the :%s suffix, so each platform gets its own", strings.TrimSuffix(m[0], ":"+m[1]), m[1]),
		})
	}
}

func (c *checker) checkCompile(s *stage, n *parser.Node, t string, buildPlat, stageAware, toolchainInstalled bool) {
	needle, lang := compileStep(t, toolchainInstalled)
	if lang == "" {
		return
	}
	line := c.lineOf(n, needle)
	if buildPlat {
		if lang == "go" && !stageAware {
			c.add(Finding{
				Rule: RuleCrossCompileNoTarget, Severity: SeverityError, Line: line, Evidence: needle,
				Message: "this stage runs on $BUILDPLATFORM but compiles without GOOS/GOARCH: the binary is for the build machine and is copied into every platform's image",
				Fix:     "ARG TARGETOS TARGETARCH, then GOOS=$TARGETOS GOARCH=$TARGETARCH go build",
			})
		}
		return
	}
	if s.platform != "" && !strings.Contains(s.platform, "TARGETPLATFORM") {
		return // a literal platform: reported by RuleHardcodedPlatform
	}
	fixes := map[string]string{
		"go":   "FROM --platform=$BUILDPLATFORM golang:... AS build, ARG TARGETOS TARGETARCH, CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build: Go cross-compiles natively",
		"rust": "FROM --platform=$BUILDPLATFORM rust:... AS build, ARG TARGETARCH, rustup target add for the target triple and a cross linker (tonistiigi/xx or cargo-zigbuild), cargo build --target",
		"c":    "FROM --platform=$BUILDPLATFORM with a cross toolchain (tonistiigi/xx: xx-apk/xx-apt-get and xx-clang), ARG TARGETPLATFORM",
		"node": "install native addons from prebuilt binaries (npm ci picks the target's prebuilds when run on it), or accept emulation for this step; keep pure-JS steps on $BUILDPLATFORM",
	}
	c.add(Finding{
		Rule: RuleEmulatedCompile, Severity: SeverityWarning, Line: line, Evidence: needle,
		Message: fmt.Sprintf("%s runs in a stage built for the target platform: for every platform other than the build machine's, BuildKit runs it under QEMU (often 5-20x slower, and some toolchains crash there)", needle),
		Fix:     fixes[lang],
	})
}

func (c *checker) checkPlatformArgs(s *stage, n *parser.Node, t string) {
	if strings.EqualFold(n.Value, "arg") {
		return
	}
	seen := map[string]bool{}
	for _, m := range platArgs.FindAllStringSubmatch(t, -1) {
		arg := m[1]
		if seen[arg] || declaredBefore(s, n, arg) {
			continue
		}
		seen[arg] = true
		c.add(Finding{
			Rule: RuleUndeclaredPlatformArg, Severity: SeverityError, Line: c.lineOf(n, arg), Evidence: "$" + arg,
			Message: fmt.Sprintf("$%s is used but the stage does not declare ARG %s: inside a stage it expands to an empty string", arg, arg),
			Fix:     fmt.Sprintf("add `ARG %s` in this stage, before its first use", arg),
		})
	}
}

// declaredBefore: the arg is declared by an ARG of the stage before node n.
func declaredBefore(s *stage, n *parser.Node, arg string) bool {
	for _, m := range s.nodes {
		if m == n {
			return false
		}
		if strings.EqualFold(m.Value, "arg") {
			for _, kv := range args(m) {
				if k, _, _ := strings.Cut(kv, "="); k == arg {
					return true
				}
			}
		}
	}
	return false
}
