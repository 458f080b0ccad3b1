package audit

import (
	"fmt"
	"os"
	"path"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
)

// IgnoreAnnotation accepts findings on one object: one "<code>: <reason>"
// per line (or separated by ";"). Anyone who can edit a manifest can write
// it, so each entry must name a known code and give a reason; "*" is
// refused (Options.NoAnnotationWaivers turns the annotation off).
const IgnoreAnnotation = "archfit.io/ignore"

// Waiver accepts a known finding. Empty fields match anything; Namespace,
// Kind, Name, Container and Image are path.Match globs.
type Waiver struct {
	Code      string `json:"code"`
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
	Reason    string `json:"reason"`
}

// Config is the .archfit.yaml file.
type Config struct {
	Waivers []Waiver `json:"waivers"`
}

// LoadConfig reads a .archfit.yaml. A missing file is not an error when
// optional is true.
func LoadConfig(file string, optional bool) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		if optional && os.IsNotExist(err) {
			return &Config{}, nil
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(b, file)
}

// ParseConfig reads the content of a .archfit.yaml (file names it in
// errors): archfit serve reads it from a ConfigMap.
func ParseConfig(b []byte, file string) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", file, err)
	}
	for i, w := range c.Waivers {
		if w.Code == "" {
			return nil, fmt.Errorf("config %s: waiver %d has no code", file, i+1)
		}
		if err := knownCode(w.Code); err != nil {
			return nil, fmt.Errorf("config %s: waiver %d: %w", file, i+1, err)
		}
		if strings.TrimSpace(w.Reason) == "" {
			return nil, fmt.Errorf("config %s: waiver %d (%s) has no reason: say why the finding is accepted", file, i+1, w.Code)
		}
		for _, pat := range []string{w.Namespace, w.Kind, w.Name, w.Container, w.Image} {
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("config %s: waiver %d: bad pattern %q", file, i+1, pat)
			}
		}
	}
	return &c, nil
}

// knownCode refuses "*" and codes archfit does not have.
func knownCode(code string) error {
	if code == "*" {
		return fmt.Errorf(`"*" waives every finding and is not accepted: name the codes to accept (%s)`, codeList())
	}
	if _, ok := finding.Lookup(code); !ok {
		return fmt.Errorf("unknown code %q (known: %s)", code, codeList())
	}
	return nil
}

func codeList() string {
	var codes []string
	for _, r := range finding.Rules() {
		codes = append(codes, r.Code)
	}
	return strings.Join(codes, ", ")
}

// AnnotationWaivers parses the ignore annotation of a workload (its object,
// else its pod template). Entries that name no known code, name "*", or
// give no reason are returned as errors and waive nothing.
func AnnotationWaivers(w *cluster.Workload) ([]Waiver, []error) {
	v := ""
	if w.Original != nil {
		v = w.Original.GetAnnotations()[IgnoreAnnotation]
	}
	if v == "" {
		v = w.Template.Annotations[IgnoreAnnotation]
	}
	var out []Waiver
	var errs []error
	for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ';' }) {
		code, reason, _ := strings.Cut(line, ":")
		code, reason = strings.TrimSpace(code), strings.TrimSpace(reason)
		if code == "" {
			continue
		}
		if err := knownCode(code); err != nil {
			errs = append(errs, fmt.Errorf("%s: annotation %s: %w", w.Ref, IgnoreAnnotation, err))
			continue
		}
		if reason == "" {
			errs = append(errs, fmt.Errorf(`%s: annotation %s: %s has no reason: write "%s: <why it is accepted>"`, w.Ref, IgnoreAnnotation, code, code))
			continue
		}
		out = append(out, Waiver{Code: code, Reason: reason + " (annotation " + IgnoreAnnotation + ")"})
	}
	return out, errs
}

// hasAnnotation says whether the workload carries the ignore annotation.
func hasAnnotation(w *cluster.Workload) bool {
	if w.Original != nil {
		if _, ok := w.Original.GetAnnotations()[IgnoreAnnotation]; ok {
			return true
		}
	}
	_, ok := w.Template.Annotations[IgnoreAnnotation]
	return ok
}

// Matches says whether the waiver accepts f.
func (wv Waiver) Matches(f finding.Finding) bool { return wv.matches(f) }

func (wv Waiver) matches(f finding.Finding) bool {
	if wv.Code != f.Code {
		return false
	}
	var ns, kind, name string
	if f.Workload != nil {
		ns, kind, name = f.Workload.Namespace, f.Workload.Kind, f.Workload.Name
	}
	for _, m := range [][2]string{{wv.Namespace, ns}, {wv.Kind, kind}, {wv.Name, name}, {wv.Container, f.Container}, {wv.Image, f.Image}} {
		if m[0] == "" {
			continue
		}
		if ok, _ := path.Match(m[0], m[1]); !ok {
			return false
		}
	}
	return true
}

// workloadWaivers are the waivers that apply to w: its annotation's (unless
// noAnnotation), then the config's. The warnings say which annotation
// entries were refused or ignored.
func workloadWaivers(w *cluster.Workload, config []Waiver, noAnnotation bool) ([]Waiver, []string) {
	if noAnnotation {
		if hasAnnotation(w) {
			return config, []string{fmt.Sprintf("%s: annotation %s not accepted: waivers come only from the config file here", w.Ref, IgnoreAnnotation)}
		}
		return config, nil
	}
	ws, errs := AnnotationWaivers(w)
	var warnings []string
	for _, e := range errs {
		warnings = append(warnings, e.Error())
	}
	return append(ws, config...), warnings
}

// applyWaivers sets Finding.Waived from the waivers, first match wins.
func applyWaivers(fs []finding.Finding, ws []Waiver) []finding.Finding {
	for i := range fs {
		for _, wv := range ws {
			if wv.matches(fs[i]) {
				fs[i].Waived = wv.Reason
				break
			}
		}
	}
	return fs
}
