//go:build !unix

package image

import "time"

// processCPU: not measured here.
func processCPU() time.Duration { return 0 }
