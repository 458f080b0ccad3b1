package remedy

import (
	"github.com/archfit/archfit/internal/object"

	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrUnsupportedKind: the object is not a workload archfit knows how to patch.
	ErrUnsupportedKind = errors.New("unsupported kind")
	// ErrNoPodTemplate: the object has no pod template where its kind puts one.
	ErrNoPodTemplate = errors.New("no pod template")
	// ErrNoArchitecture: Patch was called with no allowed architecture.
	ErrNoArchitecture = errors.New("no allowed architecture")
	// ErrConflict: the workload pins an architecture that is not allowed;
	// Render refuses to produce a patch (see Result.Conflicts).
	ErrConflict = errors.New(CodeArchConstraintConflict)
	// ErrUnknownFormat: Render was asked for a format it does not have.
	ErrUnknownFormat = errors.New("unknown patch format")
)

// RedirectError says that another object owns the pod template: the patch
// belongs there (a Deployment rather than its ReplicaSet, the Deployment an
// Argo Rollout's spec.workloadRef names, the CronJob of a Job).
type RedirectError struct {
	From   object.Ref
	To     object.Ref
	Reason string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("%s: patch %s instead (%s)", e.From, e.To, e.Reason)
}
