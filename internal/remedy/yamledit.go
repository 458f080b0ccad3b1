package remedy

import (
	"github.com/archfit/archfit/internal/object"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// editSource applies the add operations of a JSON patch to the document of
// src that is obj (SourceOf; a document without namespace is in defaultNS),
// changing only the lines of the change: YAML as a text splice checked by
// parsing the result again, JSON as JSON. found is the Source FindSource
// returned, if any, to skip finding it again. note is set when the splice could
// not be proven right and the document was re-encoded whole instead.
func editSource(src []byte, obj object.Ref, defaultNS string, found *Source, ops []Operation) (out []byte, note string, err error) {
	s := found
	if s == nil || s.ref != obj || s.namespace != defaultNS || !bytes.Equal(s.Data, src) {
		if s, err = SourceOf("", src, obj, defaultNS); err != nil {
			return nil, "", err
		}
	}
	if s == nil {
		return nil, "", fmt.Errorf("the source has no %s", obj)
	}
	if s.JSON {
		return editJSON(s, ops)
	}
	return editYAML(s, ops)
}

// maxYAMLDocs bounds the documents of a source file.
const maxYAMLDocs = 100000

func parseDocs(src []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var docs []*yaml.Node
	for {
		var d yaml.Node
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(docs) == maxYAMLDocs {
			return nil, fmt.Errorf("more than %d documents", maxYAMLDocs)
		}
		docs = append(docs, &d)
	}
}

// editYAML edits the document s.Index of s.Data. The intended document is
// the parsed one with the operations applied (addNode); the text is then
// changed only where the operations land, inside the document's lines
// (splice), and that document is parsed again: it must decode as the
// intended one. When that cannot be proven, only the target document is
// re-encoded from the intended tree (comments kept, formatting not), the
// whole file checked, and the note says so.
func editYAML(s *Source, ops []Operation) ([]byte, string, error) {
	src := s.Data
	orig := s.docs
	if orig == nil {
		var err error
		if orig, err = parseDocs(src); err != nil {
			return nil, "", fmt.Errorf("reading the source YAML: %w", err)
		}
	}
	if s.Index >= len(orig) || len(orig[s.Index].Content) != 1 {
		return nil, "", fmt.Errorf("the source YAML has no document %d", s.Index)
	}
	want := copyNode(orig[s.Index])
	target := want.Content[0]
	var adds []Operation
	for _, o := range ops {
		if o.Op != "add" {
			continue
		}
		if err := addNode(target, o.Path, o.Value); err != nil {
			return nil, "", fmt.Errorf("editing the source YAML at %s: %w", o.Path, err)
		}
		adds = append(adds, o)
	}
	f := newTextFile(src)
	out, reason := f.splice(orig[s.Index], want, adds)
	if reason == nil {
		return out, "", nil
	}
	out, err := f.reencode(orig[s.Index], want)
	if err != nil {
		return nil, "", fmt.Errorf("editing the source YAML: %v; re-encoding the document: %w", reason, err)
	}
	if err := sameDocs(out, orig, s.Index, want); err != nil {
		return nil, "", fmt.Errorf("editing the source YAML: %v; re-encoding the document: %w", reason, err)
	}
	return out, fmt.Sprintf("the document at line %d could not be edited line by line (%v): it was re-encoded whole (comments kept, formatting not); the other documents are unchanged", s.Line, reason), nil
}

// copyNode is a deep copy of a node tree (an alias still points to its
// anchor in the original).
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = copyNode(ch)
	}
	return &c
}

// sameDocs checks an edited file: as many documents, each decoding to the
// same value as before, but the target, which decodes as want.
func sameDocs(out []byte, orig []*yaml.Node, index int, want *yaml.Node) error {
	got, err := parseDocs(out)
	if err != nil {
		return fmt.Errorf("the edited text does not parse: %w", err)
	}
	if len(got) != len(orig) {
		return fmt.Errorf("the edited text has %d documents, not %d", len(got), len(orig))
	}
	for i := range got {
		w := orig[i]
		if i == index {
			w = want
		}
		var a, b any
		errA, errB := w.Decode(&a), got[i].Decode(&b)
		if (errA == nil) != (errB == nil) || !reflect.DeepEqual(a, b) {
			return fmt.Errorf("document %d does not read as intended after the edit", i+1)
		}
	}
	return nil
}

