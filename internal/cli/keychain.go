package cli

import (
	"runtime/debug"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/archfit/archfit/internal/registry"
)

// keychain is --registry-config when given, else the usual places docker,
// podman and credential helpers keep credentials.
func keychain(path string) (authn.Keychain, error) {
	if path != "" {
		return registry.DockerConfigFileKeychain(path)
	}
	return authn.DefaultKeychain, nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
