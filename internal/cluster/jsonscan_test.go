package cluster

import (
	"bytes"

	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sigs.k8s.io/yaml"
	"sort"
	"strings"
	"testing"
)

// decodedAs decodes data as one JSON input, the fast way or the
// json.Decoder way, and describes everything read: objects, pods, nodes,
// events, where they were and the errors.
func decodedAs(t *testing.T, data []byte, fast bool) string {
	t.Helper()
	c := newCollector()
	c.noFast = !fast
	return decodedBy(t, c, data)
}

// decodedBy is decodedAs with a collector set up by the caller.
func decodedBy(t *testing.T, c *collector, data []byte) string {
	t.Helper()
	if err := c.decodeFile(context.Background(), "in.json", strings.NewReader(string(data))); err != nil {
		return "fails: " + err.Error()
	}
	return describe(t, c)
}

// decodedMapped is decodedAs the way a large file is read: from a file,
// mapped into memory (where this system maps files), its pages given back
// after every element. The mapping is gone when describe reads what was
// kept: a value still pointing into it would crash the test.
func decodedMapped(t *testing.T, data []byte) string {
	t.Helper()
	f := openWritten(t, filepath.Join(t.TempDir(), "in.json"), data)
	c := newCollector()
	c.mapMin, c.releaseEvery = 1, 1
	if err := c.decodeFile(context.Background(), "in.json", f); err != nil {
		return "fails: " + err.Error()
	}
	body := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	if canMap && len(body) > 0 && (body[0] == '{' || body[0] == '[') && c.mappedInputs != 1 {
		t.Errorf("a JSON file was not mapped")
	}
	return describe(t, c)
}

// describe lists what c read (see decodedAs).
func describe(t *testing.T, c *collector) string {
	t.Helper()
	var b strings.Builder
	dump := func(what string, v any) {
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s\n", what, js)
	}
	for _, p := range c.in.pods {
		dump("pod", p)
	}
	for _, n := range c.in.nodes {
		dump("node", n)
	}
	for _, e := range c.in.events {
		dump("event", e)
	}
	for _, o := range c.in.objects {
		dump("object "+o.ref.String(), o.typed)
		// Its unstructured form, not the text it is made from (an
		// indented item may be kept without its indentation).
		orig, err := json.Marshal(o.original())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "original %s\n", orig)
	}
	var locs []string
	for k, l := range c.in.locs {
		locs = append(locs, fmt.Sprintf("loc %s %s:%d %v\n", k, l.file, l.line, l.images))
	}
	sort.Strings(locs)
	b.WriteString(strings.Join(locs, ""))
	for _, e := range c.errs {
		fmt.Fprintf(&b, "error %v\n", e)
	}
	return b.String()
}

