package render

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
)

// checkLinks refuses a chart directory holding a symbolic link that
// resolves outside the chart, or to a directory. Helm's loader follows
// links (it only logs them), so a link in an untrusted chart would let
// .Files.Get read any host file, and links to directories can loop. Links
// to the chart's own files are allowed, as Helm allows them. Links that
// .helmignore excludes are refused all the same. A packaged chart (a file)
// needs no check: Helm's archive loader refuses entries named with .. or
// absolutely, and reads a link entry as an empty file, never its target.
//
// The check and Helm's read are two walks: a chart changed between them
// is not covered. The threat is a hostile chart's content, not a hostile
// process rewriting the directory while archfit runs.
func checkLinks(chartPath string) error {
	fi, err := os.Stat(chartPath)
	if err != nil || !fi.IsDir() {
		return nil // Helm's loader says what is wrong
	}
	root, err := filepath.EvalSymlinks(chartPath)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		name, _ := filepath.Rel(root, p)
		name = filepath.ToSlash(name)
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("chart file %s is a symbolic link that does not resolve: %w", name, err)
		}
		if rel, err := filepath.Rel(root, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("chart file %s is a symbolic link to %s: %w", name, target, ErrOutside)
		}
		if st, err := os.Stat(target); err == nil && st.IsDir() {
			return fmt.Errorf("chart file %s is a symbolic link to a directory, which archfit does not follow", name)
		}
		return nil
	})
}

// checkSchemaRefs refuses values schemas that refer to other documents.
// Helm fetches such references over HTTP(S) or reads them from the host
// (file:// and relative names resolve against the host's /), so a hostile
// schema could make an offline render reach the network or read a host
// file. Each schema is compiled here with a loader that loads nothing;
// a schema that compiles needs no other document, so Helm's own check of
// the values loads nothing either. The urn: references Helm leaves
// unresolved are accepted as Helm accepts them.
func checkSchemaRefs(c *chart.Chart) error {
	if c.Schema != nil {
		schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.Schema))
		if err != nil {
			return nil // Helm reports the malformed schema
		}
		ld := &refusingLoader{}
		comp := jsonschema.NewCompiler()
		comp.UseLoader(ld)
		if err := comp.AddResource("file:///values.schema.json", schema); err != nil {
			return nil
		}
		if _, err := comp.Compile("file:///values.schema.json"); err != nil && ld.refused != "" {
			return fmt.Errorf("values.schema.json of chart %s refers to %s, which archfit does not load: a render reads nothing %w", c.Name(), ld.refused, ErrOutside)
		}
	}
	for _, dep := range c.Dependencies() {
		if err := checkSchemaRefs(dep); err != nil {
			return err
		}
	}
	return nil
}

// refusingLoader loads no document; it keeps the first URL asked for.
type refusingLoader struct{ refused string }

func (l *refusingLoader) Load(url string) (any, error) {
	if strings.HasPrefix(url, "urn:") {
		return true, nil
	}
	if l.refused == "" {
		l.refused = url
	}
	return nil, errors.New("not loaded")
}
