package image

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/platform"
)

// fullReport sets every field decodeReport reads itself.
func fullReport() Report {
	yes, no := true, false
	return Report{
		Reference: "registry.example:5000/team/app:1.2", Digest: "sha256:" + keyHash("index"), MediaType: mediaTypeOCIIndex, Kind: KindIndex,
		Entries: []Entry{{
			Digest: "sha256:" + keyHash("amd64"), MediaType: mediaTypeOCIManifest, Size: 401,
			Platform:       &specs.Platform{Architecture: "amd64", OS: "linux", OSVersion: "10.0", OSFeatures: []string{"win32k"}, Variant: "v2"},
			ConfigPlatform: &specs.Platform{Architecture: "amd64", OS: "linux"},
			ConfigDigest:   "sha256:" + keyHash("config"), AttestsDigest: "sha256:" + keyHash("x"), Attestation: true,
			Nested: []string{"sha256:" + keyHash("parent")}, SkipReason: SkipSchema1, Skipped: "skipped", Mismatch: "declared arm64, binary amd64",
			Entrypoint: &Entrypoint{Argv0: "app", Path: "/usr/bin/app", Format: "elf", ELFMachine: 62, ELFClass: 2, Arch: "amd64", Static: true,
				Interpreter: "/lib/ld.so", InterpreterArch: "amd64", Shebang: "#!/bin/sh", GoSettings: map[string]string{"GOAMD64": "v3", "CGO_ENABLED": "0"},
				Verdict: VerdictWrongArch, Detail: "detail", BytesRead: 1 << 40, LayersRead: 3},
			GoVersion: "go1.26", Config: &Exec{Entrypoint: []string{"/app"}, Cmd: []string{"--port", "80"}, WorkingDir: "/srv", Path: "/usr/bin:/bin"},
		}, {Digest: "sha256:" + keyHash("arm64"), MediaType: mediaTypeDockerV2}},
		Platforms: []string{"linux/amd64", "linux/arm64/v8"}, Architectures: []string{"amd64", "arm64"}, EffectivelySingleArch: true,
		Base: &BaseImage{Name: "debian:12", Digest: "sha256:" + keyHash("base")},
		Pulls: []Pull{
			{Node: "linux/amd64", Runtime: platform.ContainerdLocal, Digest: "sha256:" + keyHash("amd64"), Platform: "linux/amd64", Runs: &yes, Reason: "r", NodeRuntime: "containerd://2.1.9"},
			{Node: "linux/arm64/v8", Runtime: platform.ContainerdTransfer, Error: "no match for platform in manifest: not found", Runs: &no},
		},
		Problems: []Problem{{Code: "mislabeled-platform", Entry: "sha256:" + keyHash("amd64"), Detail: "d"}},
		Notes:    []string{"a note"},
		Stats:    Stats{Requests: 3, CacheHits: -2, Bytes: 123456789012},
	}
}

// reportFiles are cached reports decodeReport must read as encoding/json
// does, or leave to it.
func reportFiles(t testing.TB) [][]byte {
	full, err := json.Marshal(fullReport())
	if err != nil {
		t.Fatal(err)
	}
	small, err := json.Marshal(Report{Reference: "r", Entries: []Entry{{}}, Stats: Stats{}})
	if err != nil {
		t.Fatal(err)
	}
	with := func(old, new string) []byte {
		if !strings.Contains(string(full), old) {
			t.Fatalf("%s is not in the report", old)
		}
		return []byte(strings.Replace(string(full), old, new, 1))
	}
	return [][]byte{
		full,
		small,
		[]byte(`{}`),
		[]byte(" { \"reference\" : \"r\" , \"entries\" : [ ] , \"pulls\":[],\"stats\":{ } }\n"),
		with(`"kind":"index"`, `"kind":"index","kind":"manifest"`),         // a key twice
		with(`"kind":"index"`, `"Kind":"index"`),                           // another spelling
		with(`"kind":"index"`, `"kind":"index","suggested":[{"tag":"x"}]`), // a field it leaves to encoding/json
		with(`"kind":"index"`, `"kind":"ind\u0065x"`),                      // an escape
		with(`"kind":"index"`, `"kind":null`),                              // a null
		with(`"size":401`, `"size":401.0`),                                 // refused for an int
		with(`"size":401`, `"size":4e2`),                                   // refused
		with(`"size":401`, `"size":0401`),                                  // refused
		with(`"size":401`, `"size":-401`),                                  // negative
		with(`"size":401`, `"size":99999999999999999999`),                  // overflows
		with(`"elfMachine":62`, `"elfMachine":99999999999`),                // past a 32-bit int
		with(`"size":401`, `"size":"401"`),                                 // refused
		with(`"static":true`, `"static":1`),                                // refused
		with(`"GOAMD64":"v3"`, `"GOAMD64":"v3","GOAMD64":"v4"`),            // a map key twice: the last wins
		with(`"runs":true`, `"runs":null`),                                 // a null pointer
		with(`"entries":[`, `"entries":[{},`),                              // an empty entry
		with(`"notes":["a note"]`, `"notes":["a note",]`),                  // refused
		with(`"notes":["a note"]`, `"notes":["a note"`),                    // refused
		with(`"pulls":[`, `"pulls":{`),                                     // refused
		with(`"reference":"registry`, `"reference":"regístry`),             // non-ASCII
		with(`"error":"no match`, `"error":"\"ref\": no match`),            // a quoted reference, as runtimes write
		append(append([]byte{}, full...), '}'),                             // trailing data
		full[:len(full)-1],                                                 // cut short
		full[:len(full)/2],                                                 // cut short
	}
}

func TestDecodeReportAgreesWithEncodingJSON(t *testing.T) {
	for _, b := range reportFiles(t) {
		checkDecodeReport(t, b)
	}
	// A report with every field decodeReport reads takes its one-pass path.
	full := reportFiles(t)[0]
	d := fastJSON{b: full}
	var r Report
	d.report(&r)
	if !d.end() {
		t.Errorf("the full report went to encoding/json at byte %d: %s", d.i, full[d.i:min(len(full), d.i+40)])
	}
	if diff := cmp.Diff(fullReport(), r); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzDecodeReport(f *testing.F) {
	for _, b := range reportFiles(f) {
		f.Add(b)
	}
	f.Fuzz(checkDecodeReport)
}

func checkDecodeReport(t *testing.T, b []byte) {
	var want, got Report
	werr := json.Unmarshal(b, &want)
	gerr := decodeReport(b, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: encoding/json says %v, decodeReport %v", b, werr, gerr)
	}
	if werr != nil {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%q (-encoding/json +decodeReport):\n%s", b, diff)
	}
}