// textFile is the source as lines: a YAML line/column is found by
// position, without parsing again.
type textFile struct {
	data  []byte
	start []int // byte offset of each line; a last entry len(data) past the end
}

func newTextFile(data []byte) *textFile {
	f := &textFile{data: data, start: []int{0}}
	for i, c := range data {
		if c == '\n' {
			f.start = append(f.start, i+1)
		}
	}
	if f.start[len(f.start)-1] != len(data) {
		f.start = append(f.start, len(data))
	}
	return f
}

func (f *textFile) lines() int { return len(f.start) - 1 }

// text is line i (0-based) without its line break.
func (f *textFile) text(i int) []byte {
	l := f.data[f.start[i]:f.start[i+1]]
	l = bytes.TrimSuffix(l, []byte("\n"))
	return bytes.TrimSuffix(l, []byte("\r"))
}

// eol is the line break of line i, "" for a last line without one.
func (f *textFile) eol(i int) string {
	l := f.data[f.start[i]:f.start[i+1]]
	switch {
	case bytes.HasSuffix(l, []byte("\r\n")):
		return "\r\n"
	case bytes.HasSuffix(l, []byte("\n")):
		return "\n"
	}
	return ""
}

// offset is the byte offset of a node's position (1-based line, column in
// characters, as yaml.v3 counts them).
func (f *textFile) offset(n *yaml.Node) (int, error) {
	line := n.Line - 1
	if line < 0 || line >= f.lines() {
		return 0, fmt.Errorf("line %d is outside the file", n.Line)
	}
	t := f.text(line)
	off := 0
	if line == 0 {
		off = len(bomPrefix(t)) // the BOM is no column
		t = t[off:]
	}
	for col := 1; col < n.Column; col++ {
		if len(t) == 0 {
			return 0, fmt.Errorf("column %d is past the end of line %d", n.Column, n.Line)
		}
		_, size := utf8.DecodeRune(t)
		t, off = t[size:], off+size
	}
	return f.start[line] + off, nil
}

func bomPrefix(b []byte) []byte {
	if bytes.HasPrefix(b, []byte("\ufeff")) {
		return b[:3]
	}
	return nil
}

// blockColumn is the byte column of a node that starts a block line: what
// precedes it on its line must be indentation and sequence dashes only.
func (f *textFile) blockColumn(n *yaml.Node) (int, error) {
	off, err := f.offset(n)
	if err != nil {
		return 0, err
	}
	line := n.Line - 1
	pre := f.data[f.start[line]:off]
	pre = pre[len(bomPrefix(pre)):]
	if strings.Trim(string(pre), " -") != "" || strings.Contains(string(pre), "--") {
		return 0, fmt.Errorf("line %d: %q precedes the node", n.Line, pre)
	}
	return off - f.start[line], nil
}

func indentOf(l []byte) int { return len(l) - len(bytes.TrimLeft(l, " ")) }

func isDash(l []byte) bool {
	t := bytes.TrimLeft(l, " ")
	return len(t) > 0 && t[0] == '-' && (len(t) == 1 || t[1] == ' ')
}

// isMarker: a document start or end marker line.
func isMarker(l []byte) bool {
	for _, m := range [][]byte{[]byte("---"), []byte("...")} {
		if bytes.HasPrefix(l, m) && (len(l) == 3 || l[3] == ' ' || l[3] == '\t') {
			return true
		}
	}
	return false
}

// lastLine is the last line of the node that starts on line from: the
// following lines belong to it while in says so of their indentation.
// Blank and comment lines belong to nothing; a document marker ends it.
func (f *textFile) lastLine(from int, in func(indent int, l []byte) bool) int {
	last := from
	for i := from + 1; i < f.lines(); i++ {
		l := f.text(i)
		t := bytes.TrimLeft(l, " ")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if isMarker(l) || !in(indentOf(l), l) {
			break
		}
		last = i
	}
	return last
}

