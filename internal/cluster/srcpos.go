package cluster

import (
	"bytes"
	"encoding/json"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// Where objects read from files are: the file as given and 1-based lines,
// so findings can point an editor at the container's "image:" line.
//
// The lines are found by scanning the text each object was decoded from
// for "image" keys, which costs one pass over text already in memory. Only
// when a container's image appears on no such line or on several (the same
// image in an init and a main container) is that one object parsed again,
// as yaml.v3 nodes, to match image and container name exactly.

// srcText is the text one object was decoded from.
type srcText struct {
	line int // file line of text's first byte
	text []byte
	json bool
}

// loc is where one object was read.
type loc struct {
	file string
	line int
	// images maps a container name to the line of its image value.
	images map[string]int
}

// imageKey is an "image" key's value and its line relative to the text (1-based).
type imageKey struct {
	value []byte // a slice of the text when it needs no unquoting
	line  int
}

// placement is where, in the text an object was read from, the object
// and its containers' images are: lines relative to the text (1-based).
type placement struct {
	first  int            // the object's own line, when not the text's first (YAML comments)
	images map[string]int // a container's name -> its image's line; nil without containers
}

// record notes where the object kind/ns/name came from (c.cur), with the
// lines of the images of its containers. pre is its placement when found
// already (by the goroutine that decoded it), else nil.
func (c *collector) record(key string, cs []nameImage, pre *placement) {
	if c.source == "" || c.cur.line == 0 {
		return
	}
	var p placement
	switch {
	case pre != nil:
		p = *pre
	case c.cur.text != nil:
		p = placeIn(c.cur.text, c.cur.json, cs)
	}
	l := &loc{file: c.source, line: c.cur.line, images: p.images}
	if p.first > 0 {
		l.line = c.cur.line + p.first - 1
	}
	for name, n := range l.images {
		l.images[name] = c.cur.line + n - 1
	}
	if c.in.locs == nil {
		c.in.locs = map[string]*loc{}
	}
	c.in.locs[key] = l
}

// placeIn finds where text (JSON or a YAML document) sets the images of
// the containers cs. It only reads text.
func placeIn(text []byte, isJSON bool, cs []nameImage) placement {
	var p placement
	var keys []imageKey
	if isJSON {
		keys = jsonImageKeys(text)
	} else {
		keys, p.first = yamlImageKeys(text)
	}
	if len(cs) == 0 {
		return p
	}
	p.images = make(map[string]int, len(cs))
	var buf [4]int
	var exact map[string]int // name+"\x00"+image -> line, parsed on demand
	var lines [][]byte       // split on demand
	var taken map[string]int // image -> lines given in order
	for _, ct := range cs {
		ls := buf[:0] // the lines setting this image
		for _, k := range keys {
			if string(k.value) == ct.Image {
				ls = append(ls, k.line)
			}
		}
		if len(ls) > 0 && (len(ls) == 1 || ls[0] == ls[len(ls)-1]) {
			p.images[ct.Name] = ls[0] // one line, or minified JSON
			continue
		}
		if len(ls) > 1 {
			if lines == nil {
				lines = bytes.Split(text, []byte("\n"))
			}
			if n := siblingMatch(lines, ls, ct.Name); n > 0 {
				p.images[ct.Name] = n
				continue
			}
		}
		if exact == nil {
			exact = nodeImageLines(text)
		}
		if n := exact[ct.Name+"\x00"+ct.Image]; n > 0 {
			p.images[ct.Name] = n
			continue
		}
		// A custom resource's containers may have no name key
		// (Argo Workflows' "TEMPLATE/script"): the k-th of them with
		// this image is put on the k-th line setting it, as they are
		// found in the order of the text.
		if k := taken[ct.Image]; k < len(ls) {
			p.images[ct.Name] = ls[k]
		}
		if taken == nil {
			taken = map[string]int{}
		}
		taken[ct.Image]++
	}
	return p
}

// nameImage is a container's name and image.
type nameImage struct{ Name, Image string }

// podContainers lists a pod spec's containers of every kind.
func podContainers(s *corev1.PodSpec) []nameImage {
	out := make([]nameImage, 0, len(s.InitContainers)+len(s.Containers)+len(s.EphemeralContainers))
	for _, c := range s.InitContainers {
		out = append(out, nameImage{c.Name, c.Image})
	}
	for _, c := range s.Containers {
		out = append(out, nameImage{c.Name, c.Image})
	}
	for _, e := range s.EphemeralContainers {
		out = append(out, nameImage{e.Name, e.Image})
	}
	return out
}

// yamlImageKeys finds block-style "image: value" lines, and the first line
// that is neither blank nor a comment (the object's own line).
func yamlImageKeys(text []byte) (keys []imageKey, first int) {
	n := 0
	for len(text) > 0 {
		n++
		l := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			l, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		t := bytes.TrimSpace(l)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if first == 0 {
			first = n
		}
		for len(t) > 1 && t[0] == '-' && (t[1] == ' ' || t[1] == '\t') {
			t = bytes.TrimLeft(t[1:], " \t")
		}
		var rest []byte
		var ok bool
		for _, p := range []string{"image:", `"image":`, `'image':`} {
			if rest, ok = bytes.CutPrefix(t, []byte(p)); ok {
				break
			}
		}
		if !ok || (len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		if v, ok := yamlScalar(bytes.TrimSpace(rest)); ok {
			keys = append(keys, imageKey{value: v, line: n})
		}
	}
	return keys, first
}

// yamlScalar reads a one-line plain, single- or double-quoted scalar.
func yamlScalar(v []byte) ([]byte, bool) {
	if len(v) == 0 {
		return nil, false
	}
	switch v[0] {
	case '"':
		end := 1
		for end < len(v) && v[end] != '"' {
			if v[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(v) {
			return nil, false
		}
		return jsonString(v[:end+1])
	case '\'':
		s := string(v[1:])
		i := strings.Index(strings.ReplaceAll(s, "''", "\x00\x00"), "'")
		if i < 0 {
			return nil, false
		}
		return []byte(strings.ReplaceAll(s[:i], "''", "'")), true
	case '|', '>', '&', '*', '!', '{', '[':
		return nil, false
	}
	if i := bytes.Index(v, []byte(" #")); i >= 0 {
		v = bytes.TrimRight(v[:i], " \t")
	}
	return v, true
}

// jsonImageKeys finds `"image": "value"` pairs in JSON text.
func jsonImageKeys(text []byte) []imageKey {
	var keys []imageKey
	line, counted := 1, 0
	for off := 0; ; {
		i := bytes.Index(text[off:], []byte(`"image"`))
		if i < 0 {
			return keys
		}
		p := off + i + len(`"image"`)
		off = p
		p = skipSpace(text, p)
		if p >= len(text) || text[p] != ':' {
			continue
		}
		p = skipSpace(text, p+1)
		if p >= len(text) || text[p] != '"' {
			continue
		}
		end := p + 1
		for end < len(text) && text[end] != '"' {
			if text[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(text) {
			return keys
		}
		s, ok := jsonString(text[p : end+1])
		if !ok {
			continue
		}
		line += bytes.Count(text[counted:p], []byte("\n"))
		counted = p
		keys = append(keys, imageKey{value: s, line: line})
		off = end + 1
	}
}

func skipSpace(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t' || b[p] == '\r' || b[p] == '\n') {
		p++
	}
	return p
}

// nodeImageLines parses text (YAML or JSON, one object already within
// MaxObjectBytes) and maps name+"\x00"+image of every mapping holding both
// keys to the line of its image value. A text that does not parse alone
// (an alias to an anchor in another List item) gives an empty map.
func nodeImageLines(text []byte) map[string]int {
	out := map[string]int{}
	var doc yamlv3.Node
	if yamlv3.Unmarshal(text, &doc) != nil {
		return out
	}
	var walk func(n *yamlv3.Node, depth int)
	walk = func(n *yamlv3.Node, depth int) {
		if depth > 100 {
			return
		}
		if n.Kind == yamlv3.MappingNode {
			var name, image *yamlv3.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				switch k, v := n.Content[i], n.Content[i+1]; {
				case k.Value == "name" && v.Kind == yamlv3.ScalarNode:
					name = v
				case k.Value == "image" && v.Kind == yamlv3.ScalarNode:
					image = v
				}
			}
			if name != nil && image != nil {
				k := name.Value + "\x00" + image.Value
				if _, dup := out[k]; !dup {
					out[k] = image.Line
				}
			}
		}
		for _, ch := range n.Content {
			walk(ch, depth+1)
		}
	}
	walk(&doc, 0)
	return out
}

// locate sets where the workload and its containers were read, when its
// own object was in a file.
func (w *Workload) locate(locs map[string]*loc) {
	if w.Inferred != "" && w.Kind != KindPod {
		return
	}
	l := locs[w.Kind+"/"+w.Namespace+"/"+w.Name]
	if l == nil {
		return
	}
	w.File, w.Line = l.file, l.line
	for i := range w.Containers {
		if !w.Containers[i].Injected {
			w.Containers[i].Line = l.images[w.Containers[i].Name]
		}
	}
}

// Position returns where the named container's image is set, else where
// the workload is: the file as given and a 1-based line (0 if unknown).
// The file is "" when the workload was not read from a file.
func (w *Workload) Position(container string) (string, int) {
	if c := w.Container(container); c != nil && c.Line > 0 {
		return w.File, c.Line
	}
	return w.File, w.Line
}

// siblingMatch returns the first of the candidate lines (1-based) whose
// mapping has a "name" key equal to name, looking at the keys in the same
// column above and below it (block YAML, indented JSON); 0 if none.
func siblingMatch(lines [][]byte, candidates []int, name string) int {
	for _, n := range candidates {
		col, _ := keyColumn(lines[n-1])
		for _, dir := range []int{-1, 1} {
			for i := n - 1 + dir; i >= 0 && i < len(lines); i += dir {
				c, kv := keyColumn(lines[i])
				if c < 0 || c > col {
					continue // blank, comment, or deeper
				}
				if c < col {
					break
				}
				if v, ok := keyValue(kv, "name"); ok && v == name {
					return n
				}
				if item := bytes.TrimLeft(lines[i], " "); len(item) > 1 && item[0] == '-' && item[1] == ' ' {
					break // the start of this item (above) or the next one (below)
				}
			}
		}
	}
	return 0
}

// keyColumn returns the column of a line's key after any "- ", and the
// text from there; -1 for a blank or comment line.
func keyColumn(l []byte) (int, []byte) {
	t := bytes.TrimLeft(l, " ")
	col := len(l) - len(t)
	for len(t) > 1 && t[0] == '-' && t[1] == ' ' {
		t2 := bytes.TrimLeft(t[1:], " ")
		col += len(t) - len(t2)
		t = t2
	}
	if len(bytes.TrimSpace(t)) == 0 || t[0] == '#' {
		return -1, nil
	}
	return col, t
}

// keyValue reads "key: value" or `"key": "value"`.
func keyValue(kv []byte, key string) (string, bool) {
	for _, p := range []string{key + ":", `"` + key + `":`, `'` + key + `':`} {
		if rest, ok := bytes.CutPrefix(kv, []byte(p)); ok {
			v, ok := yamlScalar(bytes.TrimSpace(rest))
			return string(v), ok
		}
	}
	return "", false
}

// jsonString decodes a quoted JSON string, without the decoder when it
// has no escape.
func jsonString(q []byte) ([]byte, bool) {
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1], true
	}
	var s string
	if json.Unmarshal(q, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}
