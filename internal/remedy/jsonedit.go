package remedy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// editJSON applies the patch to the JSON value of s and puts it back in
// place. The add operations are spliced into the text (a member appended
// after an object's last one, an item after an array's last one, a value
// replaced where it is), in the value's own indentation and line breaks,
// so every other byte stays; the result must decode as the patched value.
// A value the splice cannot handle (a one-line object, an empty parent) is
// re-encoded whole, its key order and indentation kept, and note says so.
func editJSON(s *Source, ops []Operation) (out []byte, note string, err error) {
	value := s.Data[s.start:s.end]
	p, err := json.Marshal(ops)
	if err != nil {
		return nil, "", err
	}
	patch, err := jsonpatch.DecodePatch(p)
	if err != nil {
		return nil, "", err
	}
	want, err := patch.Apply(value)
	if err != nil {
		return nil, "", fmt.Errorf("editing the source JSON: %w", err)
	}
	edited, reason := spliceJSON(value, ops)
	if reason == nil {
		var a, b any
		if json.Unmarshal(want, &a) != nil || json.Unmarshal(edited, &b) != nil || !reflect.DeepEqual(a, b) {
			reason = errors.New("the edited value does not read as intended")
		}
	}
	if reason != nil {
		if indent := jsonIndent(value); indent == "" {
			edited = want
		} else if edited, err = patch.ApplyIndent(value, indent); err != nil {
			return nil, "", fmt.Errorf("editing the source JSON: %w", err)
		}
		note = fmt.Sprintf("the value at line %d could not be edited line by line (%v): it was re-encoded whole (key order and indentation kept); the other values are unchanged", s.Line, reason)
	}
	out = make([]byte, 0, len(s.Data)+len(edited)-len(value))
	out = append(out, s.Data[:s.start]...)
	out = append(out, edited...)
	return append(out, s.Data[s.end:]...), note, nil
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

// jspan is where a JSON value is in its text.
type jspan struct {
	start, end int // the value's bytes
	obj, arr   bool
	keys       []string
	keyStart   []int // object: where each member's key starts
	kids       []*jspan
}

const maxJSONDepth = 1000

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanJSON reads the spans of the valid JSON value at b[i:].
func scanJSON(b []byte, i, depth int) (*jspan, int, error) {
	if depth > maxJSONDepth {
		return nil, 0, errors.New("nested too deep")
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return nil, 0, errors.New("unexpected end")
	}
	sp := &jspan{start: i}
	switch b[i] {
	case '{', '[':
		sp.obj, sp.arr = b[i] == '{', b[i] == '['
		closer := map[bool]byte{true: '}', false: ']'}[sp.obj]
		i = skipSpace(b, i+1)
		for i < len(b) && b[i] != closer {
			if len(sp.kids) > 0 {
				if b[i] != ',' {
					return nil, 0, fmt.Errorf("offset %d: want ','", i)
				}
				i = skipSpace(b, i+1)
			}
			if sp.obj {
				ks, ke, err := scanString(b, i)
				if err != nil {
					return nil, 0, err
				}
				var key string
				if err := json.Unmarshal(b[ks:ke], &key); err != nil {
					return nil, 0, err
				}
				sp.keys, sp.keyStart = append(sp.keys, key), append(sp.keyStart, ks)
				i = skipSpace(b, ke)
				if i >= len(b) || b[i] != ':' {
					return nil, 0, fmt.Errorf("offset %d: want ':'", i)
				}
				i++
			}
			kid, next, err := scanJSON(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			sp.kids = append(sp.kids, kid)
			i = skipSpace(b, next)
		}
		if i >= len(b) {
			return nil, 0, errors.New("unexpected end")
		}
		sp.end = i + 1
	case '"':
		_, e, err := scanString(b, i)
		if err != nil {
			return nil, 0, err
		}
		sp.end = e
	default:
		e := i
		for e < len(b) && !strings.ContainsRune(" \t\r\n,]}", rune(b[e])) {
			e++
		}
		sp.end = e
	}
	return sp, sp.end, nil
}

func scanString(b []byte, i int) (start, end int, err error) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, fmt.Errorf("offset %d: want a string", i)
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return i, j + 1, nil
		}
	}
	return 0, 0, errors.New("unterminated string")
}

// lineIndent is the whitespace that starts the line of offset i, if only
// whitespace precedes i on it.
func lineIndent(b []byte, i int) (string, bool) {
	ls := bytes.LastIndexByte(b[:i], '\n') + 1
	pre := b[ls:i]
	return string(pre), len(bytes.Trim(pre, " \t")) == 0
}

// spliceJSON inserts or replaces the add operations' values in the text.
func spliceJSON(value []byte, ops []Operation) ([]byte, error) {
	root, _, err := scanJSON(value, 0, 0)
	if err != nil {
		return nil, err
	}
	unit := jsonIndent(value)
	if unit == "" {
		return nil, errors.New("the value is on one line")
	}
	eol := "\n"
	if bytes.Contains(value, []byte("\r\n")) {
		eol = "\r\n"
	}
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	render := func(raw []byte, prefix string) (string, error) {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, prefix, unit); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "\n", eol), nil
	}
	for _, o := range ops {
		if o.Op != "add" {
			continue
		}
		parts := splitPointer(o.Path)
		parent := root
		for _, p := range parts[:len(parts)-1] {
			next := (*jspan)(nil)
			switch {
			case parent.obj:
				for k, key := range parent.keys {
					if key == p {
						next = parent.kids[k]
					}
				}
			case parent.arr:
				var idx int
				if _, err := fmt.Sscanf(p, "%d", &idx); err == nil && idx >= 0 && idx < len(parent.kids) {
					next = parent.kids[idx]
				}
			}
			if next == nil {
				return nil, fmt.Errorf("%s: no %q", o.Path, p)
			}
			parent = next
		}
		last := parts[len(parts)-1]
		if len(parent.kids) == 0 {
			return nil, fmt.Errorf("%s: an empty parent", o.Path)
		}
		lastKid := parent.kids[len(parent.kids)-1]
		switch {
		case parent.obj:
			k := -1
			for i, key := range parent.keys {
				if key == last {
					k = i
				}
			}
			at := parent.keyStart[len(parent.keys)-1]
			if k >= 0 {
				at = parent.keyStart[k]
			}
			ind, ok := lineIndent(value, at)
			if !ok {
				return nil, fmt.Errorf("%s: a member not on its own line", o.Path)
			}
			v, err := render(o.Value, ind)
			if err != nil {
				return nil, err
			}
			if k >= 0 {
				edits = append(edits, edit{parent.kids[k].start, parent.kids[k].end, v})
				continue
			}
			key, _ := json.Marshal(last)
			edits = append(edits, edit{lastKid.end, lastKid.end, "," + eol + ind + string(key) + ": " + v})
		case parent.arr && last == "-":
			ind, ok := lineIndent(value, lastKid.start)
			if !ok {
				return nil, fmt.Errorf("%s: an item not on its own line", o.Path)
			}
			v, err := render(o.Value, ind)
			if err != nil {
				return nil, err
			}
			edits = append(edits, edit{lastKid.end, lastKid.end, "," + eol + ind + v})
		default:
			return nil, fmt.Errorf("%s: only appending to an array is spliced", o.Path)
		}
	}
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	at := 0
	for _, e := range edits {
		if e.start < at {
			return nil, errors.New("edits overlap")
		}
		out.Write(value[at:e.start])
		out.WriteString(e.text)
		at = e.end
	}
	out.Write(value[at:])
	return out.Bytes(), nil
}
