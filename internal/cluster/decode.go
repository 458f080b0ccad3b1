package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// collector accumulates decoded objects, keeping the last of duplicates
// (the same object in two files of one dump).
type collector struct {
	in     input
	seen   map[string]int // "kind/ns/name" -> index in its slice, per kind family
	errs   []error
	source string // current file name, for errors
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}}
}

func (c *collector) fail(line int, err error) {
	c.errs = append(c.errs, &DocumentError{File: c.source, Line: line, Err: err})
}

// lineOf returns the 1-based line of byte offset off in data.
func lineOf(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// decodeFile reads one input file: a JSON stream, or multi-document YAML.
func (c *collector) decodeFile(name string, data []byte) {
	c.source = name
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a BOM from an editor on Windows
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		c.decodeJSONStream(data)
		return
	}
	c.decodeYAMLStream(data)
}

// decodeJSONStream reads concatenated JSON values (objects, Lists, or arrays
// of objects). After a syntax error it resumes at the next line that starts
// with "{", so one broken object does not hide the rest.
func (c *collector) decodeJSONStream(data []byte) {
	base := int64(0)
	for base < int64(len(data)) {
		dec := json.NewDecoder(bytes.NewReader(data[base:]))
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if err == io.EOF {
				return
			}
			if err != nil {
				off := base + dec.InputOffset()
				var se *json.SyntaxError
				if errors.As(err, &se) {
					off = base + se.Offset
				}
				c.fail(lineOf(data, off), fmt.Errorf("invalid JSON: %w", err))
				next := nextLineStarting(data, off, '{')
				if next < 0 {
					return
				}
				base = next
				break
			}
			end := base + dec.InputOffset()
			start := end - int64(len(raw))
			line := lineOf(data, start)
			if raw[0] == '[' {
				c.decodeJSONArray(data, raw, start)
				continue
			}
			c.decodeObject(raw, line, func(i int) int {
				return lineOf(data, start+jsonItemOffset(raw, i))
			})
		}
	}
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

func (c *collector) decodeJSONArray(data, raw []byte, start int64) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		c.fail(lineOf(data, start), err)
		return
	}
	for i, e := range elems {
		off := start + jsonItemOffsetIn(raw, i, false)
		c.decodeObject(e, lineOf(data, off), func(j int) int { return lineOf(data, off+jsonItemOffset(e, j)) })
	}
}

// jsonItemOffset returns the offset in obj of its items[i], 0 if not found.
func jsonItemOffset(obj []byte, i int) int64 { return jsonItemOffsetIn(obj, i, true) }

func jsonItemOffsetIn(obj []byte, i int, inItems bool) int64 {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if inItems {
		if _, err := dec.Token(); err != nil { // {
			return 0
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return 0
			}
			if k == "items" {
				break
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return 0
			}
		}
	}
	if _, err := dec.Token(); err != nil { // [
		return 0
	}
	for n := 0; dec.More(); n++ {
		off := dec.InputOffset()
		if n == i {
			// InputOffset is before the separating comma and spaces.
			for off < int64(len(obj)) && strings.IndexByte(", \t\r\n", obj[off]) >= 0 {
				off++
			}
			return off
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return 0
		}
	}
	return 0
}

// yamlDoc is one document of a YAML stream and its first line in the file.
type yamlDoc struct {
	line int
	data []byte
}

// splitYAML splits a stream on "---" lines, keeping each document's line.
func splitYAML(data []byte) []yamlDoc {
	var docs []yamlDoc
	cur := yamlDoc{line: 1}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i+1], data[i+1:]
		} else {
			l, data = data, nil
		}
		t := bytes.TrimRight(l, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.Equal(t, []byte("...")) {
			docs = append(docs, cur)
			cur = yamlDoc{line: lineNo + 1}
			continue
		}
		cur.data = append(cur.data, l...)
	}
	return append(docs, cur)
}