// splicer collects the text edits of one document.
type splicer struct {
	f     *textFile
	st    style
	edits []textEdit
	depth int // of the parent of the operation being spliced
}

type textEdit struct {
	start, end int // bytes of the original replaced (start == end: an insertion)
	text       string
	// depth of the node an insertion goes into: at one place, the deeper
	// goes first (an item closes its list before the next key of the
	// mapping the list is in); at one depth, the order of the operations.
	depth int
}

// splice computes the text edits of the add operations on the document
// orig (positions) whose intended result is edited, and applies them. An
// error says why the edit cannot be made as a splice.
func (f *textFile) splice(orig, edited *yaml.Node, adds []Operation) ([]byte, error) {
	if bytes.ContainsAny(f.data, "\u0085\u2028\u2029") || bytes.Contains(bytes.ReplaceAll(f.data, []byte("\r\n"), nil), []byte("\r")) {
		return nil, errors.New("the file has line breaks other than LF and CRLF")
	}
	first, end := f.docRange(orig)
	sp := &splicer{f: f, st: detectStyle(f.data[f.start[first]:f.start[end]])}
	sp.st.quote = quotesStrings(orig)
	root, want := orig.Content[0], edited.Content[0]
	for _, o := range adds {
		if err := sp.add(root, want, splitPointer(o.Path), o.Value); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Path, err)
		}
	}
	sort.SliceStable(sp.edits, func(i, j int) bool {
		a, b := sp.edits[i], sp.edits[j]
		if a.start != b.start {
			return a.start < b.start
		}
		return a.depth > b.depth
	})
	var kept []textEdit
	for _, e := range sp.edits {
		if e.start < f.start[first] || e.end > f.start[end] {
			return nil, errors.New("an edit falls outside the document")
		}
		if n := len(kept); n > 0 {
			p := kept[n-1]
			if p.start == e.start && p.end == e.end && p.end > p.start {
				if p.text != e.text {
					return nil, errors.New("two edits replace the same text differently")
				}
				continue // the same replacement of a flow parent, from two operations
			}
			if e.start < p.end {
				return nil, errors.New("edits overlap")
			}
		}
		kept = append(kept, e)
	}
	var out bytes.Buffer
	out.Grow(len(f.data) + 1024)
	at := 0
	for _, e := range kept {
		if strings.Contains(e.text, "\n---") || strings.Contains(e.text, "\n...") {
			return nil, errors.New("an edit would start a document")
		}
		out.Write(f.data[at:e.start])
		out.WriteString(e.text)
		at = e.end
	}
	out.Write(f.data[at:])
	// The bytes around the document's lines are the same: reading the
	// document's new lines alone proves the edit.
	docStart, docEnd := f.start[first], out.Len()-(len(f.data)-f.start[end])
	got, err := parseDocs(out.Bytes()[docStart:docEnd])
	switch {
	case err != nil:
		return nil, fmt.Errorf("the edited document does not parse: %w", err)
	case len(got) != 1:
		return nil, fmt.Errorf("the edited document reads as %d documents", len(got))
	}
	var a, b any
	if err := edited.Decode(&a); err != nil {
		return nil, err
	}
	if err := got[0].Decode(&b); err != nil || !reflect.DeepEqual(a, b) {
		return nil, errors.New("the edited document does not read as intended")
	}
	return out.Bytes(), nil
}

// docRange is the lines [first, end) of the document whose root is doc's:
// from after the previous marker line to the next one (or the file's ends).
func (f *textFile) docRange(doc *yaml.Node) (first, end int) {
	root := doc.Content[0].Line - 1
	first, end = 0, f.lines()
	for i := root; i >= 0; i-- {
		if isMarker(f.text(i)) {
			first = i + 1
			break
		}
	}
	if first > root { // `--- value` on the marker line
		first = root
	}
	for i := root + 1; i < f.lines(); i++ {
		if isMarker(f.text(i)) {
			end = i
			break
		}
	}
	return first, end
}

