package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// Text renders the document for people.
func Text(w io.Writer, d *Document) error {
	d.normalize()
	IncompleteText(w, d.Incomplete)
	if d.Text != nil {
		return d.Text(w, d)
	}
	if err := FindingsText(w, d.Findings); err != nil {
		return err
	}
	return nil
}

// FindingsText prints findings grouped by workload: one headline per
// workload, the evidence below it.
func FindingsText(w io.Writer, fs []finding.Finding) error {
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "No findings.")
		return err
	}
	order, groups := byWorkload(fs)
	for _, k := range order {
		g := groups[k]
		fmt.Fprintf(w, "%s %s: %s\n", strings.ToUpper(string(g[0].Severity)), k, g[0].Message)
		for i, f := range g {
			where := f.Container
			if f.ContainerType != "" {
				where += " (" + f.ContainerType + ")"
			}
			fmt.Fprintf(w, "  %s[%s] %s", positionPrefix(f), f.Code, where)
			if f.Image != "" {
				fmt.Fprintf(w, " image %s", f.Image)
			}
			if f.Node != "" {
				fmt.Fprintf(w, " on %s", f.Node)
				if f.NodePlatform != "" {
					fmt.Fprintf(w, " (%s)", f.NodePlatform)
				}
			}
			fmt.Fprintln(w)
			if i > 0 || len(g) == 1 {
				fmt.Fprintf(w, "    %s\n", f.Message)
			}
			if len(f.ImagePlatforms) > 0 {
				fmt.Fprintf(w, "    image platforms: %s\n", strings.Join(f.ImagePlatforms, ", "))
			}
			for _, e := range f.Evidence {
				fmt.Fprintf(w, "    evidence: %s\n", e)
			}
			if f.Confidence != "" && f.Confidence != finding.High {
				fmt.Fprintf(w, "    confidence: %s (missing: %s)\n", f.Confidence, strings.Join(f.Missing, ", "))
			}
			if f.Waived != "" {
				fmt.Fprintf(w, "    waived: %s\n", f.Waived)
			}
		}
	}
	return nil
}

