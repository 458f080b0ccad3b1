package image

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tagFiles are tag files as archfit writes them and as it must still read
// or refuse them: decodeTag must agree with encoding/json on each.
func tagFiles(t testing.TB) [][]byte {
	written, err := json.Marshal(tagEntry{Digest: "sha256:" + keyHash("x"), MediaType: mediaTypeOCIIndex,
		Seen: time.Date(2026, 12, 1, 4, 42, 41, 270225449, time.UTC), Manifest: []byte(`{"schemaVersion":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		written,
		[]byte(`{"digest":"sha256:ab","mediaType":"m","seen":"2026-12-01T04:42:41Z"}`),
		[]byte(" {\n \"digest\" : \"d\" ,\t\"manifest\":\"eyJhIjoxfQ==\" }\n"),
		[]byte(`{}`),
		[]byte(`{"digest":"d1","digest":"d2"}`),                 // the last wins
		[]byte(`{"Digest":"d"}`),                                // encoding/json matches names case-insensitively
		[]byte(`{"digest":"d","other":"x"}`),                    // unknown keys are ignored
		[]byte(`{"digest":"d","other":{"a":[1,2]}}`),            // of any type
		[]byte(`{"digest":"d\u0031"}`),                          // escapes
		[]byte(`{"digest":"dé"}`),                               // non-ASCII
		[]byte(`{"digest":null,"manifest":null}`),               // nulls
		[]byte(`{"manifest":"not base64!"}`),                    // refused
		[]byte(`{"seen":"yesterday"}`),                          // refused
		[]byte(`{"digest":"d"} x`),                              // refused: trailing data
		[]byte(`{"digest":"d",}`),                               // refused: trailing comma
		[]byte(`{"digest":"d"`),                                 // refused: cut short
		[]byte(`{"digest":"d`),                                  // refused
		[]byte(`{"digest" "d"}`),                                // refused
		[]byte(`["digest"]`),                                    // refused
		[]byte(``),                                              // refused
		[]byte(`{"digest":"a` + "\x00" + `b"}`),                 // refused: control character
		[]byte(`{"digest":1}`),                                  // refused: not a string
		[]byte(`{"manifest":"eyJhIjoxfQ==","manifest":"e30="}`), // the last wins
	}
}

func TestDecodeTagAgreesWithEncodingJSON(t *testing.T) {
	for _, b := range tagFiles(t) {
		checkDecodeTag(t, b)
	}
	// What archfit writes takes the one-pass path.
	var e tagEntry
	if b := tagFiles(t)[0]; !decodeTagFast(b, &e) {
		t.Errorf("%s went to encoding/json", b)
	}
}

func FuzzDecodeTag(f *testing.F) {
	for _, b := range tagFiles(f) {
		f.Add(b)
	}
	f.Fuzz(checkDecodeTag)
}

func checkDecodeTag(t *testing.T, b []byte) {
	var want, got tagEntry
	werr := json.Unmarshal(b, &want)
	gerr := decodeTag(b, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: encoding/json says %v, decodeTag %v", b, werr, gerr)
	}
	if werr != nil {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%q (-encoding/json +decodeTag):\n%s", b, diff)
	}
}
