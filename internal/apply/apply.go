package apply

import (
	objref "github.com/archfit/archfit/internal/object"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/archfit/archfit/internal/remedy"
)

// FieldManager is the manager name archfit's patches are recorded under in
// managedFields.
const FieldManager = "archfit"

// Reasons Apply refuses to patch.
var (
	// ErrManaged: Helm, Argo CD, Flux or an operator owns the object; the
	// change belongs there (use --force to patch anyway).
	ErrManaged = errors.New("managed by another tool")
	// ErrImmutable: a started Job's pod template cannot change.
	ErrImmutable = errors.New("pod template is immutable")
	// ErrRecreate: a Pod's affinity cannot change; it must be recreated.
	ErrRecreate = errors.New("pod must be recreated")
	// ErrConflict: the patch has conflicts and cannot be applied.
	ErrConflict = errors.New("patch has conflicts")
	// ErrChanged: the object changed between read and patch (a JSON patch
	// test op failed); run again.
	ErrChanged = errors.New("object changed concurrently")
)

// Applier patches workloads on a live cluster.
//
// It sends the patch as an RFC 6902 JSON patch, not a server-side apply.
// nodeSelectorTerms and tolerations are atomic lists: an apply
// configuration holding them would make archfit the owner of the whole list
// (a conflict with Helm's or kubectl's ownership, or with --force-conflicts
// a silent takeover that the next `helm upgrade` fights). The JSON patch
// appends one requirement per term and guards every append with a test op on
// what it read, so a concurrent edit makes the patch fail instead of
// landing in the wrong place. FieldManager still records the change as
// archfit's in managedFields.
type Applier struct {
	Client dynamic.Interface
	Mapper meta.RESTMapper
}

// resource returns the dynamic client of the object's resource.
func (a *Applier) resource(apiVersion, kind, namespace string) (dynamic.ResourceInterface, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	m, err := a.Mapper.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		return nil, fmt.Errorf("finding the resource of %s %s: %w", apiVersion, kind, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.Client.Resource(m.Resource).Namespace(namespace), nil
	}
	return a.Client.Resource(m.Resource), nil
}

// Get reads the object ref names, as it is now.
func (a *Applier) Get(ctx context.Context, ref objref.Ref) (*unstructured.Unstructured, error) {
	ri, err := a.resource(ref.APIVersion, ref.Kind, ref.Namespace)
	if err != nil {
		return nil, err
	}
	obj, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return obj, nil
}

// Check says whether res may be applied to obj: not when it has conflicts,
// when the object is a Pod or a started Job, or (unless force) when another
// tool manages it. The error wraps one of the sentinels above.
func Check(obj *unstructured.Unstructured, res *remedy.Result, force bool) error {
	switch {
	case len(res.Conflicts) > 0:
		return fmt.Errorf("%s: %w: %s", res.Object, ErrConflict, res.Conflicts[0].Message)
	case res.Recreate:
		return fmt.Errorf("%s: %w: a running pod's affinity cannot change; delete it yourself and create it from the patched manifest (archfit deletes nothing)", res.Object, ErrRecreate)
	case res.Immutable:
		return fmt.Errorf("%s: %w: a Job's pod template cannot change once the Job exists; delete it when it may be and create it again from the patched manifest below, or patch what creates it", res.Object, ErrImmutable)
	}
	if force {
		return nil
	}
	if owners := Owners(obj); len(owners) > 0 {
		return &ManagedError{Object: res.Object, Owners: owners}
	}
	return nil
}

// ManagedError says which tools manage an object archfit was asked to
// patch. It wraps ErrManaged.
type ManagedError struct {
	Object objref.Ref
	Owners []Owner
}

func (e *ManagedError) Error() string {
	o := e.Owners[0]
	return fmt.Sprintf("%s is managed by %s (%s): not applied; %s (--force patches it anyway)",
		e.Object, o.Tool, o.Evidence[0], o.Advice())
}

func (e *ManagedError) Unwrap() error { return ErrManaged }

// DryRun sends res's JSON patch to the API server as a server-side dry run
// (admission and validation run, nothing is stored) and returns the object
// the server would store and the diff of the pod spec's scheduling fields.
func (a *Applier) DryRun(ctx context.Context, before *unstructured.Unstructured, res *remedy.Result) (*unstructured.Unstructured, string, error) {
	after, err := a.patch(ctx, before, res, []string{metav1.DryRunAll})
	if err != nil {
		return nil, "", err
	}
	diff, err := Diff(before, after, res.PodSpecPath)
	if err != nil {
		return nil, "", err
	}
	return after, diff, nil
}

