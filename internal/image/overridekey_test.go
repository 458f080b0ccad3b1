package image

import (
	"encoding/json"
	"testing"
)

// overrideKey names cached reports on disk: it must stay what json.Marshal
// writes, for every override.
func TestOverrideKeyIsJSON(t *testing.T) {
	for _, o := range overrides() {
		checkOverrideKey(t, o)
	}
}

func FuzzOverrideKey(f *testing.F) {
	for _, o := range overrides() {
		var c, a string
		if len(o.Command) > 0 {
			c = o.Command[0]
		}
		if len(o.Args) > 0 {
			a = o.Args[0]
		}
		f.Add(c, a, o.Path, o.PathSet)
	}
	f.Fuzz(func(t *testing.T, c, a, path string, pathSet bool) {
		checkOverrideKey(t, &Override{Command: []string{c, a}, Args: []string{a}, Path: path, PathSet: pathSet})
		checkOverrideKey(t, &Override{Args: []string{c}, PathSet: pathSet})
	})
}

func overrides() []*Override {
	return []*Override{
		{},
		{Command: []string{}, Args: []string{}},
		{Command: []string{"/app", "--port", "8080"}},
		{Args: []string{"--port=80", ""}},
		{Path: "/usr/bin:/bin", PathSet: true},
		{PathSet: true},
		{Command: []string{"sh", "-c", `echo "hi" && exit 1`}, Args: []string{"a<b>c"}, Path: `C:\bin`},
		{Command: []string{"ünïcode", "tab\there", "del\x7f", "bad\xff"}},
		{Command: []string{"a"}, Args: []string{"b"}, Path: "p", PathSet: true},
	}
}

func checkOverrideKey(t *testing.T, o *Override) {
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := overrideKey(o); got != string(b) {
		t.Errorf("overrideKey(%#v) = %s, json.Marshal writes %s", o, got, b)
	}
}
