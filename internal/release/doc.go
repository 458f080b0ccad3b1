// Package release builds archfit's own multi-arch container image
// (BuildImage: cross-compiled binaries assembled with go-containerregistry,
// no Docker daemon), and its tests check the files archfit is installed and
// run from (.pre-commit-hooks.yaml, .krew.yaml, .goreleaser.yaml) with the
// real tools that read them: pre-commit, krew's validate-krew-manifest and
// krew itself, goreleaser.
package release
