package report

import (
	"bytes"
	_ "embed"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed schema/archfit.schema.json
var schema []byte

// Schema returns the JSON Schema (draft 2020-12) of the Document as the
// json and yaml formats write it: the contract scripts can validate
// against. A test validates every command's output with it.
func Schema() []byte { return schema }

// CompileSchema compiles Schema for validating documents (scripts and
// tests); it fails only if the embedded schema itself is broken.
func CompileSchema() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("the schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("archfit.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("archfit.schema.json")
}