// TestFastJSONSameAsDecoder reads JSON inputs both ways and wants the same
// objects, lines and errors: well-formed dumps take the fast path, and
// what it does not read exactly (keys spelled in another case, escapes,
// null kinds, items inside items, syntax errors) is left to encoding/json.
func TestFastJSONSameAsDecoder(t *testing.T) {
	pod := func(name, extra string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `","namespace":"ns","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u","controller":true}]` + extra + `},"spec":{"nodeName":"n1","containers":[{"name":"app","image":"r/app:1","command":["/app"]}]},"status":{"phase":"Running","containerStatuses":[{"name":"app","ready":true,"restartCount":2,"image":"r/app:1","imageID":"x","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}}}]}}`
	}
	deploy := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"ns","annotations":{"a":"b"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"app","image":"r/app:1"}]}}}}`
	inputs := map[string]string{
		"list":            `{"apiVersion":"v1","kind":"List","items":[` + deploy + `,` + pod("p1", "") + `,` + pod("p2", `,"labels":{"x":"y"}`) + `]}`,
		"indented":        "{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n    " + deploy + ",\n    " + pod("p1", "") + "\n  ],\n  \"kind\": \"List\"\n}\n",
		"stream":          deploy + "\n" + pod("p1", "") + "\n" + pod("p2", "") + "\n",
		"glued":           deploy + pod("p1", ""),
		"array":           "[" + deploy + ", 5, [1], " + pod("p1", "") + "]",
		"podlist":         `{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"a","namespace":"ns"},"spec":{"containers":[{"name":"c","image":"i"}]}}]}`,
		"kind case":       `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","Kind":"Pod","metadata":{"name":"a"}},{"APIVERSION":"v1","kind":"Pod","metadata":{"name":"b"}}]}`,
		"kelvin":          `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Node","` + "\u212a" + `ind":"Pod","metadata":{"name":"a"}}]}`,
		"escaped key":     `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","\u006bind":"Pod","metadata":{"name":"a"}}]}`,
		"escaped value":   `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"P\u006fd","metadata":{"name":"a"}}]}`,
		"null kind":       `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","kind":null,"metadata":{"name":"a"}}]}`,
		"number kind":     `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":7,"metadata":{"name":"a"}}]}`,
		"duplicate kind":  `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","kind":"Pod","metadata":{"name":"a"}}]}`,
		"items in item":   `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","items":5,"metadata":{"name":"a"}}]}`,
		"list in list":    `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"List","items":[` + pod("inner", "") + `]}]}`,
		"kindless item":   `{"apiVersion":"v1","kind":"List","items":[{"metadata":{"name":"a"}},` + pod("p1", "") + `]}`,
		"bad field":       `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"status":{"containerStatuses":[{"restartCount":"seven"}]}},` + pod("p1", "") + `]}`,
		"not array":       `{"apiVersion":"v1","kind":"List","items":{"a":1}}`,
		"items twice":     `{"apiVersion":"v1","items":[` + pod("p1", "") + `],"kind":"List","items":[` + pod("p2", "") + `]}`,
		"escaped wrapper": `{"apiVersion":"v1","kind":"List","it\u0065ms":[` + pod("p1", "") + `]}`,
		"wrapper kind 5":  `{"apiVersion":"v1","kind":5,"items":[]}`,
		"no kind":         `{"apiVersion":"v1","items":[]}`,
		"syntax":          deploy + "\n" + `{"apiVersion":"v1","kind":"Pod",` + "\n" + pod("p2", ""),
		"syntax in list":  `{"apiVersion":"v1","kind":"List","items":[` + pod("p1", "") + `,{"apiVersion":"v1","kind":"Pod" "x"}]}` + "\n" + pod("p3", ""),
		"trailing comma":  `{"apiVersion":"v1","kind":"List","items":[` + pod("p1", "") + `,]}`,
		"numbers":         `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"n"},"spec":{"replicas":-0,"x":[1.5e3,0.1,-2E-2,true,false,null]}}]}`,
		"bad number":      `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"n"},"spec":{"replicas":012}}]}`,
		"top comma":       deploy + ",\n" + pod("p1", ""),
		"top scalar":      "5\n" + deploy,
		"control char":    `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a` + "\t" + `"}}`,
		"invalid utf8":    `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a` + "\xff" + `"}}`,
	}
	var long strings.Builder
	for i := range 3000 {
		if i > 0 {
			long.WriteString(",\n    ")
		}
		long.WriteString(pod(fmt.Sprintf("p%d", i), ""))
	}
	inputs["long list"] = "{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n    " + long.String() + "\n  ],\n  \"kind\": \"List\"\n}\n"
	inputs["long list, syntax at its end"] = strings.Replace(inputs["long list"], `"p2999"`, `"p2999" 5`, 1)
	files, _ := filepath.Glob("testdata/*.json")
	more, _ := filepath.Glob("testdata/*/*.json")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = string(b)
	}
	// The well-formed ones take the fast path.
	for _, name := range []string{"list", "indented", "stream", "glued", "array", "podlist", "kind case", "null kind", "bad field", "numbers"} {
		if ok, err := newCollector().fastJSONStream(context.Background(), []byte(inputs[name])); !ok || err != nil {
			t.Errorf("%s: not read the fast way (%v)", name, err)
		}
	}
	for _, name := range []string{"syntax", "syntax in list", "trailing comma", "bad number", "top comma", "top scalar", "control char"} {
		if ok, _ := newCollector().fastJSONStream(context.Background(), []byte(inputs[name])); ok {
			t.Errorf("%s: read the fast way", name)
		}
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			slow, fast := decodedAs(t, []byte(in), false), decodedAs(t, []byte(in), true)
			if slow != fast {
				t.Errorf("fast path reads differently\nslow:\n%s\nfast:\n%s", slow, fast)
			}
			if mapped := decodedMapped(t, []byte(in)); mapped != fast {
				t.Errorf("a mapped input reads differently\nread:\n%s\nmapped:\n%s", fast, mapped)
			}
			if slow == "" {
				t.Errorf("nothing read")
			}
		})
	}
}

