package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// keyAt returns a line's key column (after any "- ") and the rest of it
// from the key on.
func keyAt(line string) (int, string) {
	t := strings.TrimLeft(line, " ")
	col := len(line) - len(t)
	for strings.HasPrefix(t, "- ") {
		t2 := strings.TrimLeft(t[2:], " ")
		col += len(t) - len(t2)
		t = t2
	}
	return col, t
}

// checkImageLine checks, in the file's own text, that line n sets image
// and that a sibling key of the same mapping names the container: the
// test reads the file, not archfit's answer, for both.
func checkImageLine(t *testing.T, lines []string, n int, name, image string, isJSON bool) {
	t.Helper()
	if n < 1 || n > len(lines) {
		t.Errorf("container %s: line %d outside the file", name, n)
		return
	}
	col, kv := keyAt(lines[n-1])
	wantImage, wantName := "image: "+image, "name: "+name
	if isJSON {
		wantImage, wantName = `"image": "`+image+`"`, `"name": "`+name+`"`
	}
	if !strings.HasPrefix(kv, wantImage) {
		t.Errorf("container %s: line %d is %q, want %q", name, n, lines[n-1], wantImage)
		return
	}
	for _, dir := range []int{-1, 1} {
		for i := n - 1 + dir; i >= 0 && i < len(lines); i += dir {
			c, kv := keyAt(lines[i])
			if strings.TrimSpace(lines[i]) == "" || c > col {
				continue
			}
			if c < col {
				break
			}
			if strings.HasPrefix(kv, wantName) {
				return
			}
			if dir < 0 && strings.HasPrefix(strings.TrimLeft(lines[i], " "), "- ") {
				break // the item starts here
			}
		}
	}
	t.Errorf("container %s: no %q beside line %d", name, wantName, n)
}

// checkPositions checks every container of every workload read from file.
func checkPositions(t *testing.T, snap *Snapshot, file string, isJSON bool) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	n := 0
	for _, w := range snap.Workloads {
		if w.File != file {
			t.Errorf("%s: file %q, want %q", w.Ref, w.File, file)
			continue
		}
		if w.Line < 1 || w.Line > len(lines) {
			t.Errorf("%s: line %d", w.Ref, w.Line)
		}
		for _, c := range w.Containers {
			if c.Line == 0 {
				t.Errorf("%s container %s: no line", w.Ref, c.Name)
				continue
			}
			if c.Line < w.Line {
				t.Errorf("%s container %s: line %d before its object's %d", w.Ref, c.Name, c.Line, w.Line)
			}
			checkImageLine(t, lines, c.Line, c.Name, c.Image, isJSON)
			n++
		}
	}
	return n
}

func TestPositionsYAML(t *testing.T) {
	file := filepath.Join("..", "cli", "testdata", "argo-cd", "install.yaml")
	snap, errs, err := LoadFiles(context.Background(), []string{file}, nil)
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	// The file itself says how many containers it has.
	data, _ := os.ReadFile(file)
	want := 0
	for _, l := range strings.Split(string(data), "\n") {
		if _, kv := keyAt(l); strings.HasPrefix(kv, "image: ") {
			want++
		}
	}
	if got := checkPositions(t, snap, file, false); got != want || got == 0 {
		t.Errorf("%d containers located, the file has %d image: lines", got, want)
	}
	// A workload's line is its document's first line of content.
	for _, w := range snap.Workloads {
		if l := strings.Split(string(data), "\n")[w.Line-1]; !strings.HasPrefix(l, "apiVersion:") && !strings.HasPrefix(l, "kind:") {
			t.Errorf("%s: line %d is %q", w.Ref, w.Line, l)
		}
	}
}

// The same objects as an indented JSON List and as a stream of JSON
// objects, as kubectl get -o json prints them.
func TestPositionsJSON(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "cli", "testdata", "argo-cd", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil || bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		items = append(items, js)
	}
	list, _ := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "    ")
	var stream bytes.Buffer
	for _, it := range items {
		var b bytes.Buffer
		_ = json.Indent(&b, it, "", "  ")
		stream.Write(b.Bytes())
		stream.WriteString("\n")
	}
	dir := t.TempDir()
	for name, text := range map[string][]byte{"list.json": list, "stream.json": stream.Bytes()} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name)
			if err := os.WriteFile(file, text, 0o600); err != nil {
				t.Fatal(err)
			}
			snap, errs, err := LoadFiles(context.Background(), []string{file}, nil)
			if err != nil || len(errs) > 0 {
				t.Fatal(err, errs)
			}
			if n := checkPositions(t, snap, file, true); n == 0 {
				t.Error("no container located")
			}
			lines := strings.Split(string(text), "\n")
			for _, w := range snap.Workloads {
				if l := strings.TrimSpace(lines[w.Line-1]); l != "{" {
					t.Errorf("%s: line %d is %q, want the object's {", w.Ref, w.Line, l)
				}
			}
		})
	}
}

