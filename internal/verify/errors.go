package verify

import (
	"errors"
	"fmt"
)

// ErrLimit is matched (errors.Is) by every *LimitError.
var ErrLimit = errors.New("verification limit reached")

// LimitError says which limit stopped a verification.
type LimitError struct {
	What  string // "compressed bytes", "decompressed bytes in layer 3", ...
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("stopped at the limit of %s %s", human(e.Limit), e.What)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB of", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB of", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB of", n>>10)
	}
	return fmt.Sprintf("%d", n)
}