func splitPointer(p string) []string {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(parts[i], "~1", "/"), "~0", "~")
	}
	return parts
}

func resolve(n *yaml.Node, parts []string) (*yaml.Node, error) {
	for _, p := range parts {
		next, err := child(n, p)
		if err != nil {
			return nil, err
		}
		n = next
	}
	return n, nil
}

func isBlock(n *yaml.Node) bool {
	return (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && n.Style&yaml.FlowStyle == 0 && n.Anchor == "" && len(n.Content) > 0
}

// add is one operation: a key appended to a block mapping, an item to a
// block sequence, or an existing key's value replaced. A parent in flow
// style (`affinity: {}`, `tolerations: []`) is replaced whole, at the
// nearest key of a block mapping above it, by its intended value.
func (sp *splicer) add(root, want *yaml.Node, parts []string, value []byte) error {
	v, err := jsonToNode(value)
	if err != nil {
		return err
	}
	parent, err := resolve(root, parts[:len(parts)-1])
	if err != nil {
		return err
	}
	last := parts[len(parts)-1]
	sp.depth = len(parts) - 1
	if isBlock(parent) {
		switch parent.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(parent.Content); i += 2 {
				if parent.Content[i].Value == last {
					return sp.replaceValue(parent, i, v)
				}
			}
			return sp.appendKey(parent, last, v)
		case yaml.SequenceNode:
			if last != "-" {
				return errors.New("only appending to a sequence is spliced")
			}
			return sp.appendItem(parent, v)
		}
	}
	// Go up to a key of a block mapping and replace its value.
	for k := len(parts) - 1; k >= 1; k-- {
		above, err := resolve(root, parts[:k-1])
		if err != nil {
			return err
		}
		if !isBlock(above) || above.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(above.Content); i += 2 {
			if above.Content[i].Value == parts[k-1] {
				w, err := resolve(want, parts[:k])
				if err != nil {
					return err
				}
				return sp.replaceValue(above, i, w)
			}
		}
		return fmt.Errorf("no field %q", parts[k-1])
	}
	return errors.New("no block mapping above the change")
}

// local is the document's style, with the indentation of m's own block
// children where it shows it (files that mix styles are written in the
// style of the place the lines go).
func (sp *splicer) local(m *yaml.Node) style {
	st := sp.st
	if m.Kind != yaml.MappingNode {
		return st
	}
	seen := map[bool]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if !isBlock(v) || len(v.Content) == 0 || seen[v.Kind == yaml.SequenceNode] {
			continue
		}
		kc, err := sp.f.blockColumn(k)
		if err != nil {
			continue
		}
		var vc int
		if v.Kind == yaml.SequenceNode {
			vc, err = sp.f.blockColumn(v)
		} else {
			vc, err = sp.f.blockColumn(v.Content[0])
		}
		if err != nil || v.Line == k.Line {
			continue
		}
		switch d := vc - kc; {
		case v.Kind == yaml.SequenceNode && d >= 0 && d <= 8:
			st.seqOffset = d
		case v.Kind == yaml.MappingNode && d > 0 && d <= 8:
			st.indent = d
		default:
			continue
		}
		seen[v.Kind == yaml.SequenceNode] = true
	}
	return st
}

// insertAfter inserts lines (already indented) after line i.
func (sp *splicer) insertAfter(i int, lines []string) {
	f := sp.f
	eol := f.eol(i)
	at := f.start[i+1]
	prefix := ""
	if eol == "" { // the last line of the file has no line break
		eol = sp.docEOL()
		prefix = eol
	}
	text := prefix + strings.Join(lines, eol) + eol
	if prefix != "" {
		text = strings.TrimSuffix(text, eol)
	}
	sp.edits = append(sp.edits, textEdit{start: at, end: at, text: text, depth: sp.depth})
}

func (sp *splicer) docEOL() string {
	if bytes.Contains(sp.f.data, []byte("\r\n")) {
		return "\r\n"
	}
	return "\n"
}

func indentLines(lines []string, n int) []string {
	pad := strings.Repeat(" ", n)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = pad + l
	}
	return out
}

