package remedy

import (
	"github.com/archfit/archfit/internal/object"

	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// editYAML applies the add operations of a JSON patch to the document of
// src that holds obj, at the node level, so that comments, key order,
// quoting and the other documents of the file are kept.
func editYAML(src []byte, obj object.Ref, ops []Operation) ([]byte, error) {
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
	var target *yaml.Node
	for _, d := range docs {
		if len(d.Content) == 1 && matches(d.Content[0], obj) {
			target = d.Content[0]
			break
		}
	}
	if target == nil {
		return nil, fmt.Errorf("the source YAML has no %s", obj)
	}
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

func matches(n *yaml.Node, obj object.Ref) bool {
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
		if m == nil {
			return ""
		}
		return m.Value
	}
	meta := get(n, "metadata")
	if val(get(n, "kind")) != obj.Kind || val(get(meta, "name")) != obj.Name {
		return false
	}
	ns := val(get(meta, "namespace"))
	return ns == "" || ns == obj.Namespace
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
