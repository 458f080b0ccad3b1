package report

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/json"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// jsonStream writes v as json.Encoder with SetIndent("", "  ") would, byte
// for byte, without building the whole text in memory: structs,
// string-keyed maps and short slices near the top are walked, and the
// elements of a longer slice are marshalled one by one. An audit of 100,000 pods is some 80 MB of JSON; the encoder
// held it twice (compact, then indented) on top of the result it was made
// from.
//
// The elements of a long slice (findings, remedies, images, workloads) are
// marshalled in chunks on GOMAXPROCS workers and written in order as each
// chunk is ready; at most a window of chunks is in flight, so memory stays
// bounded by the window, not the document. encoding/json marshals each
// element (it alone decides escaping, field order, omitempty, floats,
// marshalers), and appendIndented indents its compact text directly: the
// scanner MarshalIndent runs over every byte a second time cost as much
// as marshalling. Elements' MarshalJSON methods may so run concurrently,
// as they may under any concurrent use of encoding/json.
//
// Only the first maxStreamDepth levels of structs and maps are walked:
// deeper values are small, and marshalled whole.
//
// An error while marshalling (a MarshalJSON that fails, a NaN) stops the
// stream where it happened: what was flushed before it stays written, so
// the output is then not valid JSON and the error is returned for the
// caller to report and exit non-zero, as any streaming writer must. A
// write error stops it too: no chunk is started after it.
func jsonStream(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	s := &streamer{w: bw}
	defer s.stopWorkers()
	s.value(reflect.ValueOf(v), 0)
	if s.err == nil {
		_, s.err = bw.WriteString("\n")
	}
	if s.err == nil {
		s.err = bw.Flush()
	}
	return s.err
}

const (
	maxStreamDepth = 3
	// parallelMin is the shortest slice whose elements go to the workers:
	// below it, handing chunks over costs more than it saves.
	parallelMin = 16
	// maxChunk bounds the elements of one chunk, and so (with the window)
	// the memory a stream holds; chunksPerWorker is how many chunks each
	// worker gets of a slice, so that one slow chunk does not idle the
	// others.
	maxChunk        = 64
	chunksPerWorker = 8
	// windowPerWorker chunks per worker may be marshalled ahead of the
	// writer.
	windowPerWorker = 4
)

type streamer struct {
	w   *bufio.Writer
	err error
	// local marshals on the writer's goroutine (short slices, single
	// values).
	local marshaler
	// jobs feeds the workers; nil until a slice is long enough to need
	// them.
	jobs    chan *chunk
	workers sync.WaitGroup
}

func (s *streamer) write(str string) {
	if s.err == nil {
		_, s.err = s.w.WriteString(str)
	}
}

// marshaler turns values into indented JSON: encoding/json's Encoder
// (HTML escaping on, as json.Marshal) writes compact text into buf, which
// is then indented.
type marshaler struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// appendValue appends v, marshalled and indented as an element at depth.
func (m *marshaler) appendValue(dst []byte, v reflect.Value, depth int) ([]byte, error) {
	if m.enc == nil {
		m.enc = json.NewEncoder(&m.buf)
	}
	m.buf.Reset()
	if err := m.enc.Encode(asElement(v)); err != nil {
		return dst, err
	}
	b := m.buf.Bytes()
	return appendIndented(dst, b[:len(b)-1], depth), nil // Encode adds "\n"
}

// asElement is what encoding/json would see of v inside its container.
func asElement(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.CanAddr() {
		// A MarshalJSON with a pointer receiver is called for
		// addressable values (slice elements, fields of pointed-to
		// structs): a pointer to v keeps that.
		return v.Addr().Interface()
	}
	return v.Interface()
}

// marshal writes v indented as the element of a value at depth.
func (s *streamer) marshal(v reflect.Value, depth int) {
	if s.err != nil {
		return
	}
	b, err := s.local.appendValue(s.w.AvailableBuffer(), v, depth)
	if _, werr := s.w.Write(b); err == nil {
		err = werr
	}
	s.err = err
}

// chunk is the indented text of elements [lo, hi) of a slice, each after
// ",\n" (but the first of the slice) and the indentation of depth.
type chunk struct {
	v      reflect.Value
	lo, hi int
	depth  int
	out    []byte
	err    error
	// panicked is what a MarshalJSON panicked with on a worker: the
	// writer panics with it, in the caller's goroutine (which may
	// recover), as it would have without workers.
	panicked any
	done     chan struct{}
}

var chunkPool = sync.Pool{New: func() any { return &chunk{done: make(chan struct{}, 1)} }}

// runRecovering is run on a worker.
func (c *chunk) runRecovering(m *marshaler) {
	defer func() {
		if p := recover(); p != nil {
			c.panicked = p
			*m = marshaler{} // its encoder's state is unknown
		}
	}()
	c.run(m)
}