// Apply sends res's JSON patch for real, with field manager archfit. before
// is the object res was computed from: the patch only applies to that
// version of it.
func (a *Applier) Apply(ctx context.Context, before *unstructured.Unstructured, res *remedy.Result) (*unstructured.Unstructured, error) {
	return a.patch(ctx, before, res, nil)
}

// guarded prepends test ops on what the patch was decided from, so that a
// concurrent change makes the patch fail (ErrChanged) instead of landing:
//   - metadata.generation: the ops' own test ops guard the values they
//     extend, but an "add" of a field that was absent (the whole affinity,
//     say) would replace one a concurrent edit just set. The generation
//     changes with every change of the spec and not with status writes
//     (which a workload in rollout gets many times a second, so
//     resourceVersion would make the patch fail for nothing);
//   - the ownership fields Owners and remedy's owner redirect read (the
//     labels and annotations of Helm, Argo CD and Flux, ownerReferences):
//     they change without a new generation, so a tool that takes the object
//     over between the ownership check and the patch would go unnoticed.
//     An absent key is tested as null; an absent labels or annotations map
//     as a whole. managedFields are not tested: every status write touches
//     them.
func guarded(before *unstructured.Unstructured, ops []remedy.Operation) ([]byte, error) {
	var tests []remedy.Operation
	test := func(path string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		tests = append(tests, remedy.Operation{Op: "test", Path: path, Value: b})
		return nil
	}
	if gen := before.GetGeneration(); gen != 0 {
		if err := test("/metadata/generation", gen); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		field string
		keys  []string
	}{
		{"labels", ownershipLabels},
		{"annotations", ownershipAnnotations},
	} {
		m, found, err := unstructured.NestedStringMap(before.Object, "metadata", f.field)
		if err != nil {
			return nil, fmt.Errorf("reading metadata.%s: %w", f.field, err)
		}
		if !found {
			if err := test("/metadata/"+f.field, nil); err != nil {
				return nil, err
			}
			continue
		}
		for _, k := range f.keys {
			var v any
			if s, ok := m[k]; ok {
				v = s
			}
			if err := test("/metadata/"+f.field+"/"+remedy.PointerToken(k), v); err != nil {
				return nil, err
			}
		}
	}
	refs, _, err := unstructured.NestedFieldNoCopy(before.Object, "metadata", "ownerReferences")
	if err != nil {
		return nil, err
	}
	if err := test("/metadata/ownerReferences", refs); err != nil {
		return nil, err
	}
	return json.Marshal(append(tests, ops...))
}

func (a *Applier) patch(ctx context.Context, before *unstructured.Unstructured, res *remedy.Result, dryRun []string) (*unstructured.Unstructured, error) {
	if len(res.Ops) == 0 {
		return nil, fmt.Errorf("%s: nothing to patch", res.Object)
	}
	if len(res.Conflicts) > 0 {
		return nil, fmt.Errorf("%s: %w", res.Object, ErrConflict)
	}
	ops, err := guarded(before, res.Ops)
	if err != nil {
		return nil, err
	}
	ri, err := a.resource(res.Object.APIVersion, res.Object.Kind, res.Object.Namespace)
	if err != nil {
		return nil, err
	}
	what := "patching"
	if len(dryRun) > 0 {
		what = "dry-run patching"
	}
	obj, err := ri.Patch(ctx, res.Object.Name, types.JSONPatchType, ops, metav1.PatchOptions{DryRun: dryRun, FieldManager: FieldManager})
	if err != nil {
		if changedUnderneath(err) {
			return nil, fmt.Errorf("%s %s: %w (the object changed since it was read; run again): %v", what, res.Object, ErrChanged, err)
		}
		return nil, fmt.Errorf("%s %s: %w", what, res.Object, err)
	}
	return obj, nil
}

// Manifest returns obj as a manifest to create again: status, server-set
// metadata and spec.nodeName (which would bypass the scheduler, and with it
// the new affinity) removed.
func Manifest(obj *unstructured.Unstructured) *unstructured.Unstructured {
	m := obj.DeepCopy()
	delete(m.Object, "status")
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(m.Object, "metadata", f)
	}
	if m.GetKind() == "Pod" {
		unstructured.RemoveNestedField(m.Object, "spec", "nodeName")
	}
	return m
}

// changedUnderneath says whether a patch failed because the object is no
// longer what the patch was computed from. The API server answers a JSON
// patch whose test op fails, or whose op names a path that is gone, with a
// bare 422 (reason Invalid, no causes: the json-patch message is dropped),
// while a validation error is a 422 whose causes name the fields.
func changedUnderneath(err error) bool {
	if apierrors.IsConflict(err) {
		return true
	}
	var st apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &st) {
		return false
	}
	s := st.Status()
	if s.Details != nil && len(s.Details.Causes) > 0 {
		return false
	}
	return strings.HasPrefix(s.Message, "the server rejected our request")
}
