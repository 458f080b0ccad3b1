package remedy

import (
	"github.com/archfit/archfit/internal/object"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	yaml "go.yaml.in/yaml/v3"
)

// editSource applies the add operations of a JSON patch to the document of
// src that is obj (SourceOf), keeping the rest of the file as it is: YAML at
// the node level (comments, key order, quoting, the other documents), JSON
// as JSON.
func editSource(src []byte, obj object.Ref, ops []Operation) ([]byte, error) {
	s, err := SourceOf("", src, obj)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("the source has no %s", obj)
	}
	if s.JSON {
		return editJSON(s, ops)
	}
	return editYAML(s, ops)
}

func editYAML(s *Source, ops []Operation) ([]byte, error) {
	src := s.Data
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var docs []*yaml.Node
	for {
		var d yaml.Node
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the source YAML: %w", err)
		}
		docs = append(docs, &d)
	}
	if s.Index >= len(docs) || len(docs[s.Index].Content) != 1 {
		return nil, fmt.Errorf("the source YAML has no document %d", s.Index)
	}
	target := docs[s.Index].Content[0]
	for _, o := range ops {
		if o.Op != "add" {
			continue
		}
		if err := addNode(target, o.Path, o.Value); err != nil {
			return nil, fmt.Errorf("editing the source YAML at %s: %w", o.Path, err)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	indent, compact := detectStyle(src)
	enc.SetIndent(indent)
	if compact {
		enc.CompactSeqIndent()
	}
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// editJSON applies the patch to the JSON value of s and puts it back in
// place, keeping its key order and indentation and the bytes around it.
func editJSON(s *Source, ops []Operation) ([]byte, error) {
	value := s.Data[s.start:s.end]
	p, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.DecodePatch(p)
	if err != nil {
		return nil, err
	}
	var edited []byte
	if indent := jsonIndent(value); indent == "" {
		edited, err = patch.Apply(value)
	} else {
		edited, err = patch.ApplyIndent(value, indent)
	}
	if err != nil {
		return nil, fmt.Errorf("editing the source JSON: %w", err)
	}
	out := make([]byte, 0, len(s.Data)+len(edited)-len(value))
	out = append(out, s.Data[:s.start]...)
	out = append(out, edited...)
	return append(out, s.Data[s.end:]...), nil
}

// jsonIndent is the indentation of a value's first nested line, "" when
// the value is on one line.
func jsonIndent(v []byte) string {
	i := bytes.IndexByte(v, '\n')
	if i < 0 {
		return ""
	}
	rest := v[i+1:]
	return string(rest[:len(rest)-len(bytes.TrimLeft(rest, " \t"))])
}

// addNode performs an RFC 6902 add of a JSON value at a JSON pointer.
func addNode(root *yaml.Node, path string, value []byte) error {
	v, err := jsonToNode(value)
	if err != nil {
		return err
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(parts[i], "~1", "/"), "~0", "~")
	}
	parent := root
	for _, p := range parts[:len(parts)-1] {
		next, err := child(parent, p)
		if err != nil {
			return err
		}
		parent = next
	}
	last := parts[len(parts)-1]
	switch parent.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value == last {
				keepComments(v, parent.Content[i+1])
				parent.Content[i+1] = v
				return nil
			}
		}
		parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}, v)
		return nil
	case yaml.SequenceNode:
		if last == "-" {
			parent.Content = append(parent.Content, v)
			return nil
		}
		idx, err := strconv.Atoi(last)
		if err != nil || idx < 0 || idx > len(parent.Content) {
			return fmt.Errorf("bad index %q", last)
		}
		parent.Content = append(parent.Content[:idx], append([]*yaml.Node{v}, parent.Content[idx:]...)...)
		return nil
	}
	return fmt.Errorf("cannot add under a %s", kindName(parent))
}

func child(n *yaml.Node, key string) (*yaml.Node, error) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1], nil
			}
		}
		return nil, fmt.Errorf("no field %q", key)
	case yaml.SequenceNode:
		idx, err := strconv.Atoi(key)
		if err != nil || idx < 0 || idx >= len(n.Content) {
			return nil, fmt.Errorf("no index %q", key)
		}
		return n.Content[idx], nil
	}
	return nil, fmt.Errorf("no %q in a %s", key, kindName(n))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "node"
}

// keepComments moves the comments of a replaced node (`affinity: {}  # x`)
// to its replacement.
func keepComments(to, from *yaml.Node) {
	to.HeadComment, to.LineComment, to.FootComment = from.HeadComment, from.LineComment, from.FootComment
}

// jsonToNode parses a JSON value into a block-style YAML node, keeping the
// key order of the JSON text.
func jsonToNode(b []byte) (*yaml.Node, error) {
	var d yaml.Node
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if len(d.Content) != 1 {
		return nil, fmt.Errorf("empty value")
	}
	n := d.Content[0]
	blockStyle(n)
	return n, nil
}

func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
		// JSON strings come double-quoted; plain is what people write,
		// unless the plain form would read as another type.
		n.Style &^= yaml.DoubleQuotedStyle
		if n.Tag == "!!str" && needsQuotes(n.Value) {
			n.Style |= yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = 0
	}
}

func needsQuotes(s string) bool {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return true
	}
	str, ok := v.(string)
	return !ok || str != s
}

func jsonToYAML(b []byte) ([]byte, error) {
	n, err := jsonToNode(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

var (
	keyLine = regexp.MustCompile(`^( *)[^ #-][^:]*:\s*(#.*)?$`)
	anyLine = regexp.MustCompile(`^( *)(- )?\S`)
)

// detectStyle finds the indent width and whether sequences sit at the
// level of their key (`containers:\n- name`, kubectl's style) or under it.
func detectStyle(src []byte) (indent int, compact bool) {
	indent, compact = 2, false
	lines := strings.Split(string(src), "\n")
	foundIndent, foundSeq := false, false
	for i, l := range lines {
		m := keyLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		// next meaningful line
		for _, n := range lines[i+1:] {
			t := strings.TrimSpace(n)
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			nm := anyLine.FindStringSubmatch(n)
			if nm == nil {
				break
			}
			d := len(nm[1]) - len(m[1])
			if nm[2] != "" {
				if !foundSeq {
					compact, foundSeq = d == 0, true
				}
			} else if d > 0 && !foundIndent {
				indent, foundIndent = d, true
			}
			break
		}
		if foundIndent && foundSeq {
			break
		}
	}
	return indent, compact
}
