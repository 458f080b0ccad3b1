package report

import (
	"bufio"
	"encoding"
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// jsonStream writes v as json.Encoder with SetIndent("", "  ") would, byte
// for byte, without building the whole text in memory: structs, slices and
// string-keyed maps are walked, and each element of a slice or value of a
// map is marshalled on its own. An audit of 100,000 pods is some 80 MB of
// JSON; the encoder held it twice (compact, then indented) on top of the
// result it was made from.
//
// Only the first maxStreamDepth levels are walked: deeper values are
// small, and marshalled whole.
//
// An error while marshalling (a MarshalJSON that fails, a NaN) stops the
// stream where it happened: what was flushed before it stays written, so
// the output is then not valid JSON and the error is returned for the
// caller to report and exit non-zero, as any streaming writer must.
func jsonStream(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	s := &streamer{w: bw}
	s.value(reflect.ValueOf(v), 0)
	if s.err == nil {
		_, s.err = bw.WriteString("\n")
	}
	if s.err == nil {
		s.err = bw.Flush()
	}
	return s.err
}

const maxStreamDepth = 3

type streamer struct {
	w   *bufio.Writer
	err error
}

func (s *streamer) write(str string) {
	if s.err == nil {
		_, s.err = s.w.WriteString(str)
	}
}

// marshal writes v indented as the element of a value at depth.
func (s *streamer) marshal(v reflect.Value, depth int) {
	if s.err != nil {
		return
	}
	var x any
	if v.IsValid() {
		if v.CanAddr() {
			// As inside its container: a MarshalJSON with a pointer
			// receiver is called for addressable values.
			x = v.Addr().Interface()
		} else {
			x = v.Interface()
		}
	}
	b, err := json.MarshalIndent(x, strings.Repeat("  ", depth), "  ")
	if err != nil {
		s.err = err
		return
	}
	_, s.err = s.w.Write(b)
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
	if s.err != nil || depth >= maxStreamDepth || !v.IsValid() || custom(v) {
		s.marshal(v, depth)
		return
	}
	in := strings.Repeat("  ", depth+1)
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() || v.Len() == 0 || v.Type().Elem().Kind() == reflect.Uint8 { // []byte is base64
			s.marshal(v, depth)
			return
		}
		s.write("[\n")
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				s.write(",\n")
			}
			s.write(in)
			s.value(v.Index(i), depth+1)
		}
		s.write("\n" + in[2:] + "]")
	case reflect.Map:
		if v.IsNil() || v.Len() == 0 || v.Type().Key().Kind() != reflect.String || v.Type().Key() != reflect.TypeFor[string]() {
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
		s.write("\n" + in[2:] + "}")
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
		s.write("\n" + in[2:] + "}")
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

type streamField struct {
	name      string
	index     int
	omitEmpty bool
}

type fieldList struct {
	fields []streamField
	ok     bool
}

// fieldCache keeps plainFields per struct type: it is asked once per
// element, and an audit writes hundreds of thousands of them.
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