func (c *chunk) run(m *marshaler) {
	in := indentation(c.depth)
	for i := c.lo; i < c.hi; i++ {
		if i > 0 {
			c.out = append(c.out, ",\n"...)
		}
		c.out = append(c.out, in...)
		if c.out, c.err = m.appendValue(c.out, c.v.Index(i), c.depth); c.err != nil {
			return
		}
	}
}

// emit writes a finished chunk and recycles it.
func (s *streamer) emit(c *chunk) {
	if p := c.panicked; p != nil {
		panic(p)
	}
	if s.err == nil {
		_, s.err = s.w.Write(c.out)
		if s.err == nil {
			s.err = c.err
		}
	}
	const keep = 1 << 20 // a huge element's buffer is not kept
	if cap(c.out) > keep {
		c.out = nil
	}
	c.v, c.out, c.err, c.panicked = reflect.Value{}, c.out[:0], nil, nil
	chunkPool.Put(c)
}

func newChunk(v reflect.Value, lo, hi, depth int) *chunk {
	c := chunkPool.Get().(*chunk)
	c.v, c.lo, c.hi, c.depth = v, lo, hi, depth
	return c
}

// elements writes the elements of the non-empty slice v, each at depth,
// with their separators.
func (s *streamer) elements(v reflect.Value, depth int) {
	n := v.Len()
	workers := runtime.GOMAXPROCS(0)
	size := min(max(n/(workers*chunksPerWorker), 1), maxChunk)
	if n < parallelMin || workers == 1 {
		for lo := 0; lo < n && s.err == nil; lo += size {
			c := newChunk(v, lo, min(lo+size, n), depth)
			c.run(&s.local)
			s.emit(c)
		}
		return
	}
	s.startWorkers(workers)
	window := make([]*chunk, 0, workers*windowPerWorker)
	for lo := 0; lo < n && s.err == nil; lo += size {
		if len(window) == cap(window) {
			<-window[0].done
			s.emit(window[0])
			window = append(window[:0], window[1:]...)
		}
		c := newChunk(v, lo, min(lo+size, n), depth)
		s.jobs <- c
		window = append(window, c)
	}
	for _, c := range window { // after an error too: the workers still hold them
		<-c.done
		s.emit(c)
	}
}

func (s *streamer) startWorkers(n int) {
	if s.jobs != nil {
		return
	}
	s.jobs = make(chan *chunk, n*windowPerWorker)
	s.workers.Add(n)
	for range n {
		go func() {
			defer s.workers.Done()
			var m marshaler
			for c := range s.jobs {
				c.runRecovering(&m)
				c.done <- struct{}{}
			}
		}()
	}
}

