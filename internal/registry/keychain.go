package registry

import (
	"bytes"
	"fmt"
	"os"

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
