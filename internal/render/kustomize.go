package render

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Kustomize builds the kustomization in dir as `kustomize build` does with
// its defaults: files only from inside the kustomization root, no plugins
// and no Helm inflation (those run external programs).
//
// The kustomization is not trusted: unless AllowRemote is given, remote
// resources and bases (URLs, which kustomize fetches over HTTP, and git
// repositories, which it clones with the git program) are refused before
// anything is fetched, so the build is offline. helmCharts are refused,
// naming the kustomization file and the charts.
// The build stops at the time and output limits or when ctx is done.
func Kustomize(ctx context.Context, dir string, opts ...Option) ([]byte, error) {
	o := newOptions(opts)
	if err := checkKustomization(dir, o.allowRemote, map[string]bool{}); err != nil {
		return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
	}
	return bounded(ctx, o, "kustomization "+dir, false, func() ([]byte, error) {
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		fs := filesys.MakeFsOnDisk()
		if o.origins {
			top, _, err := fs.CleanedAbs(dir)
			if err != nil {
				return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
			}
			fs = originFS{FileSystem: fs, top: string(top)}
		}
		m, err := k.Run(fs, dir)
		if err != nil {
			return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
		}
		if o.origins {
			return withSources(m)
		}
		out, err := m.AsYaml()
		if err != nil {
			return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
		}
		return out, nil
	})
}

// checkKustomization reads the kustomization in dir and those of the local
// directories it builds on, and refuses remote references (unless
// allowRemote) and helmCharts. Files and directories that do not exist
// or do not parse are left for kustomize to report.
func checkKustomization(dir string, allowRemote bool, seen map[string]bool) error {
	if isRemote(dir) {
		if allowRemote {
			return nil
		}
		return fmt.Errorf("%s is remote: %w", dir, ErrRemote)
	}
	abs, err := filepath.Abs(dir)
	if err != nil || seen[abs] {
		return nil
	}
	seen[abs] = true
	var k types.Kustomization
	file := dir
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if err := k.Unmarshal(data); err != nil {
			return nil
		}
		file = filepath.Join(dir, name)
		break
	}
	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 {
		var names []string
		for _, c := range k.HelmCharts {
			names = append(names, c.Name)
		}
		for _, c := range k.HelmChartInflationGenerator {
			names = append(names, c.ChartName)
		}
		return fmt.Errorf("%s inflates Helm charts (helmCharts: %s), which archfit does not do: kustomize runs the helm program for them, and archfit runs no program. Render each chart with --helm-chart CHART_DIR (its values with --values) and the rest of the kustomization, without helmCharts, with -k", file, strings.Join(names, ", "))
	}
	// Fields kustomize may read as a directory, a git repository or a file.
	var bases []string
	bases = append(bases, k.Resources...)
	bases = append(bases, k.Bases...) //lint:ignore SA1019 kustomize still reads the deprecated field, so it is checked
	bases = append(bases, k.Components...)
	bases = append(bases, k.Generators...)
	bases = append(bases, k.Transformers...)
	bases = append(bases, k.Validators...)
	// Fields kustomize reads as files, over HTTP(S) if they are URLs.
	files := append([]string{}, k.Crds...)
	files = append(files, k.Configurations...)
	//lint:ignore SA1019 kustomize still reads the deprecated field, so it is checked
	for _, p := range k.PatchesStrategicMerge {
		files = append(files, string(p))
	}
	//lint:ignore SA1019 kustomize still reads the deprecated field, so it is checked
	for _, p := range append(append([]types.Patch{}, k.Patches...), k.PatchesJson6902...) {
		files = append(files, p.Path)
	}
	for _, r := range k.Replacements {
		files = append(files, r.Path)
	}
	files = append(files, k.OpenAPI["path"])
	var kvs []types.KvPairSources
	for _, g := range k.ConfigMapGenerator {
		kvs = append(kvs, g.KvPairSources)
	}
	for _, g := range k.SecretGenerator {
		kvs = append(kvs, g.KvPairSources)
	}
	for _, kv := range kvs {
		for _, f := range kv.FileSources {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			files = append(files, f)
		}
		files = append(files, kv.EnvSources...)
		files = append(files, kv.EnvSource)
	}
	for _, ref := range append(bases, files...) {
		if !allowRemote && !strings.Contains(ref, "\n") && isRemote(ref) {
			return fmt.Errorf("%s refers to the remote %s: %w", dir, ref, ErrRemote)
		}
	}
	for _, b := range bases {
		if strings.Contains(b, "\n") || isRemote(b) || filepath.IsAbs(b) {
			continue
		}
		p := filepath.Join(dir, b)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			if err := checkKustomization(p, allowRemote, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

var scpUser = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*@`)

// isRemote tells whether kustomize could fetch ref over the network or
// with git rather than read it from disk: a URL (http, https, ssh, file
// and any other scheme), a go-getter style git:: reference, an SCP-style
// user@host:path, or a github.com/ shorthand. It errs on the side of
// remote: a local directory named like a URL is refused too (kustomize
// would clone it anyway).
func isRemote(ref string) bool {
	l := strings.ToLower(strings.TrimSpace(ref))
	return strings.Contains(l, "://") || strings.HasPrefix(l, "git::") || scpUser.MatchString(l) ||
		strings.HasPrefix(l, "github.com/") || strings.HasPrefix(l, "github.com:")
}

// WithOrigins makes Kustomize write "# Source: PATH" before each document,
// as helm template does: the file the resource was read from, relative to
// the kustomization directory (none for a generated or remote resource).
// kustomize finds it as its config.kubernetes.io/origin annotation, which
// is removed from the objects.
func WithOrigins() Option { return func(o *options) { o.origins = true } }

// originFS reads the top kustomization with originAnnotations added to
// its buildMetadata (kustomize has no other switch for it); the file on
// disk is not changed.
type originFS struct {
	filesys.FileSystem
	top string // the kustomization's directory, as kustomize resolves it
}

func (f originFS) ReadFile(path string) ([]byte, error) {
	data, err := f.FileSystem.ReadFile(path)
	if err != nil || filepath.Dir(filepath.Clean(path)) != f.top {
		return data, err
	}
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if filepath.Base(path) == name {
			return withOriginAnnotations(data)
		}
	}
	return data, nil
}

// withOriginAnnotations adds originAnnotations to a kustomization's
// buildMetadata. A file that does not parse is returned as it is, for
// kustomize to report.
func withOriginAnnotations(data []byte) ([]byte, error) {
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil || k == nil {
		return data, nil
	}
	bm, _ := k["buildMetadata"].([]any)
	for _, v := range bm {
		if v == types.OriginAnnotations {
			return data, nil
		}
	}
	k["buildMetadata"] = append(bm, types.OriginAnnotations)
	out, err := yaml.Marshal(k)
	if err != nil {
		return data, nil
	}
	return out, nil
}

// withSources writes the resources as AsYaml does, each after a
// "# Source:" comment naming its local origin, without the origin
// annotation.
func withSources(m resmap.ResMap) ([]byte, error) {
	var b bytes.Buffer
	for i, res := range m.Resources() {
		or, err := res.GetOrigin()
		if err != nil {
			return nil, err
		}
		if err := res.SetOrigin(nil); err != nil {
			return nil, err
		}
		out, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		if or != nil && or.Repo == "" && or.Path != "" && !strings.ContainsAny(or.Path, "\n\r") {
			fmt.Fprintf(&b, "%s%s\n", SourcePrefix, or.Path)
		}
		b.Write(out)
	}
	return b.Bytes(), nil
}
