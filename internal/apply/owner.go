// Package apply puts an interim node-affinity patch (package remedy) on a
// live cluster: it finds who else manages the object (Helm, Argo CD, Flux,
// an operator), runs the patch as a server-side dry run, shows what changes
// in the pod template's scheduling fields, and then patches for real with
// field manager "archfit".
package apply

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Tool is a system that owns a workload's manifest elsewhere and would revert
// or fight a direct patch.
type Tool string

// Tools archfit recognises.
const (
	Helm          Tool = "Helm"
	ArgoCD        Tool = "Argo CD"
	FluxKustomize Tool = "Flux Kustomization"
	FluxHelm      Tool = "Flux HelmRelease"
)

// Labels, annotations and field managers that give ownership away.
const (
	labelManagedBy          = "app.kubernetes.io/managed-by"
	labelInstance           = "app.kubernetes.io/instance"
	labelArgoInstance       = "argocd.argoproj.io/instance"
	annotationHelmRelease   = "meta.helm.sh/release-name"
	annotationHelmNamespace = "meta.helm.sh/release-namespace"
	annotationArgoTracking  = "argocd.argoproj.io/tracking-id"
	labelFluxKustomizeName  = "kustomize.toolkit.fluxcd.io/name"
	labelFluxKustomizeNS    = "kustomize.toolkit.fluxcd.io/namespace"
	labelFluxHelmName       = "helm.toolkit.fluxcd.io/name"
	labelFluxHelmNS         = "helm.toolkit.fluxcd.io/namespace"
)

// ownershipLabels and ownershipAnnotations are every key Owners reads: the
// patch tests them (guarded).
var (
	ownershipLabels = []string{labelManagedBy, labelInstance, labelArgoInstance,
		labelFluxKustomizeName, labelFluxKustomizeNS, labelFluxHelmName, labelFluxHelmNS}
	ownershipAnnotations = []string{annotationHelmRelease, annotationHelmNamespace, annotationArgoTracking}
)

// managers maps managedFields managers to the tool they are. Argo CD uses
// "argocd-controller" for server-side apply syncs; the others are the names
// Helm 3 and the Flux controllers register.
var managers = map[string]Tool{
	"helm":                 Helm,
	"argocd-controller":    ArgoCD,
	"kustomize-controller": FluxKustomize,
	"helm-controller":      FluxHelm,
}

// Owner is one piece of evidence that a tool manages the object.
type Owner struct {
	Tool Tool `json:"tool"`
	// Name of the release, application or Flux object, when known.
	Name string `json:"name,omitempty"`
	// Namespace of the Helm release or Flux object, when known.
	Namespace string `json:"namespace,omitempty"`
	// Evidence is what gave it away, e.g. `label app.kubernetes.io/managed-by=Helm`.
	Evidence []string `json:"evidence"`
}

// Advice says where the change belongs instead of a direct patch.
func (o Owner) Advice() string {
	name := o.Name
	if name == "" {
		name = "its release"
	}
	switch o.Tool {
	case Helm:
		return fmt.Sprintf("the change belongs in the values of Helm release %s (most charts take `affinity:` and `tolerations:`); the next `helm upgrade` would revert a direct patch", qualify(o.Namespace, name))
	case FluxHelm:
		return fmt.Sprintf("the change belongs in spec.values of Flux HelmRelease %s in Git; helm-controller would revert a direct patch at its next reconcile", qualify(o.Namespace, name))
	case ArgoCD:
		return fmt.Sprintf("the change belongs in the Git repository Argo CD application %s syncs from (e.g. as a kustomize patch); a direct patch shows as OutOfSync and self-heal reverts it", name)
	case FluxKustomize:
		return fmt.Sprintf("the change belongs in the Git repository of Flux Kustomization %s (e.g. as a kustomize patch); kustomize-controller would revert a direct patch at its next reconcile", qualify(o.Namespace, name))
	}
	return fmt.Sprintf("%s manages this object; change it there", o.Tool)
}

func qualify(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// Owners returns the tools that manage obj, judged from its labels,
// annotations and managedFields, one Owner per tool, sorted by tool.
//
// app.kubernetes.io/instance alone is not Argo CD's: Helm charts set it too.
// It counts only next to Argo CD's tracking-id annotation or field manager.
func Owners(obj *unstructured.Unstructured) []Owner {
	labels, annotations := obj.GetLabels(), obj.GetAnnotations()
	byTool := map[Tool]*Owner{}
	add := func(t Tool, name, ns, evidence string) {
		o := byTool[t]
		if o == nil {
			o = &Owner{Tool: t}
			byTool[t] = o
		}
		if o.Name == "" {
			o.Name = name
		}
		if o.Namespace == "" {
			o.Namespace = ns
		}
		o.Evidence = append(o.Evidence, evidence)
	}

	if v, ok := labels[labelManagedBy]; ok && strings.EqualFold(v, "helm") {
		add(Helm, annotations[annotationHelmRelease], annotations[annotationHelmNamespace], "label "+labelManagedBy+"="+v)
	}
	if v, ok := annotations[annotationHelmRelease]; ok {
		add(Helm, v, annotations[annotationHelmNamespace], "annotation "+annotationHelmRelease+"="+v)
	}

	argoTracked := false
	if v, ok := annotations[annotationArgoTracking]; ok {
		argoTracked = true
		// The tracking id is APP:GROUP/KIND:NAMESPACE/NAME.
		app, _, _ := strings.Cut(v, ":")
		add(ArgoCD, app, "", "annotation "+annotationArgoTracking+"="+v)
	}
	if v, ok := labels[labelArgoInstance]; ok {
		argoTracked = true
		add(ArgoCD, v, "", "label "+labelArgoInstance+"="+v)
	}

	if v, ok := labels[labelFluxKustomizeName]; ok {
		add(FluxKustomize, v, labels[labelFluxKustomizeNS], "label "+labelFluxKustomizeName+"="+v)
	}
	if v, ok := labels[labelFluxHelmName]; ok {
		add(FluxHelm, v, labels[labelFluxHelmNS], "label "+labelFluxHelmName+"="+v)
	}

	seen := map[string]bool{}
	for _, mf := range obj.GetManagedFields() {
		t, ok := managers[mf.Manager]
		if !ok || seen[mf.Manager] {
			continue
		}
		seen[mf.Manager] = true
		if t == ArgoCD {
			argoTracked = true
		}
		add(t, "", "", "field manager "+mf.Manager+" ("+string(mf.Operation)+")")
	}

	if v, ok := labels[labelInstance]; ok && argoTracked {
		add(ArgoCD, v, "", "label "+labelInstance+"="+v)
	}

	out := make([]Owner, 0, len(byTool))
	for _, o := range byTool {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tool < out[j].Tool })
	return out
}
