package cli

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/archfit/archfit/internal/registry"
)

// secretRef is one imagePullSecret of a pod (or of its service account).
type secretRef struct{ namespace, name string }

// pullSecretKeychain reads the dockerconfigjson pull secrets the pods use
// and returns a keychain of them (nil when there are none). A secret that
// cannot be read (RBAC, deleted) is reported on errOut and skipped: the
// images it would open become image-uninspectable, nothing else is lost.
// Credentials are never printed.
func pullSecretKeychain(ctx context.Context, flags *genericclioptions.ConfigFlags, pods []*corev1.Pod, errOut io.Writer) (authn.Keychain, error) {
	seen := map[secretRef]bool{}
	var refs []secretRef
	for _, p := range pods {
		for _, s := range p.Spec.ImagePullSecrets {
			r := secretRef{p.Namespace, s.Name}
			if s.Name != "" && !seen[r] {
				seen[r] = true
				refs = append(refs, r)
			}
		}
	}
	if len(refs) == 0 {
		return nil, nil
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].namespace != refs[j].namespace {
			return refs[i].namespace < refs[j].namespace
		}
		return refs[i].name < refs[j].name
	})
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	var kcs []authn.Keychain
	for _, r := range refs {
		s, err := cs.CoreV1().Secrets(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			why := err.Error()
			if apierrors.IsForbidden(err) {
				why = "forbidden (archfit needs get on secrets to use pull secrets)"
			}
			fmt.Fprintf(errOut, "archfit: pull secret %s/%s not used: %s\n", r.namespace, r.name, why)
			continue
		}
		data := s.Data[corev1.DockerConfigJsonKey]
		if s.Type == corev1.SecretTypeDockercfg {
			// Legacy .dockercfg holds the "auths" map itself.
			data = append(append([]byte(`{"auths":`), s.Data[corev1.DockerConfigKey]...), '}')
		}
		if len(data) == 0 {
			fmt.Fprintf(errOut, "archfit: pull secret %s/%s has no docker config\n", r.namespace, r.name)
			continue
		}
		kc, err := registry.DockerConfigKeychain(data)
		if err != nil {
			fmt.Fprintf(errOut, "archfit: pull secret %s/%s not used: unreadable docker config\n", r.namespace, r.name)
			continue
		}
		kcs = append(kcs, kc)
	}
	if len(kcs) == 0 {
		return nil, nil
	}
	return authn.NewMultiKeychain(kcs...), nil
}
