package report

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/archfit/archfit/internal/image"
)

// Incomplete says which images a command needed and could not read: every
// verdict that depends on them is unknown, never ready and never blocked.
// It is nil when every image was read.
type Incomplete struct {
	// UnreadImages of Images (distinct references) could not be read.
	UnreadImages int `json:"unreadImages"`
	Images       int `json:"images"`
	// ByReason groups the unread images by why (the image error's reason:
	// unreachable, auth, not-found, rate-limited, timeout, ...), with what
	// to do about it.
	ByReason []UnreadReason `json:"byReason"`
}

// UnreadReason is one reason images could not be read.
type UnreadReason struct {
	Reason string   `json:"reason"`
	Images []string `json:"images"`
	// Layout is true when the images were looked for in --oci-layout.
	Layout bool   `json:"layout,omitempty"`
	Advice string `json:"advice"`
}

// Unread summarizes the images that could not be read; nil when all were.
func Unread(reps []*image.Report) *Incomplete {
	seen := map[string]bool{}
	by := map[string]*UnreadReason{}
	inc := &Incomplete{}
	for _, r := range reps {
		if r == nil || seen[r.Reference] {
			continue
		}
		seen[r.Reference] = true
		inc.Images++
		if r.Error == nil {
			continue
		}
		inc.UnreadImages++
		reason := r.Error.Reason
		if reason == "" {
			reason = "error"
		}
		layout := r.Error.Tried == "OCI layout"
		key := fmt.Sprintf("%s/%t", reason, layout)
		g := by[key]
		if g == nil {
			g = &UnreadReason{Reason: reason, Layout: layout, Advice: advice(reason, layout)}
			by[key] = g
		}
		g.Images = append(g.Images, r.Reference)
	}
	if inc.UnreadImages == 0 {
		return nil
	}
	for _, g := range by {
		sort.Strings(g.Images)
		inc.ByReason = append(inc.ByReason, *g)
	}
	// Most images first: the reason to fix first.
	sort.Slice(inc.ByReason, func(i, j int) bool {
		a, b := inc.ByReason[i], inc.ByReason[j]
		if len(a.Images) != len(b.Images) {
			return len(a.Images) > len(b.Images)
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return !a.Layout && b.Layout
	})
	return inc
}

// Reason says why an unread image could not be read ("" when it was read
// or is not among them).
func (inc *Incomplete) Reason(ref string) string {
	if inc == nil {
		return ""
	}
	for _, g := range inc.ByReason {
		if slices.Contains(g.Images, ref) {
			return g.Reason
		}
	}
	return ""
}

// advice is what to do about images unread for a reason.
func advice(reason string, layout bool) string {
	if layout {
		switch reason {
		case "not-found":
			return "the OCI layout (--oci-layout) has no such reference: copy the image into it (skopeo copy docker://REF oci:DIR:REF), or drop --oci-layout to read the registry"
		default:
			return "the OCI layout (--oci-layout) could not be read for it: check the directory (index.json, blobs/) and copy the image again"
		}
	}
	switch reason {
	case "unreachable":
		return "the registry could not be reached (offline, DNS, proxy or firewall): run where it is reachable, or read the images from an OCI layout (--oci-layout DIR, written with skopeo copy or crane pull --format oci)"
	case "timeout":
		return "the registry did not answer in time: run again, or raise --registry-timeout"
	case "auth":
		return "the registry refused the credentials (401/403): log in (docker login) or give a docker config with --registry-config FILE; on a live cluster archfit also uses the pods' imagePullSecrets when it may get them"
	case "not-found":
		return "the registry has no such tag or repository (private registries answer 404 without credentials too): check the reference, or log in (--registry-config)"
	case "rate-limited":
		return "the registry rate-limited archfit: log in for a higher limit (--registry-config), or run again later (the disk cache makes the next run cheaper)"
	case "server":
		return "the registry failed (5xx): run again later"
	case "invalid", "unsupported":
		return "the registry served something archfit does not read as an image (too large, wrong digest or media type): check the reference"
	case "invalid-reference":
		return "the reference is not a valid image name: fix it in the manifest"
	case "internal-error":
		return "archfit failed on this image (a bug): please report it with the image reference"
	}
	return "run again with the registry reachable and credentials given (--registry-config), or read the images from an OCI layout (--oci-layout)"
}

// Headline is the one line that says the answer is incomplete: "2 of 10
// images could not be read".
func (inc *Incomplete) Headline() string {
	return fmt.Sprintf("%d of %d image(s) could not be read", inc.UnreadImages, inc.Images)
}

// IncompleteText prints the header of text output: how many images could
// not be read, why, and what to do, grouped by reason. Nothing when inc is
// nil.
func IncompleteText(w io.Writer, inc *Incomplete) {
	if inc == nil {
		return
	}
	fmt.Fprintf(w, "INCOMPLETE: %s; nothing below is checked against them.\n", inc.Headline())
	UnreadText(w, inc)
	fmt.Fprintln(w)
}

// UnreadText lists the unread images by reason, each reason with what to
// do, indented under a headline the caller printed.
func UnreadText(w io.Writer, inc *Incomplete) {
	for _, g := range inc.ByReason {
		fmt.Fprintf(w, "  %s (%d): %s\n", reasonTitle(g), len(g.Images), listSome(g.Images, 5))
		fmt.Fprintf(w, "    what to do: %s\n", g.Advice)
	}
}

// IncompleteMarkdown is the same header for a ticket.
func IncompleteMarkdown(w io.Writer, inc *Incomplete) {
	if inc == nil {
		return
	}
	fmt.Fprintf(w, "> **Incomplete: %s**; nothing below is checked against them.\n>\n", inc.Headline())
	for _, g := range inc.ByReason {
		var refs []string
		for _, r := range g.Images {
			refs = append(refs, "`"+r+"`")
		}
		fmt.Fprintf(w, "> - %s (%d): %s. What to do: %s\n", reasonTitle(g), len(g.Images), strings.Join(refs, ", "), mdEsc(g.Advice))
	}
	fmt.Fprintln(w)
}

func reasonTitle(g UnreadReason) string {
	if g.Layout {
		return g.Reason + " in the OCI layout"
	}
	return g.Reason
}

// listSome joins at most n items and says how many more there are.
func listSome(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(s[:n], ", "), len(s)-n)
}
