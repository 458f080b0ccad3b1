package remedy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/archfit/archfit/internal/object"
	yaml "go.yaml.in/yaml/v3"
)

// MaxSourceBytes is the largest manifest file searched for the document to
// edit: a file is parsed whole to keep its comments.
const MaxSourceBytes = 64 << 20

// ErrAmbiguousSource: two documents of the -f files are the object to edit.
var ErrAmbiguousSource = errors.New("the object is in more than one document")

// Source is the top-level document of a manifest file that is the object
// to edit.
type Source struct {
	Path  string
	Line  int  // first line of the document
	Index int  // its position among the file's documents (YAML) or values (JSON)
	JSON  bool // the file is a JSON stream: it is edited as JSON
	Data  []byte

	start, end int64        // JSON: the value's bytes in Data
	docs       []*yaml.Node // YAML: every document of Data, parsed
	ref        object.Ref   // what it was found for, in namespace
	namespace  string       // the namespace of documents without one
}

func (s *Source) String() string { return fmt.Sprintf("%s:%d", s.Path, s.Line) }

// SourceFile is a file given to FindSource without a path to read (stdin).
type SourceFile struct {
	Path string
	Data []byte
}

// FindSource returns the top-level document of the -f inputs that is
// exactly ref: same kind, name and namespace, where a document without
// namespace is in defaultNS (as `kubectl apply -n` puts it; "" keeps it
// an object without namespace). paths are files, directories
// (their .yaml, .yml and .json files; subdirectories with recursive) and
// "-" for stdin. nil when no document is (the object is inside a List).
// Two such documents are an ErrAmbiguousSource naming both.
func FindSource(paths []string, recursive bool, stdin SourceFile, ref object.Ref, defaultNS string) (*Source, error) {
	var found []*Source
	check := func(path string, data []byte) error {
		s, err := SourceOf(path, data, ref, defaultNS)
		if err != nil {
			return err
		}
		if s != nil {
			found = append(found, s)
		}
		return nil
	}
	for _, p := range paths {
		if p == "-" {
			if err := check(stdin.Path, stdin.Data); err != nil {
				return nil, err
			}
			continue
		}
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			if path != p {
				switch strings.ToLower(filepath.Ext(path)) {
				case ".yaml", ".yml", ".json":
				default:
					return nil
				}
			}
			data, err := readSource(path)
			if err != nil {
				return err
			}
			return check(path, data)
		})
		if err != nil {
			return nil, err
		}
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	var where []string
	for _, s := range found {
		where = append(where, s.String())
	}
	return nil, fmt.Errorf("%s: %w: %s", ref, ErrAmbiguousSource, strings.Join(where, ", "))
}

func readSource(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSourceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxSourceBytes {
		return nil, fmt.Errorf("reading %s: larger than %d MiB, too large to edit", path, MaxSourceBytes>>20)
	}
	return data, nil
}

// SourceOf finds the document of one file's data that is exactly ref (see
// FindSource), or nil. A file that does not parse holds no document.
func SourceOf(path string, data []byte, ref object.Ref, defaultNS string) (*Source, error) {
	var found []*Source
	if isJSON(data) {
		found = jsonSources(path, data, ref, defaultNS)
	} else {
		found = yamlSources(path, data, ref, defaultNS)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		found[0].ref, found[0].namespace = ref, defaultNS
		return found[0], nil
	}
	return nil, fmt.Errorf("%s: %w: %s and %s", ref, ErrAmbiguousSource, found[0], found[1])
}

func isJSON(data []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

func yamlSources(path string, data []byte, ref object.Ref, defaultNS string) []*Source {
	var out []*Source
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		d := &yaml.Node{}
		if err := dec.Decode(d); err != nil {
			break
		}
		docs = append(docs, d)
		if len(d.Content) == 1 && isObject(d.Content[0], ref, defaultNS) {
			out = append(out, &Source{Path: path, Line: d.Content[0].Line, Index: i, Data: data})
		}
	}
	for _, s := range out {
		s.docs = docs
	}
	return out
}

func jsonSources(path string, data []byte, ref object.Ref, defaultNS string) []*Source {
	var out []*Source
	bom := int64(0)
	if bytes.HasPrefix(data, []byte("\ufeff")) {
		bom = 3
	}
	dec := json.NewDecoder(bytes.NewReader(data[bom:]))
	line, counted := 1, int64(0)
	for i := 0; ; i++ {
		var v struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out
		}
		end := bom + dec.InputOffset()
		start := end - int64(len(raw))
		if json.Unmarshal(raw, &v) != nil || v.Kind != ref.Kind || v.Metadata.Name != ref.Name || orDefault(v.Metadata.Namespace, defaultNS) != ref.Namespace {
			continue
		}
		line += bytes.Count(data[counted:start], []byte("\n"))
		counted = start
		out = append(out, &Source{Path: path, Line: line, Index: i, JSON: true, Data: data, start: start, end: end})
	}
}

func orDefault(ns, defaultNS string) string {
	if ns == "" {
		return defaultNS
	}
	return ns
}

// isObject says whether a document node is exactly ref.
func isObject(n *yaml.Node, ref object.Ref, defaultNS string) bool {
	get := func(m *yaml.Node, key string) *yaml.Node {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	val := func(m *yaml.Node) string {
		if m == nil || m.Kind != yaml.ScalarNode || m.Tag == "!!null" {
			return ""
		}
		return m.Value
	}
	meta := get(n, "metadata")
	return val(get(n, "kind")) == ref.Kind && val(get(meta, "name")) == ref.Name && orDefault(val(get(meta, "namespace")), defaultNS) == ref.Namespace
}
