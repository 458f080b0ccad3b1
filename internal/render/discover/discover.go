// Package discover asks a cluster's API server what a Helm chart rendered
// for it should see in .Capabilities: its version and the group/versions
// and group/version/kinds it serves, as helm install asks. It is apart from
// package render, which never talks to a cluster.
package discover

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/archfit/archfit/internal/render"
)

// DefaultTimeout bounds the discovery when ctx has no deadline.
const DefaultTimeout = 30 * time.Second

// maxEntries bounds the API versions kept from one cluster.
const maxEntries = 20000

// Capabilities reads the server version and the served API versions of
// the cluster of cfg. It makes the discovery requests `kubectl
// api-versions` makes (two or three with aggregated discovery), each
// bounded by ctx's deadline or DefaultTimeout, and returns as soon as ctx
// is done. A group whose discovery fails (an aggregated API that is down)
// is left out, as Helm leaves it out; a failure of the version or of the
// whole discovery is an error.
func Capabilities(ctx context.Context, cfg *rest.Config) (render.Capabilities, error) {
	cfg = rest.CopyConfig(cfg)
	timeout := DefaultTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if cfg.Timeout == 0 || cfg.Timeout > timeout {
		cfg.Timeout = timeout
	}
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	type result struct {
		caps render.Capabilities
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := capabilities(cfg)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return render.Capabilities{}, fmt.Errorf("reading the capabilities of the cluster at %s: %w", cfg.Host, r.err)
		}
		return r.caps, nil
	case <-ctx.Done():
		return render.Capabilities{}, fmt.Errorf("reading the capabilities of the cluster at %s: %w", cfg.Host, ctx.Err())
	}
}

func capabilities(cfg *rest.Config) (render.Capabilities, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return render.Capabilities{}, err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return render.Capabilities{}, fmt.Errorf("server version: %w", err)
	}
	if err := render.ParseKubeVersion(v.GitVersion); err != nil {
		return render.Capabilities{}, fmt.Errorf("server version %q: %w", v.GitVersion, err)
	}
	groups, resources, err := dc.ServerGroupsAndResources()
	var partial *discovery.ErrGroupDiscoveryFailed
	if err != nil && !errors.As(err, &partial) {
		return render.Capabilities{}, fmt.Errorf("API discovery: %w", err)
	}
	seen := map[string]bool{}
	var set []string
	add := func(s string) error {
		if seen[s] {
			return nil
		}
		if len(set) == maxEntries {
			return fmt.Errorf("the cluster serves more than %d API versions and kinds", maxEntries)
		}
		seen[s] = true
		set = append(set, s)
		return nil
	}
	for _, g := range groups {
		for _, gv := range g.Versions {
			if err := add(gv.GroupVersion); err != nil {
				return render.Capabilities{}, err
			}
		}
	}
	for _, rl := range resources {
		if rl == nil {
			continue
		}
		for _, r := range rl.APIResources {
			if strings.Contains(r.Name, "/") { // a subresource
				continue
			}
			if err := add(rl.GroupVersion + "/" + r.Kind); err != nil {
				return render.Capabilities{}, err
			}
		}
	}
	sort.Strings(set)
	return render.Capabilities{KubeVersion: v.GitVersion, KubeMajor: v.Major, KubeMinor: v.Minor, APIVersions: set, Source: "the cluster at " + cfg.Host}, nil
}