// appendKey adds key: v after the last line of the block mapping m.
func (sp *splicer) appendKey(m *yaml.Node, key string, v *yaml.Node) error {
	col, err := sp.f.blockColumn(m.Content[0])
	if err != nil {
		return err
	}
	lastKey := m.Content[len(m.Content)-2]
	end := sp.f.lastLine(lastKey.Line-1, func(indent int, _ []byte) bool { return indent >= col })
	sp.insertAfter(end, indentLines(sp.local(m).entry(key, v), col))
	return nil
}

// appendItem adds - v after the last line of the block sequence s.
func (sp *splicer) appendItem(s *yaml.Node, v *yaml.Node) error {
	col, err := sp.f.blockColumn(s)
	if err != nil {
		return err
	}
	lastItem := s.Content[len(s.Content)-1]
	end := sp.f.lastLine(lastItem.Line-1, func(indent int, l []byte) bool {
		return indent > col || indent == col && isDash(l)
	})
	st := sp.st
	if last := s.Content[len(s.Content)-1]; last.Kind == yaml.MappingNode {
		st = sp.local(last)
	}
	sp.insertAfter(end, indentLines(st.item(v), col))
	return nil
}

// replaceValue replaces the value of m's key i (from the key to the end of
// its value's last line) with v.
func (sp *splicer) replaceValue(m *yaml.Node, i int, v *yaml.Node) error {
	k, old := m.Content[i], m.Content[i+1]
	if old.Kind == yaml.AliasNode || old.Anchor != "" || k.Kind != yaml.ScalarNode {
		return errors.New("the value replaced is an alias or anchor")
	}
	col, err := sp.f.blockColumn(k)
	if err != nil {
		return err
	}
	seq := old.Kind == yaml.SequenceNode && old.Style&yaml.FlowStyle == 0
	end := sp.f.lastLine(k.Line-1, func(indent int, l []byte) bool {
		return indent > col || seq && indent == col && isDash(l)
	})
	start, err := sp.f.offset(k)
	if err != nil {
		return err
	}
	lines := sp.local(m).entry(k.Value, v)
	// A comment on the key's line stays on it.
	if c := lineComment(k, old); c != "" && bytes.Contains(sp.f.text(k.Line-1), []byte(c)) {
		lines[0] += " " + c
	}
	eol := sp.f.eol(end)
	if eol == "" {
		eol = sp.docEOL()
	}
	text := lines[0]
	if len(lines) > 1 {
		text += eol + strings.Join(indentLines(lines[1:], col), eol)
	}
	lineEnd := sp.f.start[end] + len(sp.f.text(end))
	sp.edits = append(sp.edits, textEdit{start: start, end: lineEnd, text: text, depth: sp.depth})
	return nil
}

func lineComment(k, v *yaml.Node) string {
	for _, c := range []string{v.LineComment, k.LineComment} {
		if c != "" && !strings.Contains(c, "\n") {
			return c
		}
	}
	return ""
}

// style is how a document is written: the width of a nested mapping, the
// offset of a sequence's dashes from its key (0: kubectl's `key:\n- a`),
// and whether its string values are mostly double-quoted (Helm output).
type style struct {
	indent, seqOffset int
	quote             bool
}

// quotesStrings says whether most string values of a document (not keys)
// are double-quoted.
func quotesStrings(n *yaml.Node) bool {
	quoted, plain := 0, 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i])
			}
		case yaml.SequenceNode, yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.ScalarNode:
			switch {
			case n.Tag != "!!str":
			case n.Style&yaml.DoubleQuotedStyle != 0:
				quoted++
			case n.Style == 0:
				plain++
			}
		}
	}
	walk(n)
	return quoted > plain
}

var (
	keyLine = regexp.MustCompile(`^( *)(- )?[^ #-][^:]*:\s*(#.*)?$`)
	anyLine = regexp.MustCompile(`^( *)(- )?\S`)
)

