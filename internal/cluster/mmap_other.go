//go:build !(linux || darwin)

package cluster

import (
	"errors"
	"os"
)

// canMap says whether large inputs are mapped (mapInput) here: not on this
// system, where they are read into memory.
const canMap = false

func mapFile(*os.File, int64) ([]byte, error) { return nil, errors.ErrUnsupported }
func unmapFile([]byte)                        {}
func dropPages([]byte)                        {}
