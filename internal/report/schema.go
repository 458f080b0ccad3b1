package report

import _ "embed"

//go:embed schema/archfit.schema.json
var schema []byte

// Schema returns the JSON Schema (draft 2020-12) of the Document as the
// json and yaml formats write it: the contract scripts can validate
// against. A test validates every command's output with it.
func Schema() []byte { return schema }
