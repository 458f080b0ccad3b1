// Package image resolves image references against registries (or an OCI
// layout) into Reports: index or single manifest, every entry's declared and
// configured platform, attestations, what each node type would pull, and —
// with verification — what the entrypoint binary of each entry really is.
package image

import (
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/platform"
)

// Kind of the object a reference resolves to.
const (
	KindIndex    = "index"
	KindManifest = "manifest"
)

// Report is everything archfit learned about one image reference.
type Report struct {
	Reference string `json:"reference"`
	// Digest of the object the reference resolves to (index or manifest).
	Digest    string  `json:"digest,omitempty"`
	MediaType string  `json:"mediaType,omitempty"`
	Kind      string  `json:"kind,omitempty"` // index | manifest
	Entries   []Entry `json:"entries,omitempty"`
	// Platforms are the runnable platforms (attestations and unknown entries
	// excluded), os/arch[/variant] as declared by the index (or config).
	Platforms []string `json:"platforms,omitempty"`
	// Architectures are the canonical architectures of Platforms, verified
	// where verification ran (a mislabeled entry does not count).
	Architectures []string `json:"architectures,omitempty"`
	// EffectivelySingleArch: an index with one runnable platform (plus
	// attestations) is no more multi-arch than a single manifest.
	EffectivelySingleArch bool       `json:"effectivelySingleArch,omitempty"`
	Base                  *BaseImage `json:"base,omitempty"`
	Pulls                 []Pull     `json:"pulls,omitempty"`
	Problems              []Problem  `json:"problems,omitempty"`
	Notes                 []string   `json:"notes,omitempty"`
	// Alternatives are other tags of the repository published for the
	// architectures this one lacks (inspect --suggest-tags).
	Alternatives []Alternative `json:"alternatives,omitempty"`
	// Override is the pod's command/args (and PATH) this report was made
	// for: what runs, and so the verdict, depends on them, so a reference
	// that containers run with different commands is reported once for each.
	Override *Override `json:"override,omitempty"`
	// Layout is the OCI layout entry that answered (--oci-layout).
	Layout *LayoutEntry `json:"layoutEntry,omitempty"`
	// Error is set when the image could not be inspected at all
	// (image-uninspectable); the other fields may be empty.
	Error *Failure `json:"error,omitempty"`
	// Stats on how the answer was obtained.
	Stats Stats `json:"stats"`
}

// Entry is one image manifest: an index entry, or the single manifest itself.
type Entry struct {
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size,omitempty"`
	// Platform as declared on the index entry (nil for a single manifest or
	// an entry that declares none).
	Platform *specs.Platform `json:"platform,omitempty"`
	// ConfigPlatform as declared by the image config blob.
	ConfigPlatform *specs.Platform `json:"configPlatform,omitempty"`
	// ConfigDigest is the config blob's digest, the image ID a runtime
	// reports, where the config was read.
	ConfigDigest string `json:"configDigest,omitempty"`
	Attestation  bool   `json:"attestation,omitempty"`
	// AttestsDigest is the image an attestation manifest is about.
	AttestsDigest string `json:"attestsDigest,omitempty"`
	// Nested is the path of parent index digests for entries of nested indexes.
	Nested []string `json:"nested,omitempty"`
	// SkipReason says why an entry was not examined; Skipped says it in
	// words (with the error seen). Both are empty for an examined entry.
	SkipReason SkipReason `json:"skipReason,omitempty"`
	Skipped    string     `json:"skipped,omitempty"`
	// Mismatch describes a disagreement between the declared platform and
	// the config or the entrypoint binary; empty when they agree.
	Mismatch   string      `json:"mismatch,omitempty"`
	Entrypoint *Entrypoint `json:"entrypoint,omitempty"`
	// Go build info, when the entrypoint is a Go binary (for build advice).
	GoVersion string `json:"goVersion,omitempty"`
	Config    *Exec  `json:"exec,omitempty"`
}

// SkipReason is why an entry was not examined.
type SkipReason string

// Skip reasons. Only SkipUnreadable is transient: the others are answers
// about content that cannot change (its digest names it).
const (
	SkipNestedTooDeep    SkipReason = "nested-too-deep"
	SkipSchema1          SkipReason = "schema1"
	SkipUnknownMediaType SkipReason = "unknown-media-type"
	// SkipNotFound: the registry answered 404 for a digest the index names.
	SkipNotFound SkipReason = "not-found"
	// SkipInvalid: content verified by its digest does not parse.
	SkipInvalid SkipReason = "invalid"
	// SkipUnreadable: the content could not be read this time (network,
	// timeout, 5xx, rate limit, credentials): a later run may read it.
	SkipUnreadable SkipReason = "unreadable"
	// SkipTooManyEntries: the image already had MaxManifestsPerImage
	// manifests or MaxNestedIndexes nested indexes; the entry stands for
	// the rest of its index, which was not read.
	SkipTooManyEntries SkipReason = "too-many-entries"
	// SkipCycle: a nested index that is one of its own parents.
	SkipCycle SkipReason = "cycle"
	// SkipRepeatedIndex: a nested index already walked for this image;
	// its entries are listed once, where it was first seen.
	SkipRepeatedIndex SkipReason = "repeated-index"
)

