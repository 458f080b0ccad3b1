package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	goruntime "runtime"
	"sigs.k8s.io/yaml"
)

// Input limits. A dump is read one YAML document (or one top-level JSON
// value) at a time, and the items of a List one at a time, so memory grows
// with the input, not with its square; these caps bound what one hostile
// file can make archfit hold. A Kubernetes object is at most 1.5 MiB in
// etcd, so MaxObjectBytes leaves a wide margin.
const (
	// MaxInputBytes is the most read from one file or from stdin.
	MaxInputBytes = 1 << 30
	// MaxDocumentBytes is the most one YAML document or one top-level JSON
	// value may hold. A List of a whole cluster's pods is one document: a
	// kubectl dump of 100,000 pods is 350-900 MB, so it is as large as an
	// input may be (an input is held whole while it is read anyway).
	MaxDocumentBytes = MaxInputBytes
	// MaxObjectBytes is the most one object, or one item of a List, may hold.
	MaxObjectBytes = 16 << 20
)

// limits are the caps above; tests lower them.
type limits struct{ input, document, object int64 }

var defaultLimits = limits{input: MaxInputBytes, document: MaxDocumentBytes, object: MaxObjectBytes}

// collector accumulates decoded objects, keeping the last of duplicates
// (the same object in two files of one dump).
type collector struct {
	in     input
	seen   map[string]int // "kind/ns/name" -> index in its slice, per kind family
	errs   []error
	source string  // current file name, for errors
	cur    srcText // the text of the object being decoded, for record
	limits limits
	mapped *mapped // the input being read, when it is mapped (decodeMapped)
	noMap  bool    // tests: read every input into memory
	// mapMin and releaseEvery are mmapMinBytes and releaseEvery (tests
	// lower them).
	mapMin       int64
	releaseEvery int
	mappedInputs int          // how many inputs were mapped (tests)
	dec          *itemDecoder // decodes what is read in order
	noFast       bool         // tests: read JSON the json.Decoder way only
	// workers decode the items of a long List concurrently (decodeItems);
	// 1 reads them in order. newCollector sets GOMAXPROCS.
	workers int
	decs    []*itemDecoder // theirs, kept from batch to batch
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}, limits: defaultLimits, dec: newItemDecoder(), workers: goruntime.GOMAXPROCS(0),
		mapMin: mmapMinBytes, releaseEvery: releaseEvery}
}

func (c *collector) fail(line int, err error) {
	c.errs = append(c.errs, &DocumentError{File: c.source, Line: line, Err: err})
}

// tooLarge is the error of a document or object over its cap.
func tooLarge(what string, limit int64) error {
	return fmt.Errorf("%w: %s larger than %s, skipped", ErrTooLarge, what, size(limit))
}

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// capReader fails once more than n bytes were read.
type capReader struct {
	r io.Reader
	n int64
}

var errInputCap = errors.New("input cap reached")

func (r *capReader) Read(p []byte) (int, error) {
	if r.n < 0 {
		return 0, errInputCap
	}
	if int64(len(p)) > r.n+1 {
		p = p[:r.n+1]
	}
	k, err := r.r.Read(p)
	r.n -= int64(k)
	if r.n < 0 {
		return k, errInputCap
	}
	return k, err
}

// decodeFile reads one input: a JSON stream, or multi-document YAML. It
// fails only when the input cannot be read, is over MaxInputBytes, or ctx
// is done; broken documents are recorded and skipped.
func (c *collector) decodeFile(ctx context.Context, name string, r io.Reader) error {
	c.source = name
	// The input is dropped once read: what is kept was copied out of it.
	defer func() { c.cur = srcText{} }()
	if f, ok := r.(*os.File); ok {
		if m, ok := c.mapInput(f); ok {
			return c.decodeMapped(ctx, name, m)
		}
	}
	br := bufio.NewReaderSize(&capReader{r: r, n: c.limits.input}, 64<<10)
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\ufeff")) {
		_, _ = br.Discard(3) // a BOM from an editor on Windows
	}
	var err error
	if looksJSON(br) {
		var data []byte
		if data, err = readAll(br, sizeHint(r, c.limits.input)); err == nil {
			var fast bool
			if fast, err = c.fastJSONStream(ctx, data); !fast {
				err = c.decodeJSONStream(ctx, data)
			}
		}
	} else {
		err = c.decodeYAMLStream(ctx, br)
	}
	if errors.Is(err, errInputCap) {
		return fmt.Errorf("reading %s: %w: more than %s in one input (archfit's limit)", name, ErrTooLarge, size(c.limits.input))
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return err
}

