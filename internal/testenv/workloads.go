package testenv

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Push writes an image or an index to ref in the test registry (with the
// credentials repositories under private/ require) and returns its digest.
func Push(t testing.TB, ref string, obj any) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: RegistryUser, Password: RegistryPassword})
	var d v1.Hash
	switch o := obj.(type) {
	case v1.Image:
		err = remote.Write(r, o, auth)
		d, _ = o.Digest()
	case v1.ImageIndex:
		err = remote.WriteIndex(r, o, auth)
		d, _ = o.Digest()
	default:
		t.Fatalf("pushing %s: %T is neither an image nor an index", ref, obj)
	}
	if err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return d
}

// SpreadDeployment is a Deployment of n replicas of image, one per node
// where possible (topology spread on the hostname), so that a mixed
// cluster puts pods on every pool.
func SpreadDeployment(ns, name, image string, n int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
					TerminationGracePeriodSeconds: ptr.To[int64](5),
				},
			},
		},
	}
}
