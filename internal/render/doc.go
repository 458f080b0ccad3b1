// Package render turns a Helm chart or a kustomization into the
// multi-document YAML that `helm template` or `kustomize build` would print,
// using Helm's and kustomize's own libraries, so that audit reads what the
// cluster would get. It never talks to a cluster.
package render
