package remedy

import (
	"github.com/archfit/archfit/internal/object"

	"fmt"
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
	k, ok := kinds[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
	if !ok {
		return kindInfo{}, fmt.Errorf("%s %s: %w", ref.APIVersion, ref.Kind, ErrUnsupportedKind)
	}
	return k, nil
}

// pointer builds an RFC 6901 JSON pointer from field names and indexes.
func pointer(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		p = strings.ReplaceAll(p, "~", "~0")
		b.WriteString(strings.ReplaceAll(p, "/", "~1"))
	}
	return b.String()
}
