package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// The fast path for JSON inputs. encoding/json scans every byte of a List
// item several times before the item is decoded: once to find where it
// ends (json.Decoder), twice to read its apiVersion and kind (Unmarshal
// validates, then decodes into a struct that skips the rest), twice more
// to decode it. jsonScan validates the whole input once with a plain loop,
// then the items are found and their apiVersion and kind read by skipping
// bytes already known to be valid. The fast path accepts only what
// encoding/json accepts; an input it does not accept (a syntax error, a
// depth over fastMaxDepth, a separator other than white space between
// top-level values) is read by the json.Decoder path instead, which names
// the line of the error and resumes after it, so the errors reported are
// the same ones.

// fastMaxDepth bounds nesting on the fast path (encoding/json allows 10,000;
// deeper input goes the slow way and fails there the same way).
const fastMaxDepth = 1000

// jsonScan validates JSON text and skips values in text already validated.
type jsonScan struct {
	data []byte
	i    int
	// m, when the input is mapped, is given back the pages behind the
	// elements of arrays already walked, every releaseEvery bytes.
	m     *mapped
	relAt int
}

// moved gives back the pages behind s.i, every releaseEvery bytes.
func (s *jsonScan) moved() {
	if s.m != nil && s.i-s.relAt >= s.m.every {
		s.m.release(int64(s.i))
		s.relAt = s.i
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func (s *jsonScan) ws() {
	for s.i < len(s.data) && isSpace(s.data[s.i]) {
		s.i++
	}
}

// valid reads one value at s.i and reports whether it is valid JSON.
func (s *jsonScan) valid(depth int) bool {
	s.ws()
	if s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '{':
		if depth >= fastMaxDepth {
			return false
		}
		s.i++
		s.ws()
		if s.i < len(s.data) && s.data[s.i] == '}' {
			s.i++
			return true
		}
		for {
			s.ws()
			if s.i >= len(s.data) || s.data[s.i] != '"' || !s.validString() {
				return false
			}
			s.ws()
			if s.i >= len(s.data) || s.data[s.i] != ':' {
				return false
			}
			s.i++
			if !s.valid(depth + 1) {
				return false
			}
			s.ws()
			if s.i >= len(s.data) {
				return false
			}
			if s.data[s.i] == '}' {
				s.i++
				return true
			}
			if s.data[s.i] != ',' {
				return false
			}
			s.i++
		}
	case c == '[':
		if depth >= fastMaxDepth {
			return false
		}
		s.i++
		s.ws()
		if s.i < len(s.data) && s.data[s.i] == ']' {
			s.i++
			return true
		}
		for {
			if !s.valid(depth + 1) {
				return false
			}
			s.moved()
			s.ws()
			if s.i >= len(s.data) {
				return false
			}
			if s.data[s.i] == ']' {
				s.i++
				return true
			}
			if s.data[s.i] != ',' {
				return false
			}
			s.i++
		}
	case c == '"':
		return s.validString()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.validNumber()
	}
	return false
}

func (s *jsonScan) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// validString reads a string at s.i (on its opening quote). Bytes that are
// not valid UTF-8 are accepted, as encoding/json accepts them.
func (s *jsonScan) validString() bool {
	s.i++
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.i+1 >= len(s.data) {
				return false
			}
			switch s.data[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.data) {
					return false
				}
				for _, h := range s.data[s.i+2 : s.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 6
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

func (s *jsonScan) digits() int {
	n := 0
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// validNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScan) validNumber() bool {
	if s.data[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.data) {
		return false
	}
	if s.data[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return false
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	// A number runs into the next token only through a delimiter
	// (encoding/json rejects "1x" and "0123").
	if s.i < len(s.data) {
		switch c := s.data[s.i]; {
		case isSpace(c), c == ',', c == ']', c == '}':
		default:
			return false
		}
	}
	return true
}

// skip moves past one value known to be valid and returns its span.
func (s *jsonScan) skip() span {
	s.ws()
	start := s.i
	switch s.data[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				break
			}
		}
	default: // a number or literal: runs to a delimiter
		for s.i < len(s.data) {
			c := s.data[s.i]
			if isSpace(c) || c == ',' || c == ']' || c == '}' {
				break
			}
			s.i++
		}
	}
	return span{int64(start), int64(s.i)}
}

// skipString moves past a valid string (on its opening quote).
func (s *jsonScan) skipString() {
	s.i++
	for {
		k := bytes.IndexByte(s.data[s.i:], '"')
		if e := bytes.IndexByte(s.data[s.i:s.i+k], '\\'); e >= 0 {
			s.i += e + 2 // an escape: its second byte is never the closing quote
			continue
		}
		s.i += k + 1
		return
	}
}

// members calls f for each key and value of the valid object at s.i. The
// key is its raw text between the quotes (escapes not undone).
func (s *jsonScan) members(f func(key []byte, val span)) {
	s.eachMember(func(key []byte) { f(key, s.skip()) })
}

// eachMember calls f for each key of the valid object at s.i, with s on
// the first byte of the key's value: f must move s past that value (skip,
// or a walk of its own).
func (s *jsonScan) eachMember(f func(key []byte)) {
	s.ws()
	s.i++ // {
	for {
		s.ws()
		if s.data[s.i] == '}' {
			s.i++
			return
		}
		if s.data[s.i] == ',' {
			s.i++
			s.ws()
		}
		k := s.skip()
		s.ws()
		s.i++ // :
		s.ws()
		f(s.data[k.start+1 : k.end-1])
	}
}

// elements calls f for each value of the valid array at s.i.
func (s *jsonScan) elements(f func(val span)) {
	s.ws()
	s.i++ // [
	for {
		s.ws()
		if s.data[s.i] == ']' {
			s.i++
			return
		}
		if s.data[s.i] == ',' {
			s.i++
		}
		f(s.skip())
		s.moved()
	}
}

// keyString returns a key as encoding/json's Token would: unquoted.
func keyString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var k string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	_ = json.Unmarshal(q, &k) // valid: the scan accepted it
	return k
}

// fastJSONStream reads data the fast way and reports true, or reports
// false having read nothing when data is not a stream of valid objects
// and arrays separated by white space.
func (c *collector) fastJSONStream(ctx context.Context, data []byte) (bool, error) {
	if c.noFast {
		return false, nil
	}
	s := &jsonScan{data: data, m: c.mapped}
	c.mapped.restart()
	var tops []span // each value, as the validation found it
	for {
		s.ws()
		if s.i >= len(data) {
			break
		}
		if data[s.i] != '{' && data[s.i] != '[' {
			return false, nil
		}
		start := s.i
		if !s.valid(0) {
			return false, nil
		}
		tops = append(tops, span{int64(start), int64(s.i)})
		// Values must be apart (encoding/json's stream reads "{}{}" too,
		// but "1 2" style corner cases are left to it).
	}
	lines := &lineCounter{data: data, line: 1}
	for _, top := range tops {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		s.i = int(top.start)
		if data[top.start] == '[' {
			var err error
			s.elements(func(v span) {
				if err == nil {
					if err = ctx.Err(); err == nil {
						c.fastJSONValue(s, v, lines)
					}
				}
			})
			if err != nil {
				return true, err
			}
			continue
		}
		c.fastJSONValue(s, top, lines)
	}
	return true, nil
}

// fastJSONValue is decodeJSONValue for one valid value at v.
func (c *collector) fastJSONValue(s0 *jsonScan, v span, lines *lineCounter) {
	data := s0.data
	if data[v.start] != '{' {
		c.fail(lines.at(v.start), fmt.Errorf("not an object: %.20s", data[v.start:v.end]))
		return
	}
	s := &jsonScan{data: data, i: int(v.start), m: c.mapped, relAt: int(v.start)}
	c.mapped.restart()
	var apiVersion, kind span
	var items []span
	itemsNotArray := false
	s.eachMember(func(raw []byte) {
		k := keyString(raw)
		if k == "items" && data[s.i] == '[' {
			// The items are found in the one walk over the array.
			s.elements(func(it span) { items = append(items, it) })
			return
		}
		val := s.skip()
		switch {
		case k == "apiVersion":
			apiVersion = val
		case k == "kind":
			kind = val
		case k == "items":
			itemsNotArray = !bytes.Equal(data[val.start:val.end], []byte("null"))
		}
	})
	c.jsonTop(data, v, apiVersion, kind, items, itemsNotArray, lines)
}

// jsonTop adds one top-level JSON value at v of data, whose apiVersion,
// kind and items (their spans, unchecked) were found by either reader: an
// object, or each item of a List (a bad item is that item's error).
func (c *collector) jsonTop(data []byte, v, apiVersion, kind span, items []span, itemsNotArray bool, lines *lineCounter) {
	line := lines.at(v.start)
	var tm typeMeta
	for _, f := range []struct {
		sp  span
		dst *string
	}{{apiVersion, &tm.APIVersion}, {kind, &tm.Kind}} {
		if f.sp.end == 0 {
			continue
		}
		if err := json.Unmarshal(data[f.sp.start:f.sp.end], f.dst); err != nil {
			c.fail(line, err)
			return
		}
	}
	if v.end-v.start > c.limits.document {
		c.fail(line, tooLarge("document", c.limits.document))
		return
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		c.fail(line, ErrNoKind)
		return
	}
	itemKind, isList := strings.CutSuffix(tm.Kind, "List")
	if !isList {
		if v.end-v.start > c.limits.object {
			c.fail(line, tooLarge("object", c.limits.object))
			return
		}
		c.cur = srcText{line: line, text: data[v.start:v.end], json: true}
		if err := c.add(tm.APIVersion, tm.Kind, data[v.start:v.end]); err != nil {
			c.fail(line, err)
		}
		return
	}
	if itemsNotArray {
		c.fail(line, fmt.Errorf("%s: items is not an array", tm.Kind))
		return
	}
	c.mapped.restart()
	for len(items) > 0 {
		batch := items[:min(len(items), itemBatch)]
		items = items[len(batch):]
		done := c.decodeItems(data, batch, tm.APIVersion, itemKind)
		for i, it := range batch {
			l := func() int { return lines.at(it.start) }
			if it.end-it.start > c.limits.object {
				c.fail(l(), tooLarge("object", c.limits.object))
				continue
			}
			js := data[it.start:it.end]
			c.cur = srcText{line: l(), text: js, json: true}
			if done != nil && done[i].ok {
				if done[i].err != nil {
					c.fail(l(), done[i].err)
				} else {
					c.commit(done[i].v)
				}
				continue
			}
			apiVersion, kind, ok := itemTypeMeta(js)
			if !ok {
				c.decodeItem(js, tm.APIVersion, itemKind, l)
				continue
			}
			c.decodeItemAs(js, apiVersion, kind, tm.APIVersion, itemKind, l)
		}
		c.mapped.release(batch[len(batch)-1].end)
	}
}

// itemBatch is how many items of a List are decoded concurrently before
// they are kept in order: enough to keep every core busy, few enough that
// what waits to be kept stays small.
const itemBatch = 1024

// decodeItem decodes a List item off the main goroutine when that gives
// what the in-order path (collector.decodeItem) would: its apiVersion and
// kind are plain (itemTypeMeta) or the list's, and it is not a List. ok is
// false for any other item, which is then read in order.
func (d *itemDecoder) decodeItem(js []byte, listAPIVersion, listItemKind string) itemDone {
	apiVersion, kind, ok := itemTypeMeta(js)
	if !ok {
		return itemDone{}
	}
	if kind == "" && listItemKind != "" {
		kind, apiVersion = listItemKind, listAPIVersion
	}
	if kind == "" || apiVersion == "" || strings.HasSuffix(kind, "List") {
		return itemDone{}
	}
	if indented(js) {
		// encoding/json scans every byte twice (it validates, then
		// decodes), and kubectl's indentation is half of a dump: give
		// it the item without it. What decode keeps, it copies.
		d.buf = compactValid(d.buf[:0], js)
		js = d.buf
	}
	v, err := d.decode(apiVersion, kind, js)
	return itemDone{v: v, err: err, ok: true}
}

// indented says whether a JSON value is laid out over lines (kubectl's
// -o json), judged by its first bytes.
func indented(js []byte) bool {
	return bytes.Contains(js[:min(len(js), 64)], []byte("\n "))
}

// compactValid appends js, a valid JSON value, to dst without the white
// space outside its strings (what json.Compact writes, without its
// validating scan).
func compactValid(dst, js []byte) []byte {
	for i := 0; i < len(js); {
		c := js[i]
		switch {
		case isSpace(c):
			i++
		case c == '"':
			j := i + 1
			for {
				k := bytes.IndexByte(js[j:], '"')
				if e := bytes.IndexByte(js[j:j+k], '\\'); e >= 0 {
					j += e + 2 // an escape: its second byte is never the closing quote
					continue
				}
				j += k + 1
				break
			}
			dst = append(dst, js[i:j]...)
			i = j
		default:
			j := i + 1
			for j < len(js) && !isSpace(js[j]) && js[j] != '"' {
				j++
			}
			dst = append(dst, js[i:j]...)
			i = j
		}
	}
	return dst
}

// itemDone is an item decoded by decodeItems: ok says it was (v or err is
// its outcome); the others are read in order by jsonTop.
type itemDone struct {
	v   decoded
	err error
	ok  bool
}

// decodeItems decodes the plain items of a List (those whose apiVersion
// and kind itemTypeMeta reads, not Lists themselves, within the object
// cap) on c.workers goroutines, each with its own decoder, and returns
// what each gave; nil when the batch is read in order (one worker, or too
// few items to be worth it). Keeping them (commit) and reporting their
// errors stays in order, so the outcome is what reading them one by one
// gives.
func (c *collector) decodeItems(data []byte, items []span, listAPIVersion, listItemKind string) []itemDone {
	out := make([]itemDone, len(items))
	spread := c.spread(len(items), 64, func(d *itemDecoder, i int) {
		it := items[i]
		if it.end-it.start > c.limits.object {
			return
		}
		js := data[it.start:it.end]
		out[i] = d.decodeItem(js, listAPIVersion, listItemKind)
		if out[i].ok && out[i].err == nil {
			out[i].v.placeText(js, true)
		}
	})
	if !spread {
		return nil
	}
	return out
}

// spread calls f(d, i) for every i in [0, n), on up to c.workers
// goroutines, each over a contiguous range of at least minPer indexes with
// its own decoder d, and returns once all are done; it returns false
// having called nothing when that would be fewer than two goroutines. f
// must leave what it writes for i unset if it panics: a panic is
// recovered, so that the item is read again in order (where it panics as
// it would have without spread).
func (c *collector) spread(n, minPer int, f func(d *itemDecoder, i int)) bool {
	workers := min(c.workers, n/minPer)
	if workers < 2 {
		return false
	}
	for len(c.decs) < workers {
		c.decs = append(c.decs, newItemDecoder())
	}
	one := func(d *itemDecoder, i int) {
		defer func() { _ = recover() }()
		f(d, i)
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(d *itemDecoder) {
			defer wg.Done()
			if c.mapped != nil {
				// A page of a file that shrank faults: a panic, recovered
				// (one), and the item is read again in order.
				debug.SetPanicOnFault(true)
			}
			for i := lo; i < hi; i++ {
				one(d, i)
			}
		}(c.decs[w])
	}
	wg.Wait()
	return true
}

// itemTypeMeta reads an item's apiVersion and kind as decodeItem's
// json.Unmarshal into typeMeta would, when that is plain: the item is an
// object, those keys are spelled exactly and their values are strings
// without escapes, and it has no "items". ok is false otherwise (the
// caller then unmarshals: keys match case-insensitively, null keeps an
// earlier value, items must be an array...).
func itemTypeMeta(js []byte) (apiVersion, kind string, ok bool) {
	if len(js) == 0 || js[0] != '{' {
		return "", "", false
	}
	ok = true
	s := &jsonScan{data: js}
	s.members(func(raw []byte, val span) {
		if !ok {
			return
		}
		var dst *string
		switch {
		case string(raw) == "kind":
			dst = &kind
		case string(raw) == "apiVersion":
			dst = &apiVersion
		case bytes.IndexByte(raw, '\\') >= 0, bytes.EqualFold(raw, []byte("kind")),
			bytes.EqualFold(raw, []byte("apiVersion")), bytes.EqualFold(raw, []byte("items")):
			ok = false
			return
		default:
			if len(raw) > 24 || !nonASCII(raw) {
				return
			}
			// A non-ASCII key of a few bytes may fold to one of those
			// (the Kelvin sign folds to k): let encoding/json decide.
			ok = false
			return
		}
		v := js[val.start:val.end]
		if v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
			ok = false
			return
		}
		*dst = string(v[1 : len(v)-1])
	})
	return apiVersion, kind, ok
}

func nonASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
