// Package deploy holds no code: its tests check what runs archfit serve in
// a cluster, the Helm chart deploy/helm/archfit and the plain manifests
// deploy/manifests/archfit.yaml rendered from it, with archfit's own Helm
// renderer, the real API server of internal/testenv (server-side dry run)
// and archfit's own audit.
package deploy
