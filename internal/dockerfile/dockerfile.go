// Package dockerfile reads a Dockerfile with BuildKit's own parser and finds
// what keeps it from producing a working multi-arch image: hardcoded
// platforms and architectures, arch-specific downloads and packages, and
// compile steps that would run under QEMU emulation. It also lists the base
// images, so the caller can check that they are multi-arch themselves.
package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/archfit/archfit/internal/finding"
)

// The rules are the Dockerfile codes of internal/finding (rules.yaml):
// finding.HardcodedPlatform, BuildPlatformFinalStage, ArchSpecificDownload,
// HardcodedGOARCH, EmulatedCompile, CrossCompileWithoutTarget,
// ArchSpecificPackage and UndeclaredPlatformArg. Each finding has the
// offending text as its only Evidence, File and Line, and Fix: the
// rewritten line(s).

// MaxSize bounds what is read of one Dockerfile: it is written by whoever
// opened the pull request, and real ones are a few KiB.
const MaxSize = 1 << 20

// ErrTooLarge: the Dockerfile is larger than MaxSize.
var ErrTooLarge = errors.New("larger than 1 MiB")

// ParseError says where a Dockerfile could not be parsed.
type ParseError struct {
	File string
	Line int // 0 when the parser did not say
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("parsing Dockerfile %s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("parsing Dockerfile %s: %v", e.File, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// BaseImage is an image a FROM pulls in.
type BaseImage struct {
	File string `json:"file"`
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
	File       string            `json:"file"`
	BaseImages []BaseImage       `json:"baseImages"`
	Findings   []finding.Finding `json:"findings"`
}

// Option changes how a Dockerfile is read.
type Option func(*checker)

// WithBuildArgs gives global ARGs the values a build passes with
// --build-arg: a declared ARG takes the value given, as BuildKit does; an
// undeclared one is ignored, as BuildKit does.
func WithBuildArgs(args map[string]string) Option {
	return func(c *checker) { c.buildArgs = args }
}

// AnalyzeFile reads and analyzes a Dockerfile on disk.
func AnalyzeFile(path string, opts ...Option) (*Analysis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading Dockerfile %s: not a regular file", path)
	}
	return Analyze(path, f, opts...)
}

// stage is what the rules need to know about one FROM ... block.
type stage struct {
	name     string
	index    int
	base     string
	platform string
	line     int
	final    bool
	from     *parser.Node
	nodes    []*parser.Node
}

// Analyze parses a Dockerfile (name is used in findings) and runs every rule.
func Analyze(name string, r io.Reader, opts ...Option) (*Analysis, error) {
	src, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile %s: %w", name, err)
	}
	if len(src) > MaxSize {
		return nil, fmt.Errorf("reading Dockerfile %s: %w", name, ErrTooLarge)
	}
	if i := bytes.IndexByte(src, 0); i >= 0 {
		return nil, &ParseError{File: name, Line: 1 + bytes.Count(src[:i], []byte("\n")), Err: errors.New("a NUL byte: not a text file")}
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		pe := &ParseError{File: name, Err: err}
		var le *parser.LocationError
		if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			pe.Line = le.Locations[0][0].Start.Line
			pe.Err = le.Unwrap()
		}
		return nil, pe
	}
	if err := validate(name, res.AST); err != nil {
		return nil, err
	}
	a := &Analysis{File: name, BaseImages: []BaseImage{}, Findings: []finding.Finding{}}
	lines := strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")
	c := &checker{a: a, lines: lines, meta: map[string]string{}}
	for _, o := range opts {
		o(c)
	}

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
					if given, ok := c.buildArgs[k]; ok {
						v = given
					}
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
	slices.SortStableFunc(a.Findings, func(x, y finding.Finding) int { return x.Line - y.Line })
	return a, nil
}

// instructions BuildKit knows: anything else fails the build, so it is a
// parse error here too, with its line.
var instructions = map[string]bool{
	"add": true, "arg": true, "cmd": true, "copy": true, "entrypoint": true, "env": true, "expose": true,
	"from": true, "healthcheck": true, "label": true, "maintainer": true, "onbuild": true, "run": true,
	"shell": true, "stopsignal": true, "user": true, "volume": true, "workdir": true,
}