// blank reports whether a YAML document has only comments and blank lines.
func blank(doc []byte) bool {
	for _, l := range bytes.Split(doc, []byte("\n")) {
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

func (c *collector) decodeYAMLStream(data []byte) {
	for _, d := range splitYAML(data) {
		if blank(d.data) {
			continue
		}
		js, err := yaml.YAMLToJSON(d.data)
		if err != nil {
			if !c.recoverYAMLList(d) {
				c.fail(yamlErrorLine(d, err), yamlError(err))
			}
			continue
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		var lines []int // items' lines, parsed on the first error
		doc := d
		c.decodeObject(js, d.line, func(i int) int {
			if lines == nil {
				lines = yamlItemLines(doc.data)
			}
			if i < len(lines) {
				return doc.line + lines[i] - 1
			}
			return doc.line
		})
	}
}

// recoverYAMLList reads the items of a broken "kind: List" document one by
// one, as kubectl prints them ("- " at column 0 under "items:"), so one bad
// item does not hide hundreds of good ones, and the error names the bad
// item's own line. It returns false if d does not look like such a List.
func (c *collector) recoverYAMLList(d yamlDoc) bool {
	lines := bytes.SplitAfter(d.data, []byte("\n"))
	inItems := false
	var item []byte
	itemLine := 0
	var items []yamlDoc
	for i, l := range lines {
		switch {
		case bytes.HasPrefix(l, []byte("items:")):
			inItems = true
			continue
		case !inItems:
			continue
		case bytes.HasPrefix(l, []byte("- ")):
			if item != nil {
				items = append(items, yamlDoc{line: itemLine, data: item})
			}
			item, itemLine = append([]byte("  "), l[2:]...), d.line+i
		case bytes.HasPrefix(l, []byte("  ")) || len(bytes.TrimSpace(l)) == 0:
			item = append(item, l...)
		default: // back at column 0: the List's other keys
			if item != nil {
				items = append(items, yamlDoc{line: itemLine, data: item})
			}
			item, inItems = nil, false
		}
	}
	if item != nil {
		items = append(items, yamlDoc{line: itemLine, data: item})
	}
	if len(items) == 0 {
		return false
	}
	for _, it := range items {
		js, err := yaml.YAMLToJSON(it.data)
		if err != nil {
			c.fail(yamlErrorLine(it, err), yamlError(err))
			continue
		}
		c.decodeObject(js, it.line, nil)
	}
	return true
}

// yamlItemLines returns the lines (1-based, in doc) of the items of a List
// document. It re-parses the document, so it is only called on errors.
func yamlItemLines(doc []byte) []int {
	lines := []int{}
	var n yamlv3.Node
	if err := yamlv3.Unmarshal(doc, &n); err != nil || len(n.Content) == 0 {
		return lines
	}
	m := n.Content[0]
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value == "items" {
			for _, it := range m.Content[k+1].Content {
				lines = append(lines, it.Line)
			}
		}
	}
	return lines
}

// typeMeta is what decodeObject dispatches on.
type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decodeObject reads one JSON object, a List of them, or a typed list
// (PodList, whose items carry no kind). itemLine gives the line of items[i].
func (c *collector) decodeObject(js []byte, line int, itemLine func(int) int) {
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
			l := func() int {
				if itemLine == nil {
					return line
				}
				return itemLine(i)
			}
			c.decodeItem(it, tm.APIVersion, itemKind, l)
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

// add decodes an object of a kind archfit reads; other kinds are skipped.
func (c *collector) add(apiVersion, kind string, js []byte) error {
	group, _, _ := strings.Cut(apiVersion, "/")
	if !strings.Contains(apiVersion, "/") {
		group = ""
	}
	var typed runtime.Object
	switch {
	case group == "" && kind == "Pod":
		p := &corev1.Pod{}
		if err := unmarshal(js, kind, p); err != nil {
			return err
		}
		c.keep("Pod", p.Namespace, p.Name, func(i int) { c.in.pods[i] = p }, func() int { c.in.pods = append(c.in.pods, p); return len(c.in.pods) - 1 })
		return nil
	case group == "" && kind == "Node":
		n := &corev1.Node{}
		if err := unmarshal(js, kind, n); err != nil {
			return err
		}
		c.keep("Node", "", n.Name, func(i int) { c.in.nodes[i] = n }, func() int { c.in.nodes = append(c.in.nodes, n); return len(c.in.nodes) - 1 })
		return nil
	case group == "" && kind == "Event":
		e := &corev1.Event{}
		if err := unmarshal(js, kind, e); err != nil {
			return err
		}
		c.addEvent(e)
		return nil
	case group == "events.k8s.io" && kind == "Event":
		e := &eventsv1.Event{}
		if err := unmarshal(js, kind, e); err != nil {
			return err
		}
		c.addEvent(coreEvent(e))
		return nil
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
			return fmt.Errorf("reading %s: %w", kind, err)
		}
		o, err := newRollout(u)
		if err != nil {
			return err
		}
		c.addObject(o)
		return nil
	default:
		return nil // not something archfit reads (Service, ConfigMap...)
	}
	if err := unmarshal(js, kind, typed); err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return fmt.Errorf("reading %s: %w", kind, err)
	}
	o, err := newObject(typed, u)
	if err != nil {
		return err
	}
	c.addObject(o)
	return nil
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
