package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/archfit/archfit/internal/diagnose"
	"github.com/archfit/archfit/internal/finding"
	"github.com/archfit/archfit/internal/remedy"
)

// nextStep is the one thing to do first, per code.
var nextStep = map[string]string{
	finding.WrongArchBinary:        "pin the workload to the architectures its images run (patch below), then publish a multi-arch image",
	finding.MissingPlatform:        "keep the workload off nodes the image has no entry for (patch below), then add the platform to the index",
	finding.MislabeledPlatform:     "pin the workload to architectures whose entries are genuine (patch below), then rebuild the mislabeled entry",
	finding.CPULevelUnsupported:    "build for the baseline CPU level (GOAMD64=v1, -march=x86-64) or keep the workload on CPUs that support it; not an architecture problem",
	finding.NotAnExecutable:        "fix the entrypoint (add a #! line, LF line endings, install the interpreter/loader); do NOT rebuild for another architecture",
	finding.ArchConstraintConflict: "change the nodeSelector/affinity to an architecture its images run and the cluster has, or publish the missing platform",
	finding.SingleArchAtRisk:       "pin the workload to the architectures its images run (patch below) before it lands on the other pool",
	finding.PullFailureNotArch:     "fix the credentials (imagePullSecrets), the tag or the registry quota; do not chase architecture",
	finding.ImageUninspectable:     "give archfit access to the image (--registry-config, or --oci-layout) and run again",
}

// DiagnosisText renders a diagnosis for people (the Document.Text of
// `archfit diagnose`): per workload one headline (root cause and next step),
// the evidence as seen below it, then what to do today and for good.
func DiagnosisText(w io.Writer, d *Document) error {
	if err := diagnosisFindingsText(w, d); err != nil {
		return err
	}
	others, _ := d.Extra["notArch"].([]diagnose.NotArch)
	if len(others) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Also failing, with no sign of an architecture problem:")
		for _, o := range others {
			where := o.Workload.String()
			if o.Container != "" {
				where += " container " + o.Container
			}
			fmt.Fprintf(w, "  %s (pod %s): %s\n", where, o.Pod, o.Reason)
		}
	}
	return nil
}

func diagnosisFindingsText(w io.Writer, d *Document) error {
	if len(d.Findings) == 0 {
		_, err := fmt.Fprintln(w, "No failing pod has an architecture-related cause; nothing at risk among the images inspected.")
		return err
	}
	rems := map[string]*remedy.Remedy{}
	for _, r := range d.Remedies {
		rems[r.Workload.String()] = r
	}
	order, groups := byWorkload(d.Findings)
	for i, k := range order {
		if i > 0 {
			fmt.Fprintln(w)
		}
		g := groups[k]
		head := g[0]
		// An uninspectable image is context, not the root cause, when another
		// finding of the workload is.
		for _, f := range g {
			if f.Code != finding.ImageUninspectable {
				head = f
				break
			}
		}
		fmt.Fprintf(w, "%s %s: [%s] %s\n", strings.ToUpper(string(head.Severity)), k, head.Code, head.Message)
		next := nextStep[head.Code]
		if !patchFollows(rems[k]) {
			next = strings.Replace(next, " (patch below)", "", 1)
		}
		fmt.Fprintf(w, "  next: %s\n", next)
		for _, f := range g {
			where := f.Container
			if where == "" {
				where = "pod"
			}
			if f.ContainerType != "" {
				where += " (" + f.ContainerType + ")"
			}
			fmt.Fprintf(w, "  %s%s [%s]", positionPrefix(f), where, f.Code)
			if f.Image != "" {
				fmt.Fprintf(w, " %s", f.Image)
			}
			if f.Pod != "" {
				fmt.Fprintf(w, " pod %s", f.Pod)
			}
			if f.Node != "" {
				fmt.Fprintf(w, " on %s", f.Node)
				if f.NodePlatform != "" {
					fmt.Fprintf(w, " (%s)", f.NodePlatform)
				}
			}
			fmt.Fprintln(w)
			if f.Message != head.Message {
				fmt.Fprintf(w, "    %s\n", f.Message)
			}
			if len(f.ImagePlatforms) > 0 {
				fmt.Fprintf(w, "    image platforms: %s\n", strings.Join(f.ImagePlatforms, ", "))
			}
			for _, e := range f.Evidence {
				fmt.Fprintf(w, "    | %s\n", e)
			}
			if f.Confidence != "" {
				fmt.Fprintf(w, "    confidence: %s", f.Confidence)
				if len(f.Missing) > 0 {
					fmt.Fprintf(w, " (missing: %s)", strings.Join(f.Missing, ", "))
				}
				fmt.Fprintln(w)
			}
		}
		if rem, ok := rems[k]; ok {
			diagnosisRemedyText(w, rem)
		}
	}
	return nil
}

// patchFollows says whether diagnosisRemedyText prints a patch for r.
func patchFollows(r *remedy.Remedy) bool {
	return r != nil && r.Conflict == nil && len(r.AllowedArchitectures) > 0 && r.Patch != nil && r.Patch.Kubectl != ""
}

func diagnosisRemedyText(w io.Writer, r *remedy.Remedy) {
	switch {
	case r.Conflict != nil:
		fmt.Fprintf(w, "  today: no architecture works: %s\n", r.Conflict.Message)
	case len(r.AllowedArchitectures) > 0:
		fmt.Fprintf(w, "  today: run it only on %s", strings.Join(r.AllowedArchitectures, ", "))
		if len(r.Unverified) > 0 {
			fmt.Fprintf(w, " (not checked: %s)", strings.Join(r.Unverified, ", "))
		}
		fmt.Fprintln(w)
		if r.Patch != nil && r.Patch.Kubectl != "" {
			for _, l := range strings.Split(strings.TrimRight(r.Patch.Kubectl, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	if r.PatchError != "" {
		fmt.Fprintf(w, "  note: no patch: %s\n", r.PatchError)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for _, b := range r.Build {
		what := []string{}
		if len(b.Missing) > 0 {
			what = append(what, "add "+strings.Join(b.Missing, ", "))
		}
		for _, e := range b.Broken {
			what = append(what, fmt.Sprintf("rebuild the %s entry (it contains %s)", e.Declared, orUnknown(e.Actual)))
		}
		fmt.Fprintf(w, "  for good: %s: %s", b.Image, strings.Join(what, "; "))
		fmt.Fprintln(w)
		if len(b.Recipes) > 0 {
			fmt.Fprintf(w, "    how: %s (-o yaml shows every recipe)\n", b.Recipes[0].Title)
		}
		DockerfileChecksText(w, "    ", b.Dockerfiles)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
