package registry

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// DockerConfigKeychain reads credentials from the user's own docker
// config.json (auths, credsStore, credHelpers), such as --registry-config.
func DockerConfigKeychain(data []byte) (authn.Keychain, error) {
	cf, err := config.LoadFromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing docker config: %w", err)
	}
	return configKeychain{cf}, nil
}

// PullSecretKeychain reads a pod's kubernetes.io/dockerconfigjson pull
// secret as the kubelet does: its "auths" only. A secret is written by
// whoever may create one in the namespace; its credsStore or credHelpers
// would make archfit run docker-credential-<name> programs.
func PullSecretKeychain(data []byte) (authn.Keychain, error) {
	cf, err := config.LoadFromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing docker config: %w", err)
	}
	cf.CredentialsStore, cf.CredentialHelpers = "", nil
	return configKeychain{cf}, nil
}

// DockerConfigFileKeychain is DockerConfigKeychain for a file.
func DockerConfigFileKeychain(path string) (authn.Keychain, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading registry config: %w", err)
	}
	k, err := DockerConfigKeychain(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

type configKeychain struct{ cf *configfile.ConfigFile }

func (k configKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	var empty types.AuthConfig
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		cfg, err := k.cf.GetAuthConfig(key)
		if err != nil {
			return nil, err
		}
		cfg.ServerAddress = ""
		if cfg != empty {
			return authn.FromConfig(authn.AuthConfig{
				Username: cfg.Username, Password: cfg.Password, Auth: cfg.Auth,
				IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken,
			}), nil
		}
	}
	return authn.Anonymous, nil
}

// Keychain is the docker config file at path when given (--registry-config), else the usual places docker,
// podman and credential helpers keep credentials.
func Keychain(path string) (authn.Keychain, error) {
	if path != "" {
		return DockerConfigFileKeychain(path)
	}
	return authn.DefaultKeychain, nil
}

// InOrder is a keychain of keychains tried in turn, as the kubelet tries
// a pod's pull secrets and then the node's own credentials: a client
// using it sends the first credentials any of them has for a registry,
// and when the registry (or its token service) refuses them (401 or 403),
// the next different ones, and so on. Resolve alone gives the first
// (authn.NewMultiKeychain's answer).
func InOrder(kcs ...authn.Keychain) authn.Keychain { return orderedKeychain(kcs) }

type orderedKeychain []authn.Keychain

func (o orderedKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return authn.NewMultiKeychain(o...).Resolve(target)
}

// maxCredentials bounds how many different credentials one registry is
// tried with (a pod names at most a few pull secrets).
const maxCredentials = 8

// all resolves every keychain for target and returns their credentials
// that are not anonymous, in order, each once (at most maxCredentials).
func (o orderedKeychain) all(ctx context.Context, target authn.Resource) ([]*authn.AuthConfig, error) {
	var out []*authn.AuthConfig
	for _, kc := range o {
		a, err := authn.Resolve(ctx, kc, target)
		if err != nil {
			return nil, err
		}
		if a == authn.Anonymous {
			continue
		}
		cfg, err := authn.Authorization(ctx, a)
		if err != nil {
			return nil, err
		}
		if *cfg == (authn.AuthConfig{}) || slices.ContainsFunc(out, func(c *authn.AuthConfig) bool { return *c == *cfg }) {
			continue
		}
		out = append(out, cfg)
		if len(out) == maxCredentials {
			break
		}
	}
	return out, nil
}