// TestConcurrentItemsSameAsInOrder: a long List, whose items are decoded
// on several goroutines (decodeItems), gives exactly what reading them one
// by one gives: the same objects in the same order, the last of
// duplicates, pods sharing containers per owner (runs of pods split
// between workers), where each was, and each bad item's error at its line,
// with the items only the in-order path reads (keys to fold, nested Lists,
// kindless ones, over the cap) among them.
func TestConcurrentItemsSameAsInOrder(t *testing.T) {
	pod := func(name, owner, image string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `","namespace":"ns","labels":{"app":"` + owner + `"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"` + owner + `","uid":"` + owner + `","controller":true}]},"spec":{"nodeName":"n1","containers":[{"name":"app","image":"` + image + `"}]},"status":{"phase":"Running"}}`
	}
	odd := []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"ns"},"spec":{"template":{"spec":{"containers":[{"name":"app","image":"r/d:1"}]}}}}`,
		`{"apiVersion":"v1","Kind":"Pod","metadata":{"name":"a"}}`,
		`{"apiVersion":"v1","kind":"Node","` + "\u212a" + `ind":"Pod","metadata":{"name":"k"}}`,
		`{"apiVersion":"v1","kind":"Pod","kind":null,"metadata":{"name":"nullkind"}}`,
		`{"apiVersion":"v1","kind":7,"metadata":{"name":"a"}}`,
		`{"apiVersion":"v1","kind":"Pod","items":5,"metadata":{"name":"a"}}`,
		`{"apiVersion":"v1","kind":"List","items":[` + pod("inner", "rs-inner", "r/i:1") + `]}`,
		`{"metadata":{"name":"kindless"}}`,
		`{"kind":"Pod","metadata":{"name":"noversion"}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"status":{"containerStatuses":[{"restartCount":"seven"}]}}`,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}`,
		`{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","labels":{"kubernetes.io/arch":"arm64"}}}`,
		`{"apiVersion":"v1","kind":"Event","metadata":{"name":"e","namespace":"ns"},"reason":"BackOff","involvedObject":{"kind":"Pod","name":"p-1-0","namespace":"ns"}}`,
		`{"apiVersion":"example.com/v1","kind":"Thing","metadata":{"name":"t","namespace":"ns"},"spec":{"containers":[{"name":"c","image":"r/thing:1"}]}}`,
		`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"ro","namespace":"ns"},"spec":{"template":{"spec":{"containers":[{"name":"app","image":"r/ro:1"}]}}}}`,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"big","namespace":"ns","annotations":{"x":"` + strings.Repeat("x", 12000) + `"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
	}
	var items []string
	for i := 0; i < 700; i++ {
		owner := fmt.Sprintf("rs-%d", i/7)
		image := fmt.Sprintf("r/app:%d", i/7)
		if i%11 == 0 {
			image = "r/other:1" // a pod whose containers differ from its neighbours'
		}
		name := fmt.Sprintf("p-%d-%d", i/7, i%7)
		if i%97 == 0 {
			name = "p-1-0" // a duplicate: the last one read is kept
		}
		items = append(items, pod(name, owner, image))
		if i%43 == 0 {
			items = append(items, odd[(i/43)%len(odd)])
		}
	}
	items = append(items, odd...)
	data := []byte("{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n" + strings.Join(items, ",\n") + "\n]}\n")
	read := func(workers int) string {
		c := newCollector()
		c.workers = workers
		c.limits.object = 2048 // "big" is over it
		return decodedBy(t, c, data)
	}
	want := read(1)
	for _, n := range []string{`"p-1-0"`, "no apiVersion or kind", "restartCount", "Thing", "Rollout", "larger than", "inner", "nullkind"} {
		if !strings.Contains(want, n) {
			t.Fatalf("the in-order read lacks %s:\n%s", n, want)
		}
	}
	for _, workers := range []int{2, 3, 8} {
		if got := read(workers); got != want {
			t.Errorf("%d workers read differently\nin order:\n%s\nconcurrently:\n%s", workers, want, got)
		}
	}
	// Indented as kubectl writes it: the goroutines decode the items
	// without their indentation (compactValid), lines stay the file's.
	var ind bytes.Buffer
	if err := json.Indent(&ind, data, "", "    "); err != nil {
		t.Fatal(err)
	}
	indentedData := ind.Bytes()
	readIndented := func(workers int) string {
		c := newCollector()
		c.workers = workers
		c.limits.object = 4 * 2048 // "big" stays over it
		return decodedBy(t, c, indentedData)
	}
	wantIndented := readIndented(1)
	if !strings.Contains(wantIndented, "in.json:1") {
		t.Fatalf("no item placed on the lines of the indented file:\n%s", wantIndented)
	}
	for _, workers := range []int{2, 8} {
		if got := readIndented(workers); got != wantIndented {
			t.Errorf("indented, %d workers read differently\nin order:\n%s\nconcurrently:\n%s", workers, wantIndented, got)
		}
	}

	// The same items as a YAML List (kubectl's layout: "- " at column
	// 0), most pods as one-line flow mappings, every tenth pod and the
	// other kinds in block style, and items that are not YAML.
	var y strings.Builder
	y.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i, it := range items {
		switch {
		case i%10 == 0 || !strings.Contains(it, `"kind":"Pod"`):
			b, err := yaml.JSONToYAML([]byte(it))
			if err != nil {
				y.WriteString("- " + it + "\n")
				continue
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			y.WriteString("- " + lines[0] + "\n")
			for _, l := range lines[1:] {
				y.WriteString("  " + l + "\n")
			}
		case i%97 == 5:
			y.WriteString("- {apiVersion: v1, kind: Pod, metadata: [}\n")
		default:
			y.WriteString("- " + it + "\n")
		}
	}
	yamlIn := []byte(y.String())
	readYAML := func(workers int) string {
		c := newCollector()
		c.workers = workers
		c.limits.object = 8192 // the List without its items (blank lines in their place) is under it
		if err := c.decodeFile(context.Background(), "in.yaml", bytes.NewReader(bytes.Clone(yamlIn))); err != nil {
			t.Fatal(err)
		}
		return describe(t, c)
	}
	want = readYAML(1)
	for _, n := range []string{`"p-1-0"`, "did not find expected node content", "restartCount", "Thing", "Rollout", "larger than", "in.yaml:"} {
		if !strings.Contains(want, n) {
			t.Fatalf("the in-order YAML read lacks %s:\n%s", n, want)
		}
	}
	for _, workers := range []int{2, 3, 8} {
		if got := readYAML(workers); got != want {
			t.Errorf("YAML, %d workers read differently\nin order:\n%s\nconcurrently:\n%s", workers, want, got)
		}
	}
}