// An init and a main container with one image: the text scan finds two
// lines, and the object is parsed to tell them apart.
func TestPositionsSameImage(t *testing.T) {
	text := `# leading comment
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  template:
    spec:
      containers:
      - image: "example.com/app:1"   # main
        name: app
      initContainers:
      - name: setup
        image: 'example.com/app:1'
      - name: other
        image: example.com/other:2
`
	file := filepath.Join(t.TempDir(), "d.yaml")
	if err := os.WriteFile(file, []byte("---\n"+text), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, errs, err := LoadFiles(context.Background(), []string{file}, nil)
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	w := snap.Workloads[0]
	got := map[string]int{}
	for _, c := range w.Containers {
		got[c.Name] = c.Line
	}
	if w.Line != 3 || got["app"] != 10 || got["setup"] != 14 || got["other"] != 16 {
		t.Errorf("workload line %d, containers %v", w.Line, got)
	}
	if f, l := w.Position("setup"); f != file || l != 14 {
		t.Errorf("Position(setup) = %s:%d", f, l)
	}
	if f, l := w.Position("injected"); f != file || l != 3 {
		t.Errorf("Position(injected) = %s:%d", f, l)
	}
}

// Operators' custom resources: a container whose image the file sets
// (spec.image, with no name beside it) gets that line; one whose image the
// operator computes (not in the file) gets none, and its findings fall back
// to the object's line.
func TestPositionsCustomResources(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "operators", "*", "*.yaml"))
	located := 0
	for _, file := range files {
		snap, _, err := LoadFiles(context.Background(), []string{file}, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(file)
		lines := strings.Split(string(data), "\n")
		for _, w := range snap.Workloads {
			if w.File != file || w.Line < 1 {
				t.Errorf("%s: at %s:%d", w.Ref, w.File, w.Line)
				continue
			}
			for _, c := range w.Containers {
				inFile := 0
				for i, l := range lines {
					if _, kv := keyAt(l); kv == "image: "+c.Image {
						inFile = i + 1
					}
				}
				switch {
				case inFile == 0 && c.Line != 0:
					t.Errorf("%s %s: line %d, but the file does not set %s", w.Ref, c.Name, c.Line, c.Image)
				case inFile != 0 && (c.Line == 0 || !strings.HasSuffix(lines[c.Line-1], "image: "+c.Image)):
					t.Errorf("%s %s: line %d, the file sets %s on line %d", w.Ref, c.Name, c.Line, c.Image, inFile)
				case c.Line != 0:
					located++
				}
			}
		}
	}
	if located == 0 {
		t.Error("no container located")
	}
}

// Pods that are their own workload (a bare pod, a static pod's mirror) are
// located; pods owned by a ReplicaSet are not looked up (their workload
// is the Deployment) and need no position.
func TestPositionsPodWorkloads(t *testing.T) {
	text := `{"apiVersion":"v1","kind":"List","items":[
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bare","namespace":"ns"},
 "spec":{"containers":[
  {"name":"a","image":"r/a:1"}]}},
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"mirror","namespace":"ns","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"n1","controller":true}]},
 "spec":{"containers":[
  {"name":"b","image":"r/b:1"}]}},
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"owned-x1","namespace":"ns","labels":{"pod-template-hash":"x1"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"owned-x1","uid":"rs","controller":true}]},
 "spec":{"containers":[{"name":"c","image":"r/c:1"}]}}
]}
`
	file := filepath.Join(t.TempDir(), "pods.json")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, errs, err := LoadFiles(context.Background(), []string{file}, nil)
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	want := map[string][2]int{"Pod/bare": {2, 4}, "Pod/mirror": {5, 7}, "Deployment/owned": {0, 0}}
	for _, w := range snap.Workloads {
		k := w.Kind + "/" + w.Name
		wl, ok := want[k]
		if !ok {
			t.Errorf("unexpected workload %s", k)
			continue
		}
		delete(want, k)
		if w.Line != wl[0] || len(w.Containers) != 1 || w.Containers[0].Line != wl[1] {
			t.Errorf("%s: line %d, containers %+v; want line %d, image on line %d", k, w.Line, w.Containers, wl[0], wl[1])
		}
	}
	if len(want) > 0 {
		t.Errorf("workloads missing: %v", want)
	}
}