// validate rejects what BuildKit's parser accepts but its build refuses:
// an unknown instruction, a FROM without an image.
func validate(name string, root *parser.Node) error {
	for _, n := range root.Children {
		cmd := strings.ToLower(n.Value)
		switch {
		case !instructions[cmd]:
			return &ParseError{File: name, Line: n.StartLine, Err: fmt.Errorf("unknown instruction %q", strings.ToUpper(n.Value))}
		case cmd == "from" && n.Next == nil:
			return &ParseError{File: name, Line: n.StartLine, Err: errors.New("FROM needs an image")}
		}
	}
	return nil
}

type checker struct {
	a     *Analysis
	lines []string
	meta  map[string]string // global ARG defaults
	// buildArgs are --build-arg values; they override declared defaults.
	buildArgs map[string]string
}

// add records a finding of code at line, with the rule's severity unless
// sev is set.
func (c *checker) add(code string, sev finding.Severity, line int, evidence, message string, fix ...string) {
	f := finding.New(code, message)
	if sev != "" {
		f.Severity = sev
	}
	f.File, f.Line, f.Evidence, f.Fix = c.a.File, line, []string{evidence}, strings.Join(fix, "\n")
	c.a.Findings = append(c.a.Findings, f)
}

// src is source line i (1-based) without its line ending.
func (c *checker) src(i int) string {
	if i < 1 || i > len(c.lines) {
		return ""
	}
	return strings.TrimRight(c.lines[i-1], " \t\r")
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
	s := &stage{index: index, line: n.StartLine, platform: platformFlag(n), from: n}
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
	c.a.BaseImages = append(c.a.BaseImages, BaseImage{File: c.a.File, Ref: ref, Stage: s.name, Line: s.line, Platform: s.platform, Unresolved: !ok})
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
	buildPlat := strings.Contains(s.platform, "BUILDPLATFORM")
	stageText := ""
	for _, n := range s.nodes {
		stageText += text(n) + "\n"
	}
	stageAware := archAware.MatchString(stageText) || strings.Contains(stageText, "GOARCH=$") || strings.Contains(stageText, "GOARCH=${")
	installsToolchain := false
	compiles := false
	for _, n := range s.nodes {
		if strings.EqualFold(n.Value, "run") && installRe.MatchString(text(n)) && toolchain.MatchString(text(n)) {
			installsToolchain = true
		}
	}
	for _, n := range s.nodes {
		if _, lang := compileStep(text(n), installsToolchain); strings.EqualFold(n.Value, "run") && (lang == "go" || lang == "rust" || lang == "c") {
			compiles = true
		}
	}
	c.checkFrom(s, compiles)

	for _, n := range s.nodes {
		cmd := strings.ToLower(n.Value)
		t := text(n)
		c.checkPlatformArgs(s, n, t)
		switch cmd {
		case "run":
			if !buildPlat {
				c.checkDownloads(s, n, t, "RUN")
			}
			c.checkGOARCH(s, n, t)
			c.checkPackages(n, t, buildPlat)
			c.checkCompile(s, n, t, buildPlat, stageAware, installsToolchain)
		case "add":
			if !buildPlat {
				c.checkDownloads(s, n, t, "ADD")
			}
		case "arg", "env":
			if !buildPlat {
				c.checkDownloads(s, n, t, strings.ToUpper(cmd))
			}
			c.checkGOARCH(s, n, t)
		}
	}
}

var platformOpt = regexp.MustCompile(`(?i)--platform=\S+\s*`)

// fromLine is the stage's FROM source line with its --platform flag set to
// platform ("" removes it).
func (c *checker) fromLine(s *stage, platform string) string {
	l := c.src(c.lineOf(s.from, "--platform"))
	if platform == "" {
		return platformOpt.ReplaceAllString(l, "")
	}
	if platformOpt.MatchString(l) {
		return platformOpt.ReplaceAllLiteralString(l, "--platform="+platform+" ")
	}
	// FROM base ... -> FROM --platform=... base ...
	i := strings.IndexAny(l, " \t")
	if i < 0 {
		return l
	}
	return l[:i] + " --platform=" + platform + l[i:]
}

