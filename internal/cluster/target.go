package cluster

import (
	"fmt"
	"strings"
)

// Target is what a command was pointed at: TYPE/NAME as kubectl spells it.
type Target struct {
	Kind string // canonical kind: Deployment, Pod, ...
	Name string
	// Group is set for a custom resource's kind: the operator's kinds
	// (OperatorKinds), or any TYPE.GROUP, whose Kind is then matched
	// without regard to case or plural (Loose).
	Group string
	Loose bool
}

func (t Target) String() string {
	typ := strings.ToLower(t.Kind)
	if t.Group != "" {
		typ += "." + t.Group
	}
	return typ + "/" + t.Name
}

// matches reports whether a workload of that kind and apiVersion is the
// target's type.
func (t Target) matches(kind, apiVersion string) bool {
	if t.Group != "" {
		group, _, ok := strings.Cut(apiVersion, "/")
		if !ok || group != t.Group {
			return false
		}
	}
	if !t.Loose {
		return kind == t.Kind
	}
	k := strings.ToLower(kind)
	typ := strings.ToLower(t.Kind)
	return typ == k || typ == k+"s" || typ == k+"es" || strings.HasSuffix(k, "y") && typ == k[:len(k)-1]+"ies"
}

// operatorTarget finds an operator's kind by kubectl's names for it: the
// kind or its plural, alone or qualified with the group. A name that is
// also a built-in resource (service) must be qualified.
func operatorTarget(typ string) (Target, bool) {
	for _, k := range operatorKinds {
		plural, _, _ := strings.Cut(k.Resource, ".")
		kind := strings.ToLower(k.Kind)
		names := []string{kind + "." + k.Group, plural + "." + k.Group}
		if kind != "service" {
			names = append(names, kind, plural)
		} else {
			names = append(names, "ksvc") // Knative's short name
		}
		for _, n := range names {
			if n == typ {
				return Target{Kind: k.Kind, Group: k.Group}, true
			}
		}
	}
	return Target{}, false
}

// targetKinds maps kubectl's resource names, plurals and short names (and
// the fully qualified resource.group form) to kinds.
var targetKinds = map[string]string{
	"deployment": KindDeployment, "deployments": KindDeployment, "deploy": KindDeployment,
	"deployment.apps": KindDeployment, "deployments.apps": KindDeployment,
	"replicaset": KindReplicaSet, "replicasets": KindReplicaSet, "rs": KindReplicaSet,
	"replicaset.apps": KindReplicaSet, "replicasets.apps": KindReplicaSet,
	"statefulset": KindStatefulSet, "statefulsets": KindStatefulSet, "sts": KindStatefulSet,
	"statefulset.apps": KindStatefulSet, "statefulsets.apps": KindStatefulSet,
	"daemonset": KindDaemonSet, "daemonsets": KindDaemonSet, "ds": KindDaemonSet,
	"daemonset.apps": KindDaemonSet, "daemonsets.apps": KindDaemonSet,
	"job": KindJob, "jobs": KindJob, "job.batch": KindJob, "jobs.batch": KindJob,
	"cronjob": KindCronJob, "cronjobs": KindCronJob, "cj": KindCronJob,
	"cronjob.batch": KindCronJob, "cronjobs.batch": KindCronJob,
	"pod": KindPod, "pods": KindPod, "po": KindPod,
	"podtemplate": KindPodTemplate, "podtemplates": KindPodTemplate,
	"rollout": KindRollout, "rollouts": KindRollout, "ro": KindRollout,
	"rollout.argoproj.io": KindRollout, "rollouts.argoproj.io": KindRollout,
}

