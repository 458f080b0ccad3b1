package render

import (
	"context"
	"errors"
)

var (
	// ErrTimeout: a render took longer than its time limit. It is also a
	// context.DeadlineExceeded.
	ErrTimeout = timeoutError{}
	// ErrOutputTooLarge: a render produced more than its output limit.
	ErrOutputTooLarge = errors.New("rendered output is too large")
	// ErrOutside: a chart file or schema reference resolves outside the
	// chart.
	ErrOutside = errors.New("outside the chart")
	// ErrRemote: a kustomization refers to a remote resource or base and
	// remote loading was not allowed.
	ErrRemote = errors.New("remote resources are not loaded without --allow-remote-resources")
)

type timeoutError struct{}

func (timeoutError) Error() string        { return "render took too long" }
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