func (s *streamer) stopWorkers() {
	if s.jobs != nil {
		close(s.jobs)
		s.workers.Wait()
	}
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// custom says whether encoding/json calls a method of v's to encode it.
func custom(v reflect.Value) bool {
	t := v.Type()
	if t.Implements(marshalerType) || t.Implements(textMarshalerType) {
		return true
	}
	return v.CanAddr() && (reflect.PointerTo(t).Implements(marshalerType) || reflect.PointerTo(t).Implements(textMarshalerType))
}

// value writes v, which starts after the indentation of depth.
func (s *streamer) value(v reflect.Value, depth int) {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && !v.IsNil() && !custom(v) {
		v = v.Elem()
	}
	if s.err != nil || !v.IsValid() || custom(v) {
		s.marshal(v, depth)
		return
	}
	if v.Kind() == reflect.Slice {
		if v.IsNil() || v.Len() == 0 || v.Type().Elem().Kind() == reflect.Uint8 { // []byte is base64
			s.marshal(v, depth)
			return
		}
		s.write("[\n")
		if n := v.Len(); n < parallelMin && depth+1 < maxStreamDepth {
			// A few elements, which may be large (a SARIF run): walked
			// like the rest of the top levels.
			in := indentation(depth + 1)
			for i := range n {
				if i > 0 {
					s.write(",\n")
				}
				s.write(in)
				s.value(v.Index(i), depth+1)
			}
		} else {
			// At any depth: the elements are marshalled whole, each on
			// its own.
			s.elements(v, depth+1)
		}
		s.write("\n" + indentation(depth) + "]")
		return
	}
	if depth >= maxStreamDepth {
		s.marshal(v, depth)
		return
	}
	in := indentation(depth + 1)
	switch v.Kind() {
	case reflect.Map:
		if v.IsNil() || v.Len() == 0 || v.Type().Key() != reflect.TypeFor[string]() {
			s.marshal(v, depth)
			return
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		s.write("{\n")
		for i, k := range keys {
			if i > 0 {
				s.write(",\n")
			}
			s.write(in)
			s.key(k.String())
			s.value(v.MapIndex(k), depth+1)
		}
		s.write("\n" + indentation(depth) + "}")
	case reflect.Struct:
		fields, ok := plainFields(v.Type())
		if !ok {
			s.marshal(v, depth)
			return
		}
		n := 0
		for _, f := range fields {
			fv := v.Field(f.index)
			if f.omitEmpty && emptyValue(fv) {
				continue
			}
			if n == 0 {
				s.write("{\n")
			} else {
				s.write(",\n")
			}
			n++
			s.write(in)
			s.key(f.name)
			s.value(fv, depth+1)
		}
		if n == 0 {
			s.write("{}")
			return
		}
		s.write("\n" + indentation(depth) + "}")
	default:
		s.marshal(v, depth)
	}
}

func (s *streamer) key(k string) {
	b, err := json.Marshal(k)
	if err != nil && s.err == nil {
		s.err = err
	}
	s.write(string(b) + ": ")
}

// spaces is indentation for the depths a document reaches in practice;
// deeper lines are built.
const spaces = "                                                                " // 64

// indentation is the two-space indentation of depth.
func indentation(depth int) string {
	if 2*depth <= len(spaces) {
		return spaces[:2*depth]
	}
	return strings.Repeat("  ", depth)
}

// appendIndented appends src, compact JSON as encoding/json writes it,
// indented as json.Indent(dst, src, indentation(depth), "  ") would: the
// first line is not indented, each later one starts with the indentation
// of its depth, an empty array or object stays [] or {}. It reproduces
// that for encoding/json's output only, and does not validate: src has
// been checked (and compacted) by the encoder already. Insignificant
// whitespace, which that output does not have, is dropped all the same.
func appendIndented(dst, src []byte, depth int) []byte {
	from := 0 // src[from:i] is yet to be copied
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			i = stringEnd(src, i)
		case '{', '[':
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				i++
				continue
			}
			depth++
			dst = append(dst, src[from:i+1]...)
			dst = append(dst, newline(depth)...)
			from = i + 1
		case '}', ']':
			depth--
			dst = append(dst, src[from:i]...)
			dst = append(dst, newline(depth)...)
			from = i
		case ',':
			dst = append(dst, src[from:i+1]...)
			dst = append(dst, newline(depth)...)
			from = i + 1
		case ':':
			dst = append(append(dst, src[from:i+1]...), ' ')
			from = i + 1
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[from:i]...)
			from = i + 1
		}
	}
	return append(dst, src[from:]...)
}

// newline is a line break and the indentation of depth.
func newline(depth int) string {
	if 2*depth < len(newlines) {
		return newlines[:1+2*depth]
	}
	return "\n" + strings.Repeat("  ", depth)
}

const newlines = "\n" + spaces

// stringEnd returns the index of the quote that closes the string opening
// at src[open] (len(src)-1 if none does).
func stringEnd(src []byte, open int) int {
	i := open + 1
	for {
		j := bytes.IndexByte(src[i:], '"')
		if j < 0 {
			return len(src) - 1
		}
		i += j
		// A quote after an odd run of backslashes is escaped.
		k := i
		for k > open+1 && src[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i
		}
		i++
	}
}

type streamField struct {
	name      string
	index     int
	omitEmpty bool
}

type fieldList struct {
	fields []streamField
	ok     bool
}

// fieldCache keeps plainFields per struct type.
var fieldCache sync.Map // reflect.Type -> fieldList

// plainFields lists a struct's JSON fields in order; ok is false when the
// struct has anything this walker does not reproduce exactly (embedded
// fields, ",string" options, two fields of one JSON name, which
// encoding/json resolves by its dominance rules): it is then marshalled
// whole.
func plainFields(t reflect.Type) ([]streamField, bool) {
	if l, ok := fieldCache.Load(t); ok {
		fl := l.(fieldList)
		return fl.fields, fl.ok
	}
	fields, ok := structFields(t)
	fieldCache.Store(t, fieldList{fields, ok})
	return fields, ok
}

func structFields(t reflect.Type) ([]streamField, bool) {
	var out []streamField
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			return nil, false
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		sf := streamField{name: name, index: i}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "omitempty":
				sf.omitEmpty = true
			case "":
			default: // string, omitzero...
				return nil, false
			}
		}
		if sf.name == "" {
			sf.name = f.Name
		}
		if !validTagName(sf.name) || seen[sf.name] {
			return nil, false
		}
		seen[sf.name] = true
		out = append(out, sf)
	}
	return out, true
}

// validTagName is a conservative subset of what encoding/json accepts as a
// field name from a tag: anything else is left to it.
func validTagName(s string) bool {
	for _, c := range s {
		if !(c == '_' || c == '-' || c == '.' || c == '/' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// emptyValue is encoding/json's omitempty test.
func emptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}