// SourceFindingsText prints findings located in source files (Dockerfiles)
// as file:line, so that editors and terminals can jump to them; by file
// and line, each with its evidence, why, and the rewritten line(s).
func SourceFindingsText(w io.Writer, fs []finding.Finding) error {
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "No findings.")
		return err
	}
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b finding.Finding) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	count := map[finding.Severity]int{}
	for _, f := range fs {
		count[f.Severity]++
		fmt.Fprintf(w, "%s: %s [%s] %s\n", f.Position(), f.Severity, f.Code, strings.Join(f.Evidence, " "))
		fmt.Fprintf(w, "    %s\n", f.Message)
		if f.Fix != "" {
			fmt.Fprintln(w, "    fix:")
			for _, l := range strings.Split(f.Fix, "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	_, err := fmt.Fprintf(w, "%d finding(s): %d error, %d warning\n", len(fs), count[finding.Error], count[finding.Warning])
	return err
}

// byWorkload groups findings by workload ("(no workload)" for none), in
// the order the workloads first appear.
func byWorkload(fs []finding.Finding) (order []string, groups map[string][]finding.Finding) {
	groups = map[string][]finding.Finding{}
	for _, f := range fs {
		k := "(no workload)"
		if f.Workload != nil {
			k = f.Workload.String()
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	return order, groups
}

var runtimeTitle = map[platform.Runtime]string{
	platform.ContainerdLocal:    "containerd<=2.0",
	platform.ContainerdTransfer: "containerd>=2.1",
	platform.CRIO:               "CRI-O",
}

// variantTitle names the columns of a report that lists rules variants
// (platform.Variants): the containerd versions each matcher stands for.
var variantTitle = map[platform.Runtime]string{
	platform.ContainerdLocal:          "containerd>=2.3 local",
	platform.ContainerdTransfer:       "containerd>=2.3",
	platform.ContainerdLocalPreRC5:    "containerd<=2.0",
	platform.ContainerdTransferPreRC5: "containerd 2.1-2.2",
	platform.CRIO:                     "CRI-O",
}

// pullRuntimes are the report's columns: platform.Runtimes, plus the
// variants it lists pulls for, with their titles.
func pullRuntimes(r *image.Report) ([]platform.Runtime, map[platform.Runtime]string) {
	rts := slices.Clone(platform.Runtimes)
	for _, v := range platform.Variants {
		for _, p := range r.Pulls {
			if p.Runtime == v {
				rts = append(rts, v)
				break
			}
		}
	}
	if len(rts) == len(platform.Runtimes) {
		return rts, runtimeTitle
	}
	return rts, variantTitle
}

// ImagesText prints one block per image: kind, entries, what each node
// would pull under each runtime, problems.
func ImagesText(w io.Writer, reps []*image.Report) error {
	for i, r := range reps {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := imageText(w, r); err != nil {
			return err
		}
	}
	return nil
}

func imageText(w io.Writer, r *image.Report) error {
	if r.Error != nil {
		fmt.Fprintf(w, "%s\n  UNINSPECTABLE (%s): %s\n", r.Reference, r.Error.Reason, r.Error.Detail)
		if r.Error.Tried != "" {
			fmt.Fprintf(w, "  tried: %s\n", r.Error.Tried)
		}
		return nil
	}
	imageHeader(w, r)
	if err := entriesTable(w, r); err != nil {
		return err
	}
	switch {
	case len(r.Pulls) > 0 && r.Pulls[0].NodeRuntime != "":
		if err := nodePullsTable(w, r); err != nil {
			return err
		}
	case len(r.Pulls) > 0:
		if err := pullsTable(w, r); err != nil {
			return err
		}
		pullNotes(w, r)
	}
	imageFooter(w, r)
	return nil
}

var mediaTypeTitle = map[string]string{
	"application/vnd.oci.image.index.v1+json":                   " (OCI)",
	"application/vnd.docker.distribution.manifest.list.v2+json": " (Docker manifest list)",
	"application/vnd.oci.image.manifest.v1+json":                " (OCI)",
	"application/vnd.docker.distribution.manifest.v2+json":      " (Docker v2)",
}

// imageHeader: reference, kind, digest, what it runs on, its base image.
func imageHeader(w io.Writer, r *image.Report) {
	fmt.Fprintf(w, "%s\n  %s%s %s\n", r.Reference, r.Kind, mediaTypeTitle[r.MediaType], r.Digest)
	fmt.Fprintf(w, "  runnable platforms: %s", orNone(strings.Join(r.Platforms, ", ")))
	if r.EffectivelySingleArch {
		fmt.Fprint(w, "  (effectively single-arch)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  runs on: %s\n", orNone(strings.Join(r.Architectures, ", ")))
	if r.Base != nil {
		fmt.Fprintf(w, "  base image: %s %s\n", r.Base.Name, r.Base.Digest)
	}
	if o := r.Override; o != nil && (len(o.Command) > 0 || len(o.Args) > 0) {
		fmt.Fprintf(w, "  as run with: command %q args %q\n", o.Command, o.Args)
	}
	if r.Layout != nil {
		fmt.Fprintf(w, "  from: %s\n", r.Layout)
	}
}

// entriesTable: one row per entry with its declared and config platform,
// its entrypoint and the verdict.
func entriesTable(w io.Writer, r *image.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ENTRY\tPLATFORM\tCONFIG\tENTRYPOINT\tVERDICT")
	for _, e := range r.Entries {
		plat := platform.String(e.Platform)
		if plat == "" {
			plat = "(none)"
			if r.Kind == image.KindManifest {
				plat = "-"
			}
		}
		cfg := platform.String(e.ConfigPlatform)
		if cfg == "" {
			cfg = "-"
		}
		ep, verdict := entryVerdict(e)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", shortDigest(e.Digest), plat, cfg, ep, verdict)
	}
	return tw.Flush()
}

// entryVerdict is the ENTRYPOINT and VERDICT columns of an entry.
func entryVerdict(e image.Entry) (ep, verdict string) {
	ep, verdict = "-", "-"
	switch {
	case e.Attestation:
		ep = "attestation"
		if e.AttestsDigest != "" {
			ep += " of " + shortDigest(e.AttestsDigest)
		}
		verdict = "not runnable"
	case e.SkipReason != "":
		verdict = "skipped: " + e.Skipped
	case e.Entrypoint != nil:
		ep = describeEntrypoint(e.Entrypoint)
		verdict = e.Entrypoint.Verdict
	}
	if e.Mismatch != "" {
		verdict = "MISLABELED: " + e.Mismatch
	}
	return ep, verdict
}

// pullsTable: what each node platform pulls under each runtime.
// nodePullsTable lists the pulls of the nodes `inspect --node` named, one
// row per node and path its runtime version may take, with the runtime's
// own message when the pull fails.
func nodePullsTable(w io.Writer, r *image.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tRUNTIME\tPATH\tPULLS")
	for _, p := range r.Pulls {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Node, p.NodeRuntime, p.Runtime.Base(), pullCell(r, p))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range r.Pulls {
		msg := p.Error
		if msg == "" && (p.Runs != nil && !*p.Runs || r.Kind != image.KindManifest) {
			msg = p.Reason
		}
		if msg != "" && p.Error == "" && p.Runs != nil && *p.Runs {
			msg = "* " + msg
		}
		if msg != "" {
			fmt.Fprintf(w, "    %s, %s (%s): %s\n", p.Node, p.NodeRuntime, p.Runtime.Base(), msg)
		}
	}
	return nil
}

func pullsTable(w io.Writer, r *image.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rts, title := pullRuntimes(r)
	fmt.Fprint(tw, "  NODE")
	for _, rt := range rts {
		fmt.Fprintf(tw, "\t%s", title[rt])
	}
	fmt.Fprintln(tw)
	byNode := map[string]map[platform.Runtime]image.Pull{}
	var nodes []string
	for _, p := range r.Pulls {
		if byNode[p.Node] == nil {
			byNode[p.Node] = map[platform.Runtime]image.Pull{}
			nodes = append(nodes, p.Node)
		}
		byNode[p.Node][p.Runtime] = p
	}
	for _, n := range nodes {
		fmt.Fprintf(tw, "  %s", n)
		for _, rt := range rts {
			cell := "-"
			if p, ok := byNode[n][rt]; ok {
				cell = pullCell(r, p)
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// pullCell: the platform pulled and whether it runs (ok* with a caveat).
func pullCell(r *image.Report, p image.Pull) string {
	switch {
	case p.Error != "":
		return "pull fails"
	case p.Runs != nil && !*p.Runs:
		return p.Platform + " (exec fails)"
	case notArchFailure(r, p.Digest):
		return p.Platform + " (exec fails, not arch)"
	case p.Reason != "" && r.Kind != image.KindManifest:
		return p.Platform + " ok*"
	}
	return p.Platform + " ok"
}

// pullNotes: why a pull fails or has a caveat, once per node and message.
func pullNotes(w io.Writer, r *image.Report) {
	seen := map[string]bool{}
	_, title := pullRuntimes(r)
	for _, p := range r.Pulls {
		msg := p.Error
		if msg == "" && (p.Runs != nil && !*p.Runs || r.Kind != image.KindManifest) {
			msg = p.Reason
		}
		if msg != "" && p.Error == "" && p.Runs != nil && *p.Runs {
			msg = "* " + msg
		}
		if msg != "" && !seen[p.Node+msg] {
			seen[p.Node+msg] = true
			fmt.Fprintf(w, "    %s, %s: %s\n", p.Node, title[p.Runtime], msg)
		}
	}
}

// imageFooter: problems, multi-arch alternatives, notes, registry work.
func imageFooter(w io.Writer, r *image.Report) {
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  PROBLEM [%s] %s: %s\n", p.Code, shortDigest(p.Entry), p.Detail)
	}
	if len(r.Alternatives) > 0 {
		var refs []string
		for _, a := range r.Alternatives {
			refs = append(refs, a.Reference+" ("+strings.Join(a.Architectures, ", ")+")")
		}
		fmt.Fprintf(w, "  multi-arch tags of this repository: %s\n", strings.Join(refs, "; "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if r.Stats.Requests > 0 || r.Stats.CacheHits > 0 || r.Stats.Bytes > 0 {
		fmt.Fprintf(w, "  (%d registry requests, %d from cache, %s of layers read)\n", r.Stats.Requests, r.Stats.CacheHits, humanBytes(r.Stats.Bytes))
	}
}

// notArchFailure reports whether the entry's entrypoint cannot run for a
// reason that is not its architecture (script without #!, missing loader).
func notArchFailure(r *image.Report, digest string) bool {
	for _, e := range r.Entries {
		if e.Digest == digest && e.Entrypoint != nil {
			switch e.Entrypoint.Verdict {
			case image.VerdictNotExecutable, image.VerdictMissingInterp, image.VerdictNotFound:
				return true
			}
		}
	}
	return false
}

func describeEntrypoint(e *image.Entrypoint) string {
	s := e.Path
	if s == "" {
		s = e.Argv0
	}
	var bits []string
	switch e.Format {
	case "elf":
		bits = append(bits, "ELF "+e.Arch)
		if e.Static {
			bits = append(bits, "static")
		} else if e.Interpreter != "" {
			bits = append(bits, "loader "+e.Interpreter)
		}
	case "script":
		bits = append(bits, "script "+e.Shebang)
	case "":
	case "other":
		bits = append(bits, "not ELF, no #!")
	default:
		bits = append(bits, e.Format)
	}
	if len(bits) > 0 {
		s += " (" + strings.Join(bits, ", ") + ")"
	}
	if e.BytesRead > 0 {
		s += ", read " + humanBytes(e.BytesRead)
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func shortDigest(d string) string {
	if _, h, ok := strings.Cut(d, ":"); ok && len(h) > 12 {
		return h[:12]
	}
	return d
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// positionPrefix is "file:line: " for a finding located in a file (the
// manifest line of its container's image), so that editors and terminals
// can jump to it; "" otherwise.
func positionPrefix(f finding.Finding) string {
	if p := f.Position(); p != "" {
		return p + ": "
	}
	return ""
}
