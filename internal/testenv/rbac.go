package testenv

import (
	"context"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// WaitAllowed waits until the API server lets user do verb on resource
// (group, in namespace ns): it authorizes from a cache of RBAC objects, so
// a role binding just created may not count at once. It fails the test
// after 30 s.
func WaitAllowed(ctx context.Context, t testing.TB, cs kubernetes.Interface, user, ns, group, resource, verb string) {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Group: group, Resource: resource, Verb: verb},
	}}
	var last string
	err := Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = got.Status.Reason
		return got.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("%s may not %s %s in %q after 30 s (%s): %v", user, verb, resource, ns, last, err)
	}
}
