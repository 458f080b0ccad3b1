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
// per line (or separated by ";").
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
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", file, err)
	}
	for i, w := range c.Waivers {
		if w.Code == "" {
			return nil, fmt.Errorf("config %s: waiver %d has no code", file, i+1)
		}
		if _, ok := finding.Lookup(w.Code); !ok && w.Code != "*" {
			return nil, fmt.Errorf("config %s: waiver %d: unknown code %q", file, i+1, w.Code)
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

// AnnotationWaivers parses the ignore annotation of a workload (its object,
// else its pod template).
func AnnotationWaivers(w *cluster.Workload) []Waiver {
	v := ""
	if w.Original != nil {
		v = w.Original.GetAnnotations()[IgnoreAnnotation]
	}
	if v == "" {
		v = w.Template.Annotations[IgnoreAnnotation]
	}
	var out []Waiver
	for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ';' }) {
		code, reason, _ := strings.Cut(line, ":")
		code, reason = strings.TrimSpace(code), strings.TrimSpace(reason)
		if code == "" {
			continue
		}
		if reason == "" {
			reason = "(no reason given)"
		}
		out = append(out, Waiver{Code: code, Reason: reason + " (annotation " + IgnoreAnnotation + ")"})
	}
	return out
}

func (wv Waiver) matches(f finding.Finding) bool {
	if wv.Code != "*" && wv.Code != f.Code {
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

// applyWaivers sets Finding.Waived from the workload's annotation, then
// from the config.
func applyWaivers(fs []finding.Finding, w *cluster.Workload, config []Waiver) []finding.Finding {
	ws := append(AnnotationWaivers(w), config...)
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