// sizeHint is the size of r when it is a regular file (at most limit+1),
// else 0: the buffer a JSON input is read into is then allocated once,
// instead of doubling up to twice the input's size.
func sizeHint(r io.Reader, limit int64) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return 0
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return min(fi.Size(), limit) + 1
}

// readAll is io.ReadAll into a buffer of hint bytes to start with.
func readAll(r io.Reader, hint int64) ([]byte, error) {
	if hint <= 0 {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// looksJSON says whether the first non-blank byte opens a JSON value.
func looksJSON(br *bufio.Reader) bool {
	for n := 1; n <= br.Size(); n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			return false
		}
		switch b[n-1] {
		case ' ', '\t', '\r', '\n':
			if err != nil {
				return false
			}
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// lineCounter turns byte offsets into lines, counting each byte once as long
// as offsets only grow (they do: values are read in order).
type lineCounter struct {
	data []byte
	off  int64
	line int
}

func (l *lineCounter) at(off int64) int {
	off = min(off, int64(len(l.data)))
	if off < l.off {
		l.off, l.line = 0, 1
	}
	l.line += bytes.Count(l.data[l.off:off], []byte("\n"))
	l.off = off
	return l.line
}

// skipJSON takes any JSON value without copying or building it.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }

// span is a value's [start, end) in the input.
type span struct{ start, end int64 }

// jsonReader reads one JSON input value by value, keeping offsets.
type jsonReader struct {
	dec   *json.Decoder
	data  []byte
	base  int64 // offset of the decoder's input in data
	lines *lineCounter
}

// next returns the offset where the next value starts, or len(data).
func (j *jsonReader) next() int64 {
	off := j.base + j.dec.InputOffset()
	for off < int64(len(j.data)) && strings.IndexByte(", \t\r\n:", j.data[off]) >= 0 {
		off++
	}
	return off
}

// skip reads the next value and returns its span.
func (j *jsonReader) skip() (span, error) {
	start := j.next()
	var s skipJSON
	if err := j.dec.Decode(&s); err != nil {
		return span{}, err
	}
	return span{start, j.base + j.dec.InputOffset()}, nil
}

// decodeJSONStream reads concatenated JSON values (objects, Lists, or arrays
// of objects). After a syntax error it resumes at the next line that starts
// with "{", so one broken object does not hide the rest.
func (c *collector) decodeJSONStream(ctx context.Context, data []byte) error {
	lines := &lineCounter{data: data, line: 1}
	base := int64(0)
	for base < int64(len(data)) {
		j := &jsonReader{dec: json.NewDecoder(bytes.NewReader(data[base:])), data: data, base: base, lines: lines}
		var err error
		for err == nil {
			if err = ctx.Err(); err != nil {
				return err
			}
			start := j.next()
			if start >= int64(len(data)) {
				return nil
			}
			if data[start] == '[' {
				err = c.decodeJSONArray(ctx, j)
			} else {
				err = c.decodeJSONValue(j)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		off := base + j.dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = base + se.Offset
		}
		c.fail(lines.at(off), fmt.Errorf("invalid JSON: %w", err))
		if base = nextLineStarting(data, off, '{'); base < 0 {
			return nil
		}
	}
	return nil
}

// nextLineStarting returns the offset of the first line after off that
// starts with ch, or -1.
func nextLineStarting(data []byte, off int64, ch byte) int64 {
	for i := off; i < int64(len(data)); i++ {
		if data[i] == '\n' && i+1 < int64(len(data)) && data[i+1] == ch {
			return i + 1
		}
	}
	return -1
}

// decodeJSONArray reads a top-level array of objects element by element.
func (c *collector) decodeJSONArray(ctx context.Context, j *jsonReader) error {
	if _, err := j.dec.Token(); err != nil {
		return err
	}
	for j.dec.More() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.decodeJSONValue(j); err != nil {
			return err
		}
	}
	_, err := j.dec.Token()
	return err
}

// decodeJSONValue reads one object. The items of a List are found as spans
// while the object streams past, and decoded one by one once the List's
// kind is known (kubectl prints "kind" after "items").
func (c *collector) decodeJSONValue(j *jsonReader) error {
	start := j.next()
	if j.data[start] != '{' {
		sp, err := j.skip()
		if err != nil {
			return err
		}
		c.fail(j.lines.at(start), fmt.Errorf("not an object: %.20s", j.data[sp.start:sp.end]))
		return nil
	}
	if _, err := j.dec.Token(); err != nil {
		return err
	}
	var apiVersion, kind span
	var items []span
	itemsNotArray := false
	for j.dec.More() {
		k, err := j.dec.Token()
		if err != nil {
			return err
		}
		if k == "items" {
			if off := j.next(); off < int64(len(j.data)) && j.data[off] == '[' {
				if _, err := j.dec.Token(); err != nil {
					return err
				}
				for j.dec.More() {
					sp, err := j.skip()
					if err != nil {
						return err
					}
					items = append(items, sp)
				}
				if _, err := j.dec.Token(); err != nil {
					return err
				}
				continue
			}
		}
		sp, err := j.skip()
		if err != nil {
			return err
		}
		switch k {
		case "apiVersion":
			apiVersion = sp
		case "kind":
			kind = sp
		case "items":
			itemsNotArray = !bytes.Equal(j.data[sp.start:sp.end], []byte("null"))
		}
	}
	if _, err := j.dec.Token(); err != nil {
		return err
	}
	obj := span{start, j.base + j.dec.InputOffset()}
	c.jsonTop(j.data, obj, apiVersion, kind, items, itemsNotArray, j.lines)
	return nil
}

// yamlDoc is one document of a YAML stream (or one item of a List) and its
// first line in the file.
type yamlDoc struct {
	line int
	data []byte
}

// decodeYAMLStream reads a stream document by document, splitting on "---"
// lines; only the current document is held.
func (c *collector) decodeYAMLStream(ctx context.Context, br *bufio.Reader) error {
	doc := yamlDoc{line: 1}
	over := false // the document passed the cap: skip to the next one
	lineNo := 0
	atStart := true // the next chunk starts a line
	for {
		chunk, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, io.EOF) {
			return err
		}
		if atStart && len(chunk) > 0 {
			lineNo++
			t := bytes.TrimRight(chunk, " \t\r\n")
			if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.Equal(t, []byte("...")) {
				if err := c.endYAMLDoc(ctx, doc, over); err != nil {
					return err
				}
				doc, over = yamlDoc{line: lineNo + 1}, false
				// The rest of a very long "--- ..." line is dropped.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				if errors.Is(err, io.EOF) {
					return nil
				}
				continue
			}
		}
		atStart = !errors.Is(err, bufio.ErrBufferFull)
		if !over {
			if int64(len(doc.data)+len(chunk)) > c.limits.document {
				over, doc.data = true, nil
				c.fail(doc.line, tooLarge("document", c.limits.document))
			} else {
				doc.data = append(doc.data, chunk...)
			}
		}
		if errors.Is(err, io.EOF) {
			return c.endYAMLDoc(ctx, doc, over)
		}
	}
}

func (c *collector) endYAMLDoc(ctx context.Context, d yamlDoc, over bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if over || blank(d.data) {
		return nil
	}
	if header, items, indent, ok := splitYAMLList(d); ok {
		if hasAlias(d.data) && int64(len(d.data)) <= c.limits.object && c.decodeWholeList(d, items) {
			return nil
		}
		return c.decodeYAMLList(ctx, d, header, items, indent)
	}
	c.decodeYAMLObject(d)
	return nil
}

// decodeYAMLObject reads a document (or List item) as one object.
func (c *collector) decodeYAMLObject(d yamlDoc) {
	if int64(len(d.data)) > c.limits.object {
		c.fail(d.line, tooLarge("object", c.limits.object))
		return
	}
	js, err := yaml.YAMLToJSON(d.data)
	if err != nil {
		c.fail(yamlErrorLine(d, err), yamlError(err))
		return
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return
	}
	c.cur = srcText{line: d.line, text: d.data}
	c.decodeObject(js, d.line, nil)
}

// decodeWholeList reads a List that uses aliases (PyYAML writes an anchor
// in one item and aliases to it in others) in one piece, as items parsed
// alone would miss the anchors. It returns false, having recorded nothing,
// if the document does not parse: the caller then reads it item by item to
// name the broken item.
func (c *collector) decodeWholeList(d yamlDoc, items []yamlDoc) bool {
	js, err := yaml.YAMLToJSON(d.data)
	if err != nil {
		return false
	}
	c.decodeObject(js, d.line, func(i int) srcText {
		if i < len(items) {
			return srcText{line: items[i].line, text: items[i].data}
		}
		return srcText{line: d.line}
	})
	return true
}

// hasAlias says whether YAML text may hold an alias ("*name" where a node
// starts). A false positive only costs reading the document whole.
func hasAlias(data []byte) bool {
	for i := bytes.IndexByte(data, '*'); i >= 0 && i+1 < len(data); {
		prev := byte(' ')
		if i > 0 {
			prev = data[i-1]
		}
		if strings.IndexByte(" \t\n[{,", prev) >= 0 && strings.IndexByte(" \t\r\n,[]{}", data[i+1]) < 0 {
			return true
		}
		j := bytes.IndexByte(data[i+1:], '*')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// decodeYAMLList reads a List whose items splitYAMLList found, item by item.
func (c *collector) decodeYAMLList(ctx context.Context, d, header yamlDoc, items []yamlDoc, indent int) error {
	if int64(len(header.data)) > c.limits.object {
		c.fail(d.line, tooLarge("object", c.limits.object))
		return nil
	}
	js, err := yaml.YAMLToJSON(header.data)
	if err != nil {
		c.fail(yamlErrorLine(header, err), yamlError(err))
		return nil
	}
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		c.fail(d.line, err)
		return nil
	}
	itemKind, isList := strings.CutSuffix(tm.Kind, "List")
	switch {
	case tm.Kind == "" || tm.APIVersion == "":
		c.fail(d.line, ErrNoKind)
		return nil
	case !isList: // an object with an "items" field
		c.decodeYAMLObject(d)
		return nil
	}
	for len(items) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := items[:min(len(items), itemBatch)]
		items = items[len(batch):]
		done := c.decodeYAMLItems(batch, indent, tm.APIVersion, itemKind)
		for i, it := range batch {
			if int64(len(it.data)) > c.limits.object {
				c.fail(it.line, tooLarge("object", c.limits.object))
				continue
			}
			var js []byte
			var err error
			if done != nil && (done[i].js != nil || done[i].yamlErr != nil) {
				js, err = done[i].js, done[i].yamlErr
			} else { // read in order, or its goroutine panicked
				it.data[indent] = ' ' // "- key: v" becomes "  key: v", a mapping of its own
				js, err = yaml.YAMLToJSON(it.data)
			}
			if err != nil {
				c.fail(yamlErrorLine(it, err), yamlError(err))
				continue
			}
			c.cur = srcText{line: it.line, text: it.data}
			if done != nil && done[i].ok {
				if done[i].err != nil {
					c.fail(it.line, done[i].err)
				} else {
					c.commit(done[i].v)
				}
				continue
			}
			c.decodeItem(js, tm.APIVersion, itemKind, func() int { return it.line })
		}
	}
	return nil
}

// yamlItemDone is a YAML List item converted and maybe decoded by
// decodeYAMLItems: its JSON or the conversion's error, and itemDone.
type yamlItemDone struct {
	js      []byte
	yamlErr error
	itemDone
}

// decodeYAMLItems is decodeItems for the items of a YAML List: each is
// converted to JSON (the costly part of reading YAML) and, when plain,
// decoded, on c.workers goroutines; nil when they are read in order.
func (c *collector) decodeYAMLItems(items []yamlDoc, indent int, listAPIVersion, listItemKind string) []yamlItemDone {
	out := make([]yamlItemDone, len(items))
	spread := c.spread(len(items), 16, func(d *itemDecoder, i int) {
		it := items[i]
		if int64(len(it.data)) > c.limits.object {
			return
		}
		it.data[indent] = ' ' // as in decodeYAMLList; the items do not overlap
		js, err := yaml.YAMLToJSON(it.data)
		if err != nil {
			out[i] = yamlItemDone{yamlErr: err}
			return
		}
		done := d.decodeItem(js, listAPIVersion, listItemKind)
		if done.ok && done.err == nil {
			done.v.placeText(it.data, false)
		}
		out[i] = yamlItemDone{js: js, itemDone: done}
	})
	if !spread {
		return nil
	}
	return out
}

// splitYAMLList splits a document that has a top-level "items:" block
// sequence (kubectl's layout, "- " at column 0, or indented under it) into
// the document without its items (blank lines in their place, so lines
// stay right) and the items with their lines; each item's "-" is at
// column indent. The items share d's bytes. ok is false for any other
// document. An alias to an anchor in another item does not resolve:
// kubectl never writes anchors.
func splitYAMLList(d yamlDoc) (header yamlDoc, items []yamlDoc, indent int, ok bool) {
	const (
		before = iota
		first  // after "items:", before the first item
		in     // in the items
		after
	)
	state := before
	var head []byte
	header.line = d.line
	item := -1 // start of the current item in d.data
	itemLine := 0
	end := func(at int) {
		if item >= 0 {
			items = append(items, yamlDoc{line: itemLine, data: d.data[item:at]})
		}
		item = -1
	}
	lineNo := d.line - 1
	for off := 0; off < len(d.data); {
		lineNo++
		next := len(d.data)
		if i := bytes.IndexByte(d.data[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		l := d.data[off:next]
		t := bytes.TrimRight(l, " \t\r\n")
		trimmed := bytes.TrimLeft(t, " ")
		sp := len(t) - len(trimmed)
		comment := len(trimmed) == 0 || trimmed[0] == '#'
		dash := len(trimmed) > 0 && trimmed[0] == '-' && (len(trimmed) == 1 || trimmed[1] == ' ')
		switch {
		case state == before && sp == 0 && isItemsKey(t):
			state = first
			head = append(head, '\n')
		case state == before || state == after:
			head = append(head, l...)
		case comment: // blank or comment line among the items
			head = append(head, '\n')
		case state == first && !dash:
			return yamlDoc{}, nil, 0, false // "items:" holds no block sequence
		case dash && (state == first || sp == indent):
			end(off)
			state, indent = in, sp
			item, itemLine = off, lineNo
			head = append(head, '\n')
		case sp > indent: // inside the item
			head = append(head, '\n')
		default: // back at the List's keys
			end(off)
			state = after
			head = append(head, l...)
		}
		off = next
	}
	end(len(d.data))
	if state == before || state == first {
		return yamlDoc{}, nil, 0, false
	}
	header.data = head
	return header, items, indent, true
}

// isItemsKey matches an "items:" line with nothing after the colon but a
// comment.
func isItemsKey(t []byte) bool {
	rest, ok := bytes.CutPrefix(t, []byte("items:"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " ")
	return len(rest) == 0 || rest[0] == '#'
}

// blank reports whether a YAML document has only comments and blank lines.
func blank(doc []byte) bool {
	for len(doc) > 0 {
		l := doc
		if i := bytes.IndexByte(doc, '\n'); i >= 0 {
			l, doc = doc[:i], doc[i+1:]
		} else {
			doc = nil
		}
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// yamlLine finds "yaml: line N:" in a parser error.
var yamlLine = regexp.MustCompile(`line (\d+): `)

// yamlErrorLine returns the file line of a parser error in document d. An
// error at the end of the stream (an unclosed quote) is put on the
// document's last line, not past it.
func yamlErrorLine(d yamlDoc, err error) int {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return d.line
	}
	n, _ := strconv.Atoi(m[1])
	if last := bytes.Count(bytes.TrimRight(d.data, "\n"), []byte("\n")) + 1; n > last {
		n = last
	}
	return d.line + n - 1
}

// yamlError drops the wrapping and the document-relative line from a
// parser error: the file line is put in front of it.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlLine.ReplaceAllString(msg, "")
	return fmt.Errorf("invalid YAML: %s", msg)
}

// typeMeta is what decodeObject dispatches on.
type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decodeObject reads one JSON object, a List of them, or a typed list
// (PodList, whose items carry no kind). item gives the text and line of
// items[i]; without it, items are put on the List's line.
func (c *collector) decodeObject(js []byte, line int, item func(int) srcText) {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		c.fail(line, err)
		return
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		c.fail(line, ErrNoKind)
		return
	}
	if itemKind, ok := strings.CutSuffix(tm.Kind, "List"); ok {
		for i, it := range tm.Items {
			c.cur = srcText{line: line}
			if item != nil {
				c.cur = item(i)
			}
			at := c.cur.line
			c.decodeItem(it, tm.APIVersion, itemKind, func() int { return at })
		}
		return
	}
	if err := c.add(tm.APIVersion, tm.Kind, js); err != nil {
		c.fail(line, err)
	}
}

// decodeItem reads an item of a List; items of a typed list (PodList) take
// the list's kind.
// line is only called on errors: finding it may mean re-parsing.
func (c *collector) decodeItem(js []byte, listAPIVersion, listItemKind string, line func() int) {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		c.fail(line(), err)
		return
	}
	c.decodeItemAs(js, tm.APIVersion, tm.Kind, listAPIVersion, listItemKind, line)
}

// decodeItemAs is decodeItem once the item's own apiVersion and kind are
// read.
func (c *collector) decodeItemAs(js []byte, apiVersion, kind, listAPIVersion, listItemKind string, line func() int) {
	tm := typeMeta{APIVersion: apiVersion, Kind: kind}
	if tm.Kind == "" && listItemKind != "" {
		tm.Kind, tm.APIVersion = listItemKind, listAPIVersion
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		c.fail(line(), ErrNoKind)
		return
	}
	if strings.HasSuffix(tm.Kind, "List") { // a List inside a List
		c.decodeObject(js, line(), nil)
		return
	}
	if err := c.add(tm.APIVersion, tm.Kind, js); err != nil {
		c.fail(line(), err)
	}
}

// decoded is one object decode read: at most one field is set (none for
// a kind archfit does not read).
type decoded struct {
	pod   *corev1.Pod
	node  *corev1.Node
	event *corev1.Event
	obj   *object
	// place is where in its text the object and its images are, when the
	// goroutine that decoded it found that (placed); nil otherwise.
	place *placement
}

// recordKey says where, if anywhere, the object v
// goes in the collector's locations: a workload object, or a pod that
// is its own workload (a bare pod or a static pod's mirror; see
// Workload.locate).
func (v *decoded) recordKey() (string, []nameImage, bool) {
	switch {
	case v.pod != nil:
		p := v.pod
		if r := controllerRef(p.OwnerReferences); r == nil || r.Kind == "Node" {
			return "Pod/" + p.Namespace + "/" + p.Name, podContainers(&p.Spec), true
		}
	case v.obj != nil:
		o := v.obj
		var cs []nameImage
		if o.template != nil {
			cs = podContainers(&o.template.Spec)
		}
		return o.ref.Kind + "/" + o.ref.Namespace + "/" + o.ref.Name, cs, true
	}
	return "", nil, false
}

// placeText finds v's placement in text, JSON or YAML (what record would
// find), so that it is found on the goroutine that decoded v.
func (v *decoded) placeText(text []byte, isJSON bool) {
	if _, cs, ok := v.recordKey(); ok {
		p := placeIn(text, isJSON, cs)
		v.place = &p
	}
}

// add decodes an object of a kind archfit reads and keeps it; other kinds
// are skipped.
func (c *collector) add(apiVersion, kind string, js []byte) error {
	v, err := c.dec.decode(apiVersion, kind, js)
	if err != nil {
		return err
	}
	c.commit(v)
	return nil
}

// commit keeps what decode read, in the order objects were read (the last
// of duplicates wins; where it was is recorded from c.cur).
func (c *collector) commit(v decoded) {
	switch {
	case v.pod != nil:
		p := v.pod
		c.keep("Pod", p.Namespace, p.Name, func(i int) { c.in.pods[i] = p }, func() int { c.in.pods = append(c.in.pods, p); return len(c.in.pods) - 1 })
	case v.node != nil:
		n := v.node
		c.keep("Node", "", n.Name, func(i int) { c.in.nodes[i] = n }, func() int { c.in.nodes = append(c.in.nodes, n); return len(c.in.nodes) - 1 })
	case v.event != nil:
		c.addEvent(v.event)
	case v.obj != nil:
		c.addObject(v.obj)
	}
	if key, cs, ok := v.recordKey(); ok {
		c.record(key, cs, v.place)
	}
}

// decode reads an object of a kind archfit reads; other kinds give an
// empty decoded. It only reads js (which it does not keep: what it keeps
// is copied) and d's own maps, so decoders on other goroutines may run
// beside it.
func (d *itemDecoder) decode(apiVersion, kind string, js []byte) (decoded, error) {
	group, _, _ := strings.Cut(apiVersion, "/")
	if !strings.Contains(apiVersion, "/") {
		group = ""
	}
	var typed runtime.Object
	switch {
	case group == "" && kind == "Pod":
		p, err := d.decodePod(js)
		if err != nil {
			return decoded{}, err
		}
		return decoded{pod: p}, nil
	case group == "" && kind == "Node":
		n := &corev1.Node{}
		if err := unmarshal(js, kind, n); err != nil {
			return decoded{}, err
		}
		return decoded{node: n}, nil
	case group == "" && kind == "Event":
		e := &corev1.Event{}
		if err := unmarshal(js, kind, e); err != nil {
			return decoded{}, err
		}
		return decoded{event: e}, nil
	case group == "events.k8s.io" && kind == "Event":
		e := &eventsv1.Event{}
		if err := unmarshal(js, kind, e); err != nil {
			return decoded{}, err
		}
		return decoded{event: coreEvent(e)}, nil
	case group == "" && kind == KindPodTemplate:
		typed = &corev1.PodTemplate{}
	case (group == "apps" || group == "extensions") && kind == KindDeployment:
		typed = &appsv1.Deployment{}
	case (group == "apps" || group == "extensions") && kind == KindReplicaSet:
		typed = &appsv1.ReplicaSet{}
	case (group == "apps" || group == "extensions") && kind == KindDaemonSet:
		typed = &appsv1.DaemonSet{}
	case group == "apps" && kind == KindStatefulSet:
		typed = &appsv1.StatefulSet{}
	case group == "batch" && kind == KindJob:
		typed = &batchv1.Job{}
	case group == "batch" && kind == KindCronJob:
		typed = &batchv1.CronJob{}
	case group == "argoproj.io" && kind == KindRollout:
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return decoded{}, fmt.Errorf("reading %s: %w", kind, err)
		}
		o, err := newRollout(u)
		if err != nil {
			return decoded{}, err
		}
		return decoded{obj: o}, nil
	case !strings.Contains(group, "."), strings.HasSuffix(group, ".k8s.io"):
		// Kubernetes' own groups (core, apps, policy, rbac.authorization.k8s.io...):
		// what runs containers among them is read above; a custom
		// resource's group always has a dot.
		return decoded{}, nil // not something archfit reads (Service, ConfigMap...)
	default:
		// A custom resource: an operator's kind archfit knows, or any
		// object whose spec names images. No object that runs containers
		// may vanish from the audit.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return decoded{}, fmt.Errorf("reading %s: %w", kind, err)
		}
		o, err := newCustom(u)
		if err != nil || o == nil {
			return decoded{}, err
		}
		return decoded{obj: o}, nil
	}
	if err := unmarshal(js, kind, typed); err != nil {
		return decoded{}, err
	}
	// Its unstructured form is made only if it turns out to be a
	// workload: keep the JSON (js may be a slice of the whole input).
	o, err := newObject(typed, bytes.Clone(js))
	if err != nil {
		return decoded{}, err
	}
	if controllerRef(o.meta.OwnerReferences) == nil {
		// Nothing controls it: it is a workload, whose unstructured
		// form build needs. Made here, it is made on the goroutine
		// decoding it (decodeItems).
		o.original()
	}
	return decoded{obj: o}, nil
}

