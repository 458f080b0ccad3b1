package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestSARIFValidates validates every kind of SARIF document archfit writes
// against the SARIF 2.1.0 JSON schema (testdata/sarif, see its NOTICE):
// Dockerfile findings with physical locations, the incomplete-run
// notifications, and the cluster commands' logical locations.
func TestSARIFValidates(t *testing.T) {
	raw, err := os.ReadFile("testdata/sarif/sarif-2.1.0-rtm.5.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "https://json.schemastore.org/sarif-2.1.0-rtm.5.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	// The schema is strict enough to refuse what code scanning refuses.
	bad, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"archfit"}},"results":[{"level":"fatal","message":{"text":"x"}}]}]}`))
	if schema.Validate(bad) == nil {
		t.Fatal("the schema accepts a result level of \"fatal\": it would not catch a broken document")
	}
	layout := "../../examples/images"
	for _, args := range [][]string{
		{"dockerfile", "../../examples/dockerfile/Dockerfile"},
		{"dockerfile", "../../examples/dockerfile/cross-compile.Dockerfile"},
		{"dockerfile", "../../examples/dockerfile/extends-legacy.Dockerfile", "--check-base", "--oci-layout", layout},
		// the base is not in the layout: an incomplete run.
		{"dockerfile", "../../examples/dockerfile/Dockerfile", "--check-base", "--oci-layout", layout},
		{"inspect", "--oci-layout", layout, "--verify"},
		{"diagnose", "-f", "../../examples/cluster", "--oci-layout", layout},
		{"audit", "-R", "-f", "../../examples/manifests", "--oci-layout", layout},
		{"audit", "-f", "../../examples/cluster", "--oci-layout", layout},
		{"plan", "-f", "../../examples/cluster", "--oci-layout", layout},
	} {
		t.Run(strings.Join(args[:1], " "), func(t *testing.T) {
			out, errOut, code := runArchfit(t, "", append(args, "-o", "sarif", "--no-cache")...)
			if code == ExitFailure {
				t.Fatalf("%v: exit 1: %s", args, errOut)
			}
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
			if err != nil {
				t.Fatalf("%v: not JSON: %v\n%s", args, err, out)
			}
			if err := schema.Validate(v); err != nil {
				t.Errorf("%v: not valid SARIF 2.1.0: %v", args, err)
			}
		})
	}
}
