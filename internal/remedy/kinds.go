package remedy

import (
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/object"

	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// groupVersion of the reference (zero when APIVersion is unparsable).
func groupVersion(r object.Ref) schema.GroupVersion {
	gv, _ := schema.ParseGroupVersion(r.APIVersion)
	return gv
}

func refOf(obj *unstructured.Unstructured) object.Ref {
	return object.Ref{
		APIVersion: obj.GetAPIVersion(),
		Kind:       obj.GetKind(),
		Namespace:  obj.GetNamespace(),
		Name:       obj.GetName(),
	}
}

// kindInfo says where a kind keeps its pod spec and how a change reaches
// its pods (FACTS.md section 5).
type kindInfo struct {
	podSpec []string // field path of the pod spec
	// sched, for an operator's custom resource, is where the operator reads
	// the scheduling fields (cluster's operator table); podSpec is then nil.
	sched *cluster.Scheduling
	// note is said with every patch of the kind (an operator's caveat).
	note string
	// resource is what kubectl calls it (kind.group, lower case).
	resource  string
	recreate  bool // bare Pod: the affinity of a pod is immutable
	immutable bool // Job: the template cannot change once created
	// strategic: the API server accepts a strategic merge patch (built-in
	// types); custom resources take a JSON merge patch.
	strategic bool
}

var kinds = map[schema.GroupKind]kindInfo{
	{Group: "apps", Kind: "Deployment"}:        {podSpec: []string{"spec", "template", "spec"}, resource: "deployment.apps", strategic: true},
	{Group: "apps", Kind: "StatefulSet"}:       {podSpec: []string{"spec", "template", "spec"}, resource: "statefulset.apps", strategic: true},
	{Group: "apps", Kind: "DaemonSet"}:         {podSpec: []string{"spec", "template", "spec"}, resource: "daemonset.apps", strategic: true},
	{Group: "apps", Kind: "ReplicaSet"}:        {podSpec: []string{"spec", "template", "spec"}, resource: "replicaset.apps", strategic: true},
	{Group: "", Kind: "ReplicationController"}: {podSpec: []string{"spec", "template", "spec"}, resource: "replicationcontroller", strategic: true},
	{Group: "batch", Kind: "Job"}:              {podSpec: []string{"spec", "template", "spec"}, resource: "job.batch", strategic: true, immutable: true},
	{Group: "batch", Kind: "CronJob"}:          {podSpec: []string{"spec", "jobTemplate", "spec", "template", "spec"}, resource: "cronjob.batch", strategic: true},
	{Group: "", Kind: "Pod"}:                   {podSpec: []string{"spec"}, resource: "pod", strategic: true, recreate: true},
	{Group: "", Kind: "PodTemplate"}:           {podSpec: []string{"template", "spec"}, resource: "podtemplate", strategic: true},
	{Group: "argoproj.io", Kind: "Rollout"}:    {podSpec: []string{"spec", "template", "spec"}, resource: "rollout.argoproj.io"},
}

func lookupKind(ref object.Ref) (kindInfo, error) {
	gv := groupVersion(ref)
	if k, ok := kinds[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]; ok {
		return k, nil
	}
	op := cluster.LookupOperatorKind(gv.Group, ref.Kind)
	switch {
	case op == nil && strings.Contains(gv.Group, "."):
		return kindInfo{}, fmt.Errorf("%s %s: %w: where its operator reads node affinity is unknown to archfit (its images are audited all the same); set the affinity where the operator documents it", ref.APIVersion, ref.Kind, ErrUnsupportedKind)
	case op == nil:
		return kindInfo{}, fmt.Errorf("%s %s: %w", ref.APIVersion, ref.Kind, ErrUnsupportedKind)
	case op.Scheduling == nil:
		return kindInfo{}, fmt.Errorf("%s %s: %w: %s", ref.APIVersion, ref.Kind, ErrUnsupportedKind, op.Note)
	}
	return kindInfo{sched: op.Scheduling, resource: op.Resource, note: op.Note}, nil
}

// location is one place a patch writes: the paths of the affinity object
// (the one holding nodeAffinity), the node selector and the tolerations;
// nil when the kind has no such field.
type location struct {
	affinity, nodeSelector, tolerations []string
}

// locations resolves where obj's kind keeps its scheduling fields: one
// pod spec for built-in kinds; for an operator's kind, one place per
// element of a list in the path (ECK's nodeSets).
func (k kindInfo) locations(obj *unstructured.Unstructured, ref object.Ref) ([]location, error) {
	if k.sched == nil {
		// One allocation for the three paths; each clipped, so that
		// appending to one copies it.
		n := len(k.podSpec) + 1
		buf := make([]string, 0, 3*n)
		at := func(f string) []string {
			buf = append(append(buf, k.podSpec...), f)
			return slices.Clip(buf[len(buf)-n:])
		}
		return []location{{affinity: at("affinity"), nodeSelector: at("nodeSelector"), tolerations: at("tolerations")}}, nil
	}
	// The scheduling fields sit beside each other under one parent per
	// location; the parent of the affinity path is expanded, and the other
	// paths follow the same list indexes.
	base, field := cut(k.sched.Affinity)
	parents := expandLists(obj.Object, base)
	if len(parents) == 0 {
		return nil, fmt.Errorf("%s: %w at %s", ref, ErrNoPodTemplate, base)
	}
	var out []location
	for _, p := range parents {
		l := location{affinity: append(slices.Clone(p), field)}
		l.nodeSelector = sibling(p, base, k.sched.NodeSelector)
		l.tolerations = sibling(p, base, k.sched.Tolerations)
		out = append(out, l)
	}
	return out, nil
}

// expandLists resolves the "[]" segments of a dot path against obj, one
// path per list element; fields after the last list that do not exist yet
// are kept (the patch creates them). A path through a missing list
// resolves to nothing.
func expandLists(obj map[string]any, path string) [][]string {
	segs := strings.Split(path, ".")
	last := -1
	for i, s := range segs {
		if strings.HasSuffix(s, "[]") {
			last = i
		}
	}
	if last < 0 {
		return [][]string{segs}
	}
	var out [][]string
	for _, p := range cluster.Expand(obj, strings.Join(segs[:last+1], ".")) {
		out = append(out, append(p, segs[last+1:]...))
	}
	return out
}

// cut splits a dot path into its parent and last field.
func cut(path string) (string, string) {
	i := strings.LastIndex(path, ".")
	return path[:i], path[i+1:]
}

// sibling is path (which starts with base, possibly below it) with base's
// list indexes taken from the concrete parent p; nil when path is "".
func sibling(p []string, base, path string) []string {
	if path == "" {
		return nil
	}
	rest, ok := strings.CutPrefix(path, base+".")
	if !ok {
		return nil // the table keeps the fields under one parent
	}
	return append(slices.Clone(p), strings.Split(rest, ".")...)
}

// pointer builds an RFC 6901 JSON pointer from field names and indexes.
func pointer(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(PointerToken(p))
	}
	return b.String()
}

// PointerToken escapes one reference token of an RFC 6901 JSON pointer (a
// key such as "archfit.io/pinned"): "~" as "~0", then "/" as "~1".
func PointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