// Transient reports whether a later run may get another answer.
func (r SkipReason) Transient() bool { return r == SkipUnreadable }

// skip marks the entry as not examined.
func (e *Entry) skip(reason SkipReason, msg string) { e.SkipReason, e.Skipped = reason, msg }

// Exec is the part of the image config that decides what runs.
type Exec struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	Path       string   `json:"path,omitempty"` // PATH from the image Env
}

// Verdicts of an entrypoint check.
const (
	VerdictOK            = "ok"             // binary arch matches the entry
	VerdictWrongArch     = "wrong-arch"     // ELF e_machine is another arch
	VerdictNotExecutable = "not-executable" // script without #!, CRLF shebang, not ELF
	VerdictMissingInterp = "missing-interpreter"
	VerdictNotFound      = "not-found"     // the file is not in the image
	VerdictNoEntrypoint  = "no-entrypoint" // neither Entrypoint nor Cmd
	VerdictUnverifiable  = "unverifiable"  // could not read (limits, errors)
)

// Entrypoint is what --verify found for one entry.
type Entrypoint struct {
	// Argv0 as configured; Path as resolved (PATH lookup, symlinks followed).
	Argv0 string `json:"argv0,omitempty"`
	Path  string `json:"path,omitempty"`
	// Format: elf, script, other.
	Format string `json:"format,omitempty"`
	// ELF details.
	ELFMachine      int    `json:"elfMachine,omitempty"`
	ELFClass        int    `json:"elfClass,omitempty"`
	Arch            string `json:"arch,omitempty"` // canonical arch of the binary
	Static          bool   `json:"static,omitempty"`
	Interpreter     string `json:"interpreter,omitempty"` // PT_INTERP or #! interpreter
	InterpreterArch string `json:"interpreterArch,omitempty"`
	// Shebang line for scripts (CR shown as \r).
	Shebang string `json:"shebang,omitempty"`
	// GOAMD64 level etc. from Go build info, when present.
	GoSettings map[string]string `json:"goSettings,omitempty"`
	Verdict    string            `json:"verdict"`
	Detail     string            `json:"detail,omitempty"`
	// BytesRead is the compressed bytes downloaded to reach the answer.
	BytesRead int64 `json:"bytesRead"`
	// LayersRead is how many layers were opened (top-down) before stopping.
	LayersRead int `json:"layersRead"`
}

// Pull is what one node type would pull from this reference.
type Pull struct {
	Node    string           `json:"node"` // os/arch[/variant] of the node
	Runtime platform.Runtime `json:"runtime"`
	// Digest and Platform of the chosen entry; empty when the pull fails.
	Digest   string `json:"digest,omitempty"`
	Platform string `json:"platform,omitempty"`
	// Error is the runtime's own message when nothing matches.
	Error string `json:"error,omitempty"`
	// Runs tells whether the chosen entry would run on this node, as far as
	// is known (false with Reason when the binary is another arch, ...).
	Runs   *bool  `json:"runs,omitempty"`
	Reason string `json:"reason,omitempty"`
	// NodeRuntime is the node's runtime as `inspect --node` gave it
	// (containerd://2.1.9); empty for the default node columns.
	NodeRuntime string `json:"nodeRuntime,omitempty"`
}

// BaseImage from the org.opencontainers.image.base.* annotations.
type BaseImage struct {
	Name   string `json:"name,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// Problem is something wrong with the image itself.
type Problem struct {
	Code   string `json:"code"` // a finding code (mislabeled-platform, ...)
	Entry  string `json:"entry,omitempty"`
	Detail string `json:"detail"`
}

// Failure says why an image could not be inspected and what was tried.
type Failure struct {
	Reason string `json:"reason"` // auth, not-found, rate-limited, unreachable, invalid, ...
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail"`
	Tried  string `json:"tried,omitempty"`
}

// Stats counts the work done for one report.
type Stats struct {
	Requests  int   `json:"requests"`
	CacheHits int   `json:"cacheHits"`
	Bytes     int64 `json:"bytes"`
}