func (c *checker) checkFrom(s *stage, compiles bool) {
	p := s.platform
	line := c.lineOf(s.from, "--platform")
	switch {
	case p == "":
	case !strings.Contains(p, "$"):
		fix := []string{c.fromLine(s, "")}
		if !s.final && compiles {
			// A compile stage: run it on the build machine, cross-compile.
			fix = []string{c.fromLine(s, "$BUILDPLATFORM"), "ARG TARGETOS TARGETARCH"}
		}
		c.add(finding.HardcodedPlatform, "", line, "--platform="+p,
			fmt.Sprintf("FROM pins %s: every platform of a multi-arch build gets this stage's %s filesystem and binaries, so the other platforms' images are mislabeled", p, p),
			fix...)
	case s.final && strings.Contains(p, "BUILDPLATFORM") && !strings.EqualFold(s.base, "scratch"):
		c.add(finding.BuildPlatformFinalStage, "", line, "--platform="+p,
			"the image's own stage is built on $BUILDPLATFORM: its base image and everything its RUN steps install are the build machine's architecture, in every platform's image",
			c.fromLine(s, ""))
	}
}

// archNames: how projects name an architecture in download URLs, and the
// same name for the other architecture (for a case statement).
var archNames = map[string][2]string{
	"amd64": {"amd64", "arm64"}, "arm64": {"amd64", "arm64"},
	"x86_64": {"x86_64", "aarch64"}, "aarch64": {"x86_64", "aarch64"}, "x86-64": {"x86-64", "aarch64"},
	"x64": {"x64", "arm64"}, "linux64": {"linux64", "arm64"},
}

// archExpr is what a download URL should hold instead of token: a build
// ARG when the project uses Go's names, else a shell variable the fix sets
// (expr) in the RUN step, with the lines to add before the instruction.
func archExpr(s *stage, n *parser.Node, token string) (repl, expr string, prelude []string) {
	token = strings.ToLower(token)
	if !declaredBefore(s, n, "TARGETARCH") {
		prelude = []string{"ARG TARGETARCH"}
	}
	switch token {
	case "amd64", "arm64":
		return "${TARGETARCH}", "", prelude
	case "x86_64", "aarch64":
		// A RUN step runs on the target platform: uname says it.
		return "${ARCH}", "ARCH=$(uname -m)", nil
	}
	names := archNames[token]
	return "${ARCH}", fmt.Sprintf(`ARCH=$(case "$TARGETARCH" in amd64) echo %s ;; arm64) echo %s ;; esac)`, names[0], names[1]), prelude
}

// runStart: where a command starts on a line of a RUN (after RUN and its
// flags, and a leading && or ;).
var runStart = regexp.MustCompile(`^\s*(?i:RUN\s+(?:--\S+\s+)*)?(?:&&\s*|;\s*|\|\|\s*)?`)

func (c *checker) checkDownloads(s *stage, n *parser.Node, t, instr string) {
	if archAware.MatchString(t) {
		return
	}
	for _, u := range urlRe.FindAllString(t, -1) {
		loc := archToken.FindStringSubmatchIndex(u)
		if loc == nil {
			continue
		}
		token := u[loc[2]:loc[3]]
		how := "downloads"
		switch instr {
		case "ARG", "ENV":
			how = "sets a URL to"
		}
		line := c.lineOf(n, u)
		repl, expr, fix := archExpr(s, n, token)
		fixed := u[:loc[2]] + repl + u[loc[3]:]
		l := c.src(line)
		switch {
		case expr == "":
			fix = append(fix, strings.Replace(l, u, fixed, 1))
		case instr == "RUN":
			l = strings.Replace(l, u, fixed, 1)
			i := len(runStart.FindString(l))
			fix = append(fix, l[:i]+expr+" && "+l[i:])
		default:
			// ADD, ARG and ENV cannot run a shell: download in a RUN.
			dest := "-O"
			if a := args(n); instr == "ADD" && len(a) > 1 {
				dest = "-o " + a[len(a)-1]
				if strings.HasSuffix(dest, "/") {
					dest += fixed[strings.LastIndex(fixed, "/")+1:]
				}
			}
			fix = append(fix, fmt.Sprintf("RUN %s && curl -fsSL %q %s", expr, fixed, dest))
		}
		c.add(finding.ArchSpecificDownload, "", line, u,
			fmt.Sprintf("%s %s an artifact built for %s only: every platform's image gets that binary", instr, how, token), fix...)
	}
}

