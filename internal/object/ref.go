// Package object holds the one reference type every archfit stage uses to
// name a Kubernetes object: in findings, remedies, patches and the cluster
// snapshot alike.
package object

// Ref names a Kubernetes object. Kind, Namespace and Name identify it;
// APIVersion is set where the object must be reached through the API (a
// patch target) and is left empty in identities, so that two references to
// one object compare equal whatever told archfit about it.
type Ref struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String is NAMESPACE/KIND/NAME, or KIND/NAME for cluster-scoped objects.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Namespace + "/" + r.Kind + "/" + r.Name
}

// ID is the reference without its API version: the object's identity.
func (r Ref) ID() Ref {
	r.APIVersion = ""
	return r
}
