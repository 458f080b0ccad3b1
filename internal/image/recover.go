package image

import (
	"context"
	"fmt"
)

// Recovery: a panic while judging one image becomes that image's error.

// inspectSafely is inspect with a panic made the image's error: a bug
// triggered by one image's content must not end the run for the others.
func (r *Resolver) inspectSafely(ctx context.Context, q Request) (rep *Report) {
	defer func() {
		if p := recover(); p != nil {
			rep = &Report{Reference: q.Ref, Error: internalFailure(p)}
		}
	}()
	return r.inspect(ctx, q)
}

// panicError is a panic recovered while judging one image.
type panicError struct{ value any }

func (e panicError) Error() string { return fmt.Sprintf("internal error: panic: %v", e.value) }

// recovered turns a panic of fn into a panicError.
func recovered(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return fn()
}

// internalFailure is the Report.Error of an image whose inspection
// panicked: the panic value, not the stack.
func internalFailure(p any) *Failure {
	return &Failure{Reason: "internal-error", Detail: panicError{p}.Error()}
}
