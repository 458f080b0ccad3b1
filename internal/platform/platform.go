// Package platform models what a Kubernetes node is (os/arch/variant) and how
// its container runtime picks one entry out of an image index. It never looks
// at the machine archfit runs on: every answer is about the node.
package platform

import (
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Node returns the platform a node of the given kubernetes.io/os and
// kubernetes.io/arch labels asks for. arm64 nodes are always arm64/v8: the
// kernel hard-codes CPU architecture 8, so neither containerd nor CRI-O ever
// detects another variant there. amd64 nodes carry no variant.
func Node(os, arch string) specs.Platform {
	if os == "" {
		os = "linux"
	}
	p := specs.Platform{OS: os, Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// Parse parses "os/arch[/variant]" (or a bare arch, taken as linux) without
// normalizing it, so a user's or an index's spelling is kept for display.
func Parse(s string) (specs.Platform, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return specs.Platform{}, fmt.Errorf("empty platform")
	}
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		return specs.Platform{OS: "linux", Architecture: parts[0]}, nil
	case 2:
		return specs.Platform{OS: parts[0], Architecture: parts[1]}, nil
	case 3:
		return specs.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}, nil
	}
	return specs.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
}

// String formats a platform as os/arch[/variant] exactly as declared (no
// normalization): "unknown/unknown" for attestations, "" for none.
func String(p *specs.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Normalized formats a platform in containerd's canonical form
// (aarch64 -> arm64, x86_64 -> amd64, arm64/v8 -> arm64, ...).
func Normalized(p specs.Platform) string {
	if p.OS == "" {
		p.OS = "linux" // platforms.Normalize would substitute the tool host's OS
	}
	return platforms.Format(platforms.Normalize(p))
}

// Arch returns the canonical architecture name of p (amd64, arm64, arm, 386...).
func Arch(p specs.Platform) string {
	if p.OS == "" {
		p.OS = "linux"
	}
	return platforms.Normalize(p).Architecture
}

// IsUnknown reports whether p is the unknown/unknown placeholder BuildKit uses
// for attestation manifests.
func IsUnknown(p *specs.Platform) bool {
	return p != nil && p.OS == "unknown" && p.Architecture == "unknown"
}