var goarchAssign = regexp.MustCompile(`\bGOARCH(\s+|=)["']?(amd64|arm64|386|arm|ppc64le|s390x|riscv64)\b["']?`)
var goosLinux = regexp.MustCompile(`\bGOOS=["']?linux\b["']?`)

// targetArgs is the ARG line a fix needs, unless the stage declares it.
func targetArgs(s *stage, n *parser.Node, withOS bool) []string {
	switch {
	case withOS && !(declaredBefore(s, n, "TARGETOS") && declaredBefore(s, n, "TARGETARCH")):
		return []string{"ARG TARGETOS TARGETARCH"}
	case !withOS && !declaredBefore(s, n, "TARGETARCH"):
		return []string{"ARG TARGETARCH"}
	}
	return nil
}

func (c *checker) checkGOARCH(s *stage, n *parser.Node, t string) {
	m := goarchRe.FindStringSubmatch(t)
	if m == nil {
		// ENV GOARCH amd64 / ARG GOARCH=amd64 (the key=value form is above).
		cmd := strings.ToLower(n.Value)
		if cmd == "env" || cmd == "arg" {
			a := args(n)
			for i := 0; i+1 < len(a); i += 2 {
				if a[i] == "GOARCH" && !strings.Contains(a[i+1], "$") && a[i+1] != "" {
					m = []string{"GOARCH=" + a[i+1], a[i+1]}
				}
			}
		}
	}
	if m == nil {
		return
	}
	line := c.lineOf(n, "GOARCH")
	l := c.src(line)
	withOS := goosLinux.MatchString(l)
	l = goarchAssign.ReplaceAllString(l, "GOARCH${1}$$TARGETARCH")
	l = goosLinux.ReplaceAllLiteralString(l, "GOOS=$TARGETOS")
	c.add(finding.HardcodedGOARCH, "", line, m[0],
		fmt.Sprintf("GOARCH is hardcoded to %s: every platform's image gets a binary built for %s", m[1], m[1]),
		append(targetArgs(s, n, withOS), l)...)
}

var addArchCmd = regexp.MustCompile(`dpkg\s+--add-architecture\s+\S+\s*(?:&&\s*|;\s*)?`)

func (c *checker) checkPackages(n *parser.Node, t string, buildPlat bool) {
	if m := addArch.FindStringSubmatch(t); m != nil && !strings.Contains(m[1], "$") {
		line := c.lineOf(n, "--add-architecture")
		fix := []string{"# remove `" + m[0] + "` (cross builds: in a FROM --platform=$BUILDPLATFORM stage, with $(xx-info debian-arch))"}
		if l := addArchCmd.ReplaceAllString(c.src(line), ""); len(strings.Fields(strings.TrimSuffix(l, "\\"))) > 1 {
			fix = append(fix, l)
		}
		c.add(finding.ArchSpecificPackage, finding.Warning, line, m[0],
			fmt.Sprintf("adds the %s dpkg architecture: packages of that arch get installed on every platform", m[1]), fix...)
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
		line := c.lineOf(n, m[0])
		c.add(finding.ArchSpecificPackage, "", line, m[0],
			fmt.Sprintf("installs %s, a package pinned to %s: on other platforms it is a foreign-arch library the binaries cannot use (or the install fails)", m[0], m[1]),
			strings.Replace(c.src(line), m[0], strings.TrimSuffix(m[0], ":"+m[1]), 1))
	}
}

var goBuild = regexp.MustCompile(`\bgo\s+(build|install)\b`)

// crossGo is a go build line told the target: GOOS/GOARCH from the
// platform ARGs, cgo off (cgo would need a cross C compiler).
func crossGo(l string) string {
	env := "GOOS=$TARGETOS GOARCH=$TARGETARCH "
	if !strings.Contains(l, "CGO_ENABLED") {
		env = "CGO_ENABLED=0 " + env
	}
	l = goarchAssign.ReplaceAllString(l, "")
	l = goosLinux.ReplaceAllString(l, "")
	if loc := goBuild.FindStringIndex(l); loc != nil {
		return l[:loc[0]] + env + l[loc[0]:]
	}
	// make and scripts that call go build: the environment reaches them.
	i := len(runStart.FindString(l))
	return l[:i] + env + l[i:]
}

