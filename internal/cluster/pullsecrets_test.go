package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/registry"
)

// TestPullSecretsStayInTheirNamespace (issue 10, item 5): a pod's images
// get its own namespace's pull secrets only; an image that pods with other
// secrets also run gets none of them. (Before, every secret of every
// namespace went into one keychain used for every image.)
func TestPullSecretsStayInTheirNamespace(t *testing.T) {
	pod := func(ns string, secrets []string, images ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns}}
		for _, s := range secrets {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		for _, img := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Image: img})
		}
		return p
	}
	ps := &PullSecrets{keychains: map[secretRef]authn.Keychain{}, sets: map[string][]secretRef{}, images: map[string]map[string]bool{}}
	ps.add(pod("shop", []string{"regcred"}, "reg.example.com/shop/api:1", "reg.example.com/base:1"), []string{"regcred"})
	ps.add(pod("other", nil, "reg.example.com/shop/api:2", "reg.example.com/base:1"), nil)
	kc, err := registry.DockerConfigKeychain([]byte(`{"auths":{"reg.example.com":{"username":"shop","password":"shop-pw"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ps.keychains[secretRef{"shop", "regcred"}] = kc

	reqs := []image.Request{{Ref: "reg.example.com/shop/api:1"}, {Ref: "reg.example.com/shop/api:2"}, {Ref: "reg.example.com/base:1"}}
	var errOut bytes.Buffer
	// The user's (archfit's own) keychain knows the registry too: the
	// pod's secret wins for the pod's image, as the kubelet's would.
	own, err := registry.DockerConfigKeychain([]byte(`{"auths":{"reg.example.com":{"username":"archfit","password":"own-pw"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ps.Attach(reqs, own, &errOut)

	password := func(q image.Request) string {
		t.Helper()
		ref, _ := name.ParseReference(q.Ref)
		a, err := q.Credentials.Keychain.Resolve(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Password
	}
	if id, pw := reqs[0].Credentials.ID, password(reqs[0]); id != "shop/regcred" || pw != "shop-pw" {
		t.Errorf("shop's own image: credentials %q, secret used %t", id, pw != "")
	}
	for _, q := range reqs[1:] {
		if q.Credentials == nil || q.Credentials.ID != "" || password(q) != "own-pw" {
			t.Errorf("%s: another namespace's secret is used, or not the user's own credentials", q.Ref)
		}
	}
	if !strings.Contains(errOut.String(), "reg.example.com/base:1 runs in pods with different pull secrets") {
		t.Errorf("no warning for the shared image: %q", errOut.String())
	}
}