// detectStyle finds the indent width and sequence offset most used in src,
// each a vote of a `key:` line and the next line under it.
func detectStyle(src []byte) style {
	lines := strings.Split(string(src), "\n")
	indents, offsets := map[int]int{}, map[int]int{}
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		m := keyLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		keyCol := len(m[1]) + len(m[2])
		for _, n := range lines[i+1:] {
			t := strings.TrimSpace(n)
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			nm := anyLine.FindStringSubmatch(n)
			if nm == nil {
				break
			}
			d := len(nm[1]) - keyCol
			switch {
			case nm[2] != "" && d >= 0 && d <= 8:
				offsets[d]++
			case nm[2] == "" && d > 0 && d <= 8:
				indents[d]++
			}
			break
		}
	}
	st := style{indent: vote(indents, 2), seqOffset: vote(offsets, -1)}
	if st.seqOffset < 0 {
		st.seqOffset = 0 // kubectl's and the API's own style
	}
	return st
}

// vote is the most frequent key (the smaller on a tie), def if none.
func vote(counts map[int]int, def int) int {
	best, n := def, 0
	for k, c := range counts {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// entry renders key: v as block lines at indentation 0.
func (st style) entry(key string, v *yaml.Node) []string {
	k := scalarText(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key})
	inline, lines := st.block(v)
	if lines == nil {
		return []string{k + ": " + inline}
	}
	off := st.indent
	if v.Kind == yaml.SequenceNode {
		off = st.seqOffset
	}
	return append([]string{k + ":"}, indentLines(lines, off)...)
}

// item renders - v as block lines at indentation 0.
func (st style) item(v *yaml.Node) []string {
	inline, lines := st.block(v)
	if lines == nil {
		return []string{"- " + inline}
	}
	out := []string{"- " + lines[0]}
	return append(out, indentLines(lines[1:], 2)...)
}

// block renders v: inline text for a scalar or an empty collection, else
// its lines at indentation 0.
func (st style) block(v *yaml.Node) (string, []string) {
	switch v.Kind {
	case yaml.MappingNode:
		if len(v.Content) == 0 {
			return "{}", nil
		}
		var out []string
		for i := 0; i+1 < len(v.Content); i += 2 {
			out = append(out, st.entry(v.Content[i].Value, v.Content[i+1])...)
		}
		return "", out
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			return "[]", nil
		}
		var out []string
		for _, c := range v.Content {
			out = append(out, st.item(c)...)
		}
		return "", out
	}
	if st.quote && v.Tag == "!!str" {
		b, _ := json.Marshal(v.Value)
		return string(b), nil
	}
	return scalarText(v), nil
}

// scalarText is a scalar as written in a block: plain when it reads back
// as the same string, else double-quoted (a JSON string is a valid YAML
// double-quoted one).
func scalarText(n *yaml.Node) string {
	if n.Tag != "!!str" {
		return n.Value
	}
	if n.Value != "" && !strings.ContainsAny(n.Value, "\n\r\t\"'") && !needsQuotes(n.Value) {
		return n.Value
	}
	b, _ := json.Marshal(n.Value)
	return string(b)
}

// reencode replaces the lines of document orig by the encoding of edited,
// in the document's indentation and line breaks.
func (f *textFile) reencode(orig, edited *yaml.Node) ([]byte, error) {
	first, end := f.docRange(orig)
	st := detectStyle(f.data[f.start[first]:f.start[end]])
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(st.indent)
	if st.seqOffset == 0 {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(edited); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	text := buf.Bytes()
	if end > first && f.eol(end-1) == "\r\n" {
		text = bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))
	}
	start := f.start[first]
	if first == 0 {
		start += len(bomPrefix(f.data)) // keep the BOM
	}
	out := make([]byte, 0, len(f.data)+len(text))
	out = append(out, f.data[:start]...)
	out = append(out, text...)
	return append(out, f.data[f.start[end]:]...), nil
}

// addNode performs an RFC 6902 add of a JSON value at a JSON pointer.
func addNode(root *yaml.Node, path string, value []byte) error {
	v, err := jsonToNode(value)
	if err != nil {
		return err
	}
	parts := splitPointer(path)
	parent, err := resolve(root, parts[:len(parts)-1])
	if err != nil {
		return err
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