func unmarshal(js []byte, kind string, v any) error {
	if err := json.Unmarshal(js, v); err != nil {
		var name struct {
			Metadata struct{ Name, Namespace string }
		}
		_ = json.Unmarshal(js, &name)
		what := kind
		if name.Metadata.Name != "" {
			what += " " + name.Metadata.Name
		}
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

func (c *collector) keep(kind, ns, name string, replace func(int), add func() int) {
	k := kind + "/" + ns + "/" + name
	if i, ok := c.seen[k]; ok {
		replace(i)
		return
	}
	c.seen[k] = add()
}

func (c *collector) addObject(o *object) {
	c.keep(o.ref.Kind, o.ref.Namespace, o.ref.Name,
		func(i int) { c.in.objects[i] = o },
		func() int { c.in.objects = append(c.in.objects, o); return len(c.in.objects) - 1 })
}

func (c *collector) addEvent(e *corev1.Event) {
	c.keep("Event", e.Namespace, e.Name,
		func(i int) { c.in.events[i] = e },
		func() int { c.in.events = append(c.in.events, e); return len(c.in.events) - 1 })
}

// coreEvent converts an events.k8s.io/v1 Event to the core/v1 shape the
// rest of archfit reads.
func coreEvent(e *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Count:               e.DeprecatedCount,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Source:              e.DeprecatedSource,
		Action:              e.Action,
		Related:             e.Related,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}
