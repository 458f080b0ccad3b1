package cluster

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/registry"
)

// secretRef is one imagePullSecret of a pod (or of its service account).
type secretRef struct{ namespace, name string }

// PullSecrets are the imagePullSecrets of the pods archfit inspects, kept
// per pod as the kubelet uses them: a pod's images are pulled with the
// secrets it names, read from its own namespace, never with another
// namespace's. images maps each image to the credential sets (IDs) of the
// pods that run it.
type PullSecrets struct {
	keychains map[secretRef]authn.Keychain
	sets      map[string][]secretRef // ID -> its secrets
	images    map[string]map[string]bool
}

// ReadPullSecrets reads the dockerconfigjson pull secrets the pods use. For
// pod templates (template true), a template that names none gets those of
// its service account, as the ServiceAccount admission plugin fills them in
// when the pod is created; a running pod already carries them. A secret or
// service account that cannot be read (RBAC, deleted) is reported on errOut
// and skipped: the images it would open become image-uninspectable, nothing
// else is lost. Credentials are never printed.
func ReadPullSecrets(ctx context.Context, flags *genericclioptions.ConfigFlags, pods []*corev1.Pod, template bool, errOut io.Writer) (*PullSecrets, error) {
	var cs kubernetes.Interface
	return readPullSecrets(ctx, func() (kubernetes.Interface, error) {
		if cs != nil {
			return cs, nil
		}
		cfg, err := flags.ToRESTConfig()
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig: %w", err)
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("creating client: %w", err)
		}
		cs = c
		return cs, nil
	}, pods, template, errOut)
}

// ReadPullSecretsWith is ReadPullSecrets with a client at hand (archfit
// serve's).
func ReadPullSecretsWith(ctx context.Context, cs kubernetes.Interface, pods []*corev1.Pod, template bool, errOut io.Writer) (*PullSecrets, error) {
	return readPullSecrets(ctx, func() (kubernetes.Interface, error) { return cs, nil }, pods, template, errOut)
}

func readPullSecrets(ctx context.Context, client func() (kubernetes.Interface, error), pods []*corev1.Pod, template bool, errOut io.Writer) (*PullSecrets, error) {
	ps := &PullSecrets{keychains: map[secretRef]authn.Keychain{}, sets: map[string][]secretRef{}, images: map[string]map[string]bool{}}
	saSecrets := map[secretRef][]string{}
	for _, p := range pods {
		names := make([]string, 0, len(p.Spec.ImagePullSecrets))
		for _, s := range p.Spec.ImagePullSecrets {
			names = append(names, s.Name)
		}
		if template && len(names) == 0 {
			sa := secretRef{p.Namespace, p.Spec.ServiceAccountName}
			if sa.name == "" {
				sa.name = "default"
			}
			got, ok := saSecrets[sa]
			if !ok {
				c, err := client()
				if err != nil {
					return nil, err
				}
				if acct, err := c.CoreV1().ServiceAccounts(sa.namespace).Get(ctx, sa.name, metav1.GetOptions{}); err == nil {
					for _, s := range acct.ImagePullSecrets {
						got = append(got, s.Name)
					}
				} else if !apierrors.IsNotFound(err) {
					fmt.Fprintf(errOut, "archfit: service account %s/%s not read (its pull secrets are not used): %s\n", sa.namespace, sa.name, why(err))
				}
				saSecrets[sa] = got
			}
			names = got
		}
		ps.add(p, names)
	}
	var refs []secretRef
	for _, set := range ps.sets {
		for _, r := range set {
			if _, ok := ps.keychains[r]; !ok {
				ps.keychains[r] = nil
				refs = append(refs, r)
			}
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].namespace+"/"+refs[i].name < refs[j].namespace+"/"+refs[j].name })
	for _, r := range refs {
		c, err := client()
		if err != nil {
			return nil, err
		}
		s, err := c.CoreV1().Secrets(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			fmt.Fprintf(errOut, "archfit: pull secret %s/%s not used: %s\n", r.namespace, r.name, why(err))
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
		kc, err := registry.PullSecretKeychain(data)
		if err != nil {
			fmt.Fprintf(errOut, "archfit: pull secret %s/%s not used: unreadable docker config\n", r.namespace, r.name)
			continue
		}
		ps.keychains[r] = kc
	}
	return ps, nil
}

func why(err error) string {
	if apierrors.IsForbidden(err) {
		return "forbidden (archfit needs get on secrets and serviceaccounts to use pull secrets)"
	}
	return err.Error()
}

// add records that pod runs its images with the secrets named.
func (ps *PullSecrets) add(p *corev1.Pod, names []string) {
	var set []secretRef
	seen := map[string]bool{}
	for _, n := range names {
		if n != "" && !seen[n] {
			seen[n] = true
			set = append(set, secretRef{p.Namespace, n})
		}
	}
	sort.Slice(set, func(i, j int) bool { return set[i].name < set[j].name })
	ids := make([]string, len(set))
	for i, r := range set {
		ids[i] = r.namespace + "/" + r.name
	}
	id := strings.Join(ids, ",")
	ps.sets[id] = set
	var images []string
	for _, c := range p.Spec.InitContainers {
		images = append(images, c.Image)
	}
	for _, c := range p.Spec.Containers {
		images = append(images, c.Image)
	}
	for _, c := range p.Spec.EphemeralContainers {
		images = append(images, c.Image)
	}
	for _, img := range images {
		if ps.images[img] == nil {
			ps.images[img] = map[string]bool{}
		}
		ps.images[img][id] = true
	}
}

// Attach gives each request the credentials of the pods that run its
// image: those pods' secrets, then the user's keychain, tried in turn
// (registry.InOrder), as the kubelet tries a pod's pull secrets before
// the node's own credentials and moves on when one is refused. The requests come
// deduplicated by image, so an image that pods with different secrets run
// is read with the user's own credentials only, never with one namespace's
// secrets for another's pod, and a warning says so. A nil ps attaches
// nothing (files, OCI layouts).
func (ps *PullSecrets) Attach(reqs []image.Request, user authn.Keychain, errOut io.Writer) {
	if ps == nil {
		return
	}
	creds := map[string]*image.Credentials{}
	credentials := func(id string) *image.Credentials {
		if c, ok := creds[id]; ok {
			return c
		}
		var kcs []authn.Keychain
		for _, r := range ps.sets[id] {
			if kc := ps.keychains[r]; kc != nil {
				kcs = append(kcs, kc)
			}
		}
		kcs = append(kcs, user)
		c := &image.Credentials{ID: id, Keychain: registry.InOrder(kcs...)}
		creds[id] = c
		return c
	}
	warned := map[string]bool{}
	for i := range reqs {
		ids := ps.images[reqs[i].Ref]
		id := ""
		if len(ids) == 1 {
			for id = range ids {
			}
		} else if len(ids) > 1 && !warned[reqs[i].Ref] {
			warned[reqs[i].Ref] = true
			fmt.Fprintf(errOut, "archfit: %s runs in pods with different pull secrets; read with your own credentials only\n", reqs[i].Ref)
		}
		reqs[i].Credentials = credentials(id)
	}
}
