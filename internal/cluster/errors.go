package cluster

import (
	"errors"
	"fmt"
)

// DocumentError is one document (or List item) of an input file that could
// not be read. The rest of the file is still used.
type DocumentError struct {
	File string // as given with -f, or "<stdin>"
	Line int    // 1-based; 0 when unknown
	Err  error
}

func (e *DocumentError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *DocumentError) Unwrap() error { return e.Err }

// ErrNoKind is a document without apiVersion or kind.
var ErrNoKind = errors.New("object has no apiVersion or kind")

// ErrTooLarge is an input, document or object over archfit's size limits
// (MaxInputBytes, MaxDocumentBytes, MaxObjectBytes).
var ErrTooLarge = errors.New("too large")

// ErrBadTarget is a target that is not TYPE/NAME of a workload kind.
var ErrBadTarget = errors.New("invalid target")

// ErrNotFound is a target that names nothing in the snapshot.
var ErrNotFound = errors.New("not found")