func (c *checker) checkCompile(s *stage, n *parser.Node, t string, buildPlat, stageAware, toolchainInstalled bool) {
	needle, lang := compileStep(t, toolchainInstalled)
	if lang == "" {
		return
	}
	line := c.lineOf(n, needle)
	if buildPlat {
		if lang == "go" && !stageAware {
			c.add(finding.CrossCompileWithoutTarget, "", line, needle,
				"this stage runs on $BUILDPLATFORM but compiles without GOOS/GOARCH: the binary is for the build machine and is copied into every platform's image",
				append(targetArgs(s, n, true), crossGo(c.src(line)))...)
		}
		return
	}
	if s.platform != "" && !strings.Contains(s.platform, "TARGETPLATFORM") {
		return // a literal platform: reported by RuleHardcodedPlatform
	}
	c.add(finding.EmulatedCompile, "", line, needle,
		fmt.Sprintf("%s runs in a stage built for the target platform: for every platform other than the build machine's, BuildKit runs it under QEMU (often 5-20x slower, and some toolchains crash there)", needle),
		c.compileFix(s, line, lang)...)
}

// compileFix moves a compile step to the build machine: the stage's FROM on
// $BUILDPLATFORM, the platform ARGs, and the compile line told the target.
func (c *checker) compileFix(s *stage, line int, lang string) []string {
	from := c.fromLine(s, "$BUILDPLATFORM")
	var fix []string
	if s.final {
		if s.name == "" {
			from += " AS build"
		}
		fix = append(fix, "# compile in a stage of its own; the image's stage keeps a plain FROM and COPY --from=build")
	}
	l := c.src(line)
	if lang == "c" && strings.HasPrefix(s.base, "golang") {
		lang = "go" // make in a Go image runs go build
	}
	switch lang {
	case "go":
		return append(fix, from, "ARG TARGETOS TARGETARCH", crossGo(l))
	case "rust":
		// tonistiigi/xx sets up the target's linker and sysroot.
		return append(fix, from, "COPY --from=tonistiigi/xx / /", "ARG TARGETPLATFORM",
			"RUN xx-apt-get install -y gcc libc6-dev  # xx-apk add musl-dev gcc on Alpine",
			strings.Replace(l, "cargo build", "xx-cargo build", 1))
	case "c":
		return append(fix, from, "COPY --from=tonistiigi/xx / /", "ARG TARGETPLATFORM",
			"RUN xx-apt-get install -y gcc libc6-dev  # the target's libraries; xx-apk add on Alpine",
			"# then compile with the target's compiler: CC=xx-clang (./configure --host=$(xx-clang --print-target-triple), make CC=xx-clang)")
	}
	// node: native addons are compiled by npm on the target.
	return []string{"# keep this step (npm builds native addons for the platform it runs on), or use addons with prebuilt binaries for linux/arm64; run pure-JS steps (bundling, tests) in a FROM --platform=$BUILDPLATFORM stage"}
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
		c.add(finding.UndeclaredPlatformArg, "", c.lineOf(n, arg), "$"+arg,
			fmt.Sprintf("$%s is used but the stage does not declare ARG %s: inside a stage it expands to an empty string", arg, arg),
			"ARG "+arg, c.src(n.StartLine))
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

// ErrNoDockerfile: a directory holds no Dockerfile.
var ErrNoDockerfile = errors.New("no Dockerfile, *.Dockerfile, Dockerfile.* or Containerfile")

// IsDockerfile reports whether a file name is one of a Dockerfile's usual
// names: Dockerfile, Dockerfile.*, *.Dockerfile, Containerfile.
func IsDockerfile(name string) bool {
	l := strings.ToLower(name)
	return l == "dockerfile" || l == "containerfile" || strings.HasPrefix(l, "dockerfile.") || strings.HasSuffix(l, ".dockerfile")
}

// Files expands a command-line path: a file is itself, a directory is its
// Dockerfiles (not recursive), sorted.
func Files(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", path, err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && IsDockerfile(e.Name()) {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoDockerfile)
	}
	return out, nil
}
