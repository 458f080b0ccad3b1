package image

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Alternative is another tag of the same repository and what it runs on.
type Alternative struct {
	Reference     string   `json:"reference"`
	Architectures []string `json:"architectures"`
}

// Alternatives looks for tags of ref's repository that are published for
// all of archs, for images the user does not build. It looks at no more
// than limit tags, the most recent by version order (tags that do not look
// like versions last), and inspects them concurrently like any other image.
func (r *Resolver) Alternatives(ctx context.Context, ref string, archs []string, limit int) ([]Alternative, error) {
	if r.client == nil {
		return nil, fmt.Errorf("alternatives need a registry, not an OCI layout")
	}
	parsed, err := name.ParseReference(ref, r.nameOpts...)
	if err != nil {
		return nil, err
	}
	tags, err := r.client.Tags(ctx, parsed.Context(), 10000)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", parsed.Context(), err)
	}
	tags = RecentTags(tags, parsed.Identifier(), limit)
	reqs := make([]Request, len(tags))
	for i, t := range tags {
		reqs[i] = Request{Ref: parsed.Context().Tag(t).String()}
	}
	var out []Alternative
	for _, rep := range r.InspectAll(ctx, reqs) {
		if rep.Error != nil {
			continue
		}
		ok := true
		for _, a := range archs {
			if !slices.Contains(rep.Architectures, a) {
				ok = false
			}
		}
		if ok {
			out = append(out, Alternative{Reference: rep.Reference, Architectures: rep.Architectures})
		}
	}
	return out, nil
}

// RecentTags orders tags newest first by version (v1.10 after v1.9;
// a tag like "latest" or "main" after all versions), drops skip, and keeps
// the first limit. Tags that share the variant suffix of skip
// ("-alpine", "-slim") come first, since they are the drop-in replacements.
func RecentTags(tags []string, skip string, limit int) []string {
	suffix := variantSuffix(skip)
	var vs []string
	for _, t := range tags {
		if t != skip && !strings.HasPrefix(t, "sha256-") { // cosign/attestation tags
			vs = append(vs, t)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool {
		si, sj := variantSuffix(vs[i]) == suffix, variantSuffix(vs[j]) == suffix
		if si != sj {
			return si
		}
		return compareVersions(vs[i], vs[j]) > 0
	})
	if len(vs) > limit {
		vs = vs[:limit]
	}
	return vs
}

func variantSuffix(tag string) string {
	if i := strings.IndexByte(tag, '-'); i >= 0 {
		return tag[i:]
	}
	return ""
}

// compareVersions compares dotted numeric prefixes; non-versions sort lowest.
func compareVersions(a, b string) int {
	pa, oka := versionParts(a)
	pb, okb := versionParts(b)
	switch {
	case oka && !okb:
		return 1
	case !oka && okb:
		return -1
	case !oka && !okb:
		return strings.Compare(b, a)
	}
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			if pa[i] > pb[i] {
				return 1
			}
			return -1
		}
	}
	return len(pa) - len(pb)
}

func versionParts(tag string) ([]int, bool) {
	tag = strings.TrimPrefix(tag, "v")
	if i := strings.IndexAny(tag, "-+_"); i >= 0 {
		tag = tag[:i]
	}
	var out []int
	for _, p := range strings.Split(tag, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, len(out) > 0
}