// TestJSONScanValid: the fast path's validator accepts only what
// encoding/json accepts, on every prefix and one-byte change of inputs.
func TestJSONScanValid(t *testing.T) {
	ins := []string{
		`{"a":[1,-2.5e+3,true,false,null,"x\"\\\/\b\f\n\r\tä\u00e4"],"b":{}, "c" : [ ] }`,
		`[0, 1e5, -0.0, 1E-2, {"k":"v"}]`,
	}
	for _, in := range ins {
		for i := 0; i <= len(in); i++ {
			for _, c := range []byte("{}[]\",:-+.0123456789eEtrfalsenu\\/ \t\nx\x01") {
				b := []byte(in[:i] + string(c) + in[min(i+1, len(in)):])
				for _, d := range [][]byte{b, []byte(in[:i])} {
					s := &jsonScan{data: d}
					ok := s.valid(0)
					s.ws()
					ok = ok && s.i == len(d)
					if ok && !json.Valid(d) {
						t.Errorf("scan accepts %q, encoding/json does not", d)
					}
					if !ok && json.Valid(d) && len(d) > 0 {
						t.Logf("scan rejects %q (slow path reads it)", d)
					}
				}
			}
		}
	}
	deep := strings.Repeat("[", fastMaxDepth+1) + strings.Repeat("]", fastMaxDepth+1)
	if s := (&jsonScan{data: []byte(deep)}); s.valid(0) {
		t.Errorf("depth %d accepted", fastMaxDepth+1)
	}
}

