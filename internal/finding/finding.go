// Package finding holds archfit's finding codes as data (one embedded table
// for every output format) and the Finding record the rules produce.
package finding

import (
	"github.com/archfit/archfit/internal/object"

	_ "embed"
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"
)

// Codes (stable: scripts and CI depend on them).
const (
	WrongArchBinary        = "wrong-arch-binary"
	MissingPlatform        = "missing-platform"
	MislabeledPlatform     = "mislabeled-platform"
	CPULevelUnsupported    = "cpu-level-unsupported"
	NotAnExecutable        = "not-an-executable"
	ArchConstraintConflict = "arch-constraint-conflict"
	SingleArchAtRisk       = "single-arch-at-risk"
	PullFailureNotArch     = "pull-failure-not-arch"
	ImageUninspectable     = "image-uninspectable"
)

// Dockerfile codes: what keeps a Dockerfile from building a working
// multi-arch image (internal/dockerfile, `archfit dockerfile`).
const (
	HardcodedPlatform         = "hardcoded-platform"
	BuildPlatformFinalStage   = "build-platform-final-stage"
	ArchSpecificDownload      = "arch-specific-download"
	HardcodedGOARCH           = "hardcoded-goarch"
	EmulatedCompile           = "emulated-compile"
	CrossCompileWithoutTarget = "cross-compile-without-target"
	ArchSpecificPackage       = "arch-specific-package"
	UndeclaredPlatformArg     = "undeclared-platform-arg"
	// BaseImageMissingPlatform: `archfit dockerfile --check-base` found a
	// FROM image without an entry for a platform its stage is built for.
	BaseImageMissingPlatform = "base-image-missing-platform"
)

// Severity levels, ordered.
type Severity string

const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Error   Severity = "error"
	Never   Severity = "never" // only as a --fail-on threshold
)

// Rank orders severities: higher is worse.
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 1
	case Warning:
		return 2
	case Error:
		return 3
	case Never:
		return 100
	}
	return 0
}

// Confidence says how sure a finding is; its Missing says what evidence was
// not available when it is below High.
type Confidence string

const (
	High   Confidence = "high"   // the runtime's own words and the image agree
	Medium Confidence = "medium" // one of them is missing
	Low    Confidence = "low"    // archfit guesses
)

// Rank orders confidences: higher is surer; 0 for none.
func (c Confidence) Rank() int {
	switch c {
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// ParseSeverity reads a --fail-on value.
func ParseSeverity(s string) (Severity, error) {
	switch Severity(s) {
	case Info, Warning, Error, Never:
		return Severity(s), nil
	}
	return "", fmt.Errorf("unknown severity %q: want error, warning, info or never", s)
}

// Rule describes one code.
type Rule struct {
	Code        string   `json:"code"`
	Severity    Severity `json:"severity"`
	Title       string   `json:"title"`
	Explanation string   `json:"explanation"`
	Remediation string   `json:"remediation"`
}

//go:embed rules.yaml
var rulesYAML []byte

var rules = mustLoad()

func mustLoad() map[string]Rule {
	var list []Rule
	if err := yaml.UnmarshalStrict(rulesYAML, &list); err != nil {
		panic(fmt.Sprintf("finding: rules.yaml: %v", err))
	}
	m := make(map[string]Rule, len(list))
	for _, r := range list {
		m[r.Code] = r
	}
	return m
}

// Lookup returns the rule for code.
func Lookup(code string) (Rule, bool) {
	r, ok := rules[code]
	return r, ok
}

// Rules returns every rule, sorted by code.
func Rules() []Rule {
	out := make([]Rule, 0, len(rules))
	for _, r := range rules {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// Finding is one verdict with the evidence it rests on.
type Finding struct {
	Code           string      `json:"code"`
	Severity       Severity    `json:"severity"`
	Workload       *object.Ref `json:"workload,omitempty"`
	Pod            string      `json:"pod,omitempty"`
	Container      string      `json:"container,omitempty"`
	ContainerType  string      `json:"containerType,omitempty"` // init | sidecar | main | ephemeral
	Image          string      `json:"image,omitempty"`
	Node           string      `json:"node,omitempty"`
	NodePlatform   string      `json:"nodePlatform,omitempty"`
	ImagePlatforms []string    `json:"imagePlatforms,omitempty"`
	// Evidence holds the exact strings seen (log lines, messages, digests).
	Evidence []string `json:"evidence,omitempty"`
	Message  string   `json:"message"`
	// Confidence is high, medium or low; Missing says what evidence was
	// not available when confidence is below high.
	Confidence Confidence `json:"confidence,omitempty"`
	Missing    []string   `json:"missing,omitempty"`
	// Waived holds the reason when a waiver accepted this finding.
	Waived string `json:"waived,omitempty"`
	// File and Line locate a finding in a source file (a Dockerfile):
	// the path as given on the command line, and the 1-based line.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// Fix is the concrete fix for this finding: the rewritten lines.
	Fix string `json:"fix,omitempty"`
}

// Position is file:line, or "" for a finding without a file.
func (f Finding) Position() string {
	if f.File == "" {
		return ""
	}
	if f.Line == 0 {
		return f.File
	}
	return fmt.Sprintf("%s:%d", f.File, f.Line)
}

// New returns a finding of code with the rule's severity.
func New(code, message string) Finding {
	r, ok := Lookup(code)
	if !ok {
		panic("finding: unknown code " + code)
	}
	return Finding{Code: code, Severity: r.Severity, Message: message}
}

// AtOrAbove reports whether any unwaived finding is at or above threshold.
func AtOrAbove(fs []Finding, threshold Severity) bool {
	for _, f := range fs {
		if f.Waived == "" && f.Severity.Rank() >= threshold.Rank() {
			return true
		}
	}
	return false
}