// ParseTarget reads TYPE/NAME (deployment/api, deploy/api, sts/db,
// deployment.apps/api, pod/NAME...). Errors wrap ErrBadTarget.
func ParseTarget(s string) (Target, error) {
	typ, name, ok := strings.Cut(s, "/")
	if !ok || typ == "" || name == "" || strings.Contains(name, "/") {
		return Target{}, fmt.Errorf("%w %q: want TYPE/NAME, e.g. deployment/api", ErrBadTarget, s)
	}
	kind, ok := targetKinds[strings.ToLower(typ)]
	if ok {
		return Target{Kind: kind, Name: name}, nil
	}
	if t, ok := operatorTarget(strings.ToLower(typ)); ok {
		t.Name = name
		return t, nil
	}
	// Any other TYPE.GROUP is a custom resource archfit may have found
	// containers in.
	if r, group, ok := strings.Cut(typ, "."); ok && r != "" && strings.Contains(group, ".") {
		return Target{Kind: r, Group: strings.ToLower(group), Loose: true, Name: name}, nil
	}
	return Target{}, fmt.Errorf("%w %q: %q is not a workload type (deployment, statefulset, daemonset, job, cronjob, replicaset, pod, podtemplate, rollout, an operator's kind such as prometheus or ksvc, or a custom resource as TYPE.GROUP)", ErrBadTarget, s, typ)
}

// Select returns a snapshot narrowed to one namespace (all if ""), and to
// the target if not nil: the workload it names (the top workload for an
// owned ReplicaSet or Job), or for a pod, its workload with that pod only.
// Nodes are kept whole (pools matter for any target).
func (s *Snapshot) Select(namespace string, target *Target) (*Snapshot, error) {
	out := &Snapshot{Nodes: s.Nodes, Warnings: s.Warnings, APIRequests: s.APIRequests}
	keepW := func(w *Workload) bool {
		if namespace != "" && w.Namespace != namespace {
			return false
		}
		if target == nil {
			return true
		}
		if target.Kind == KindPod {
			return false
		}
		// A ReplicaSet or Job that has an owner selects its top workload.
		if target.Group != "" {
			return w.Name == target.Name && target.matches(w.Kind, w.APIVersion)
		}
		for _, r := range append([]Ref{w.Ref}, w.Intermediates...) {
			if r.Kind == target.Kind && r.Name == target.Name {
				return true
			}
		}
		return false
	}
	pods := map[*Pod]bool{}
	for _, w := range s.Workloads {
		if keepW(w) {
			out.Workloads = append(out.Workloads, w)
			for _, p := range w.Pods {
				pods[p] = true
			}
		}
	}
	if target != nil && target.Kind == KindPod {
		for _, p := range s.Pods {
			if p.Name == target.Name && (namespace == "" || p.Namespace == namespace) {
				pods[p] = true
				// A copy of the workload that lists only this pod (Pod.Workload
				// still points to the full one).
				w := *p.Workload
				w.Pods = []*Pod{p}
				out.Workloads = append(out.Workloads, &w)
			}
		}
	}
	for _, p := range s.Pods {
		if pods[p] {
			out.Pods = append(out.Pods, p)
		}
	}
	if target != nil && len(out.Workloads) == 0 {
		where := "any namespace"
		if namespace != "" {
			where = "namespace " + namespace
		}
		return nil, fmt.Errorf("%w: %s not found in %s", ErrNotFound, target, where)
	}
	keepNs := map[string]bool{}
	for _, w := range out.Workloads {
		keepNs[w.Namespace] = true
	}
	for _, e := range s.Events {
		if keepNs[e.Namespace] {
			out.Events = append(out.Events, e)
		}
	}
	for _, l := range s.Logs {
		if keepNs[l.Namespace] {
			out.Logs = append(out.Logs, l)
		}
	}
	return out, nil
}

// One returns the one workload a narrowed snapshot holds for t, asking
// for -n when the name exists in several namespaces.
func (s *Snapshot) One(t Target) (*Workload, error) {
	switch len(s.Workloads) {
	case 0:
		return nil, fmt.Errorf("%s: %w", t, ErrNotFound)
	case 1:
		return s.Workloads[0], nil
	}
	var names []string
	for _, w := range s.Workloads {
		names = append(names, w.Ref.String())
	}
	return nil, fmt.Errorf("%s names %d workloads (%s): narrow it with -n", t, len(names), strings.Join(names, ", "))
}