// TestSpreadRecoversPerItem: spread visits every index once, on its own
// decoders, and a panic on one index leaves only that index undone (it is
// then read in order, where it panics as it always did).
func TestSpreadRecoversPerItem(t *testing.T) {
	c := newCollector()
	c.workers = 3
	seen := make([]int, 300)
	decs := make([]*itemDecoder, 300)
	if !c.spread(len(seen), 64, func(d *itemDecoder, i int) {
		decs[i] = d
		if i%50 == 7 {
			panic("hostile item")
		}
		seen[i]++
	}) {
		t.Fatal("300 items on 3 workers were not spread")
	}
	distinct := map[*itemDecoder]bool{}
	for i, n := range seen {
		want := 1
		if i%50 == 7 {
			want = 0
		}
		if n != want {
			t.Errorf("item %d done %d times, want %d", i, n, want)
		}
		distinct[decs[i]] = true
	}
	if len(distinct) != 3 {
		t.Errorf("%d decoders used, want one per worker (3)", len(distinct))
	}
	if c.spread(100, 64, func(*itemDecoder, int) { t.Error("called") }) {
		t.Error("100 items at 64 each were spread over fewer than 2 workers")
	}
}

// TestCompactValid: compactValid writes what json.Compact writes, for valid
// JSON with white space in and around strings, escapes and nesting.
func TestCompactValid(t *testing.T) {
	for _, in := range []string{
		`{}`, ` [ ] `, `{"a": 1, "b" : [ true , false, null ], "c":{ }}`,
		"{\n    \"s\": \" spaced  string \\\" with \\\\ escapes \\n \",\n    \"n\": -1.5e+3\n}",
		`"\\"`, `"a\"b"`, "[\"\u00e9 \u2028\", \"\\u0041\" ,\t\r\n 7]",
		`{"k":"v\\","k2":"\\\\","k3":[{"x":"}"},"]"]}`,
	} {
		if !json.Valid([]byte(in)) {
			t.Fatalf("not valid: %q", in)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(in)); err != nil {
			t.Fatal(err)
		}
		if got := compactValid(nil, []byte(in)); string(got) != want.String() {
			t.Errorf("compactValid(%q) = %q, want %q", in, got, want.String())
		}
	}
	// Real dumps: every test input, indented the way kubectl does.
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !json.Valid(b) {
			continue
		}
		var ind, want bytes.Buffer
		_ = json.Indent(&ind, b, "", "    ")
		_ = json.Compact(&want, b)
		if got := compactValid(nil, ind.Bytes()); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: compactValid differs from json.Compact", f)
		}
	}
}
