package remedy

import (
	"github.com/archfit/archfit/internal/cluster"

	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAllowedArchitectures(t *testing.T) {
	multi := []string{"amd64", "arm64"}
	tests := []struct {
		name       string
		containers []Container
		nodes      []string
		want       Allowed
	}{
		{
			name: "all multi-arch, mixed cluster",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Architectures: multi},
				{Name: "proxy", Role: cluster.RoleSidecar, Architectures: []string{"arm64", "amd64", "s390x"}},
			},
			nodes: []string{"arm64", "amd64", "amd64"},
			want:  Allowed{Architectures: multi},
		},
		{
			name: "single-arch init container restricts the pod",
			containers: []Container{
				{Name: "migrate", Role: cluster.RoleInit, Image: "db-migrate:1", Architectures: []string{"amd64"}},
				{Name: "app", Role: cluster.RoleMain, Architectures: multi},
			},
			nodes: multi,
			want:  Allowed{Architectures: []string{"amd64"}},
		},
		{
			name: "nodes limit the result",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Architectures: []string{"amd64", "arm64", "ppc64le"}},
			},
			nodes: []string{"arm64"},
			want:  Allowed{Architectures: []string{"arm64"}},
		},
		{
			name: "unknown nodes: images alone decide",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Architectures: multi},
			},
			want: Allowed{Architectures: multi},
		},
		{
			name: "uninspectable image does not restrict but is listed",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Architectures: []string{"arm64"}},
				{Name: "vendor", Role: cluster.RoleSidecar, Unknown: true},
			},
			nodes: multi,
			want:  Allowed{Architectures: []string{"arm64"}, Unverified: []string{"vendor"}},
		},
		{
			name: "ephemeral containers are not part of the template",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Architectures: multi},
				{Name: "debugger", Role: cluster.RoleEphemeral, Architectures: []string{"amd64"}},
			},
			nodes: multi,
			want:  Allowed{Architectures: multi},
		},
		{
			name: "containers disagree",
			containers: []Container{
				{Name: "init-certs", Role: cluster.RoleInit, Image: "certs:1", Architectures: []string{"amd64"}},
				{Name: "app", Role: cluster.RoleMain, Image: "app:2", Architectures: []string{"arm64"}},
				{Name: "log", Role: cluster.RoleSidecar, Image: "log:3", Architectures: multi},
			},
			nodes: multi,
			want: Allowed{Conflict: &Conflict{
				Code:    CodeArchConstraintConflict,
				Message: `no architecture runs all containers: init container "init-certs" (certs:1) runs only amd64; main container "app" (app:2) runs only arm64; nodes are amd64, arm64`,
				Containers: []Exclusion{
					{Name: "init-certs", Role: cluster.RoleInit, Image: "certs:1", Runs: []string{"amd64"}, Excludes: []string{"arm64"}},
					{Name: "app", Role: cluster.RoleMain, Image: "app:2", Runs: []string{"arm64"}, Excludes: []string{"amd64"}},
				},
			}},
		},
		{
			name: "no node of the images' arch",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Image: "app:2", Architectures: []string{"arm64"}},
			},
			nodes: []string{"amd64"},
			want: Allowed{Conflict: &Conflict{
				Code:    CodeArchConstraintConflict,
				Message: "every container runs on arm64, but the cluster has only amd64 nodes",
				Containers: []Exclusion{
					{Name: "app", Role: cluster.RoleMain, Image: "app:2", Runs: []string{"arm64"}, Excludes: []string{"amd64"}},
				},
			}},
		},
		{
			name: "an image that runs nowhere",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Image: "broken:1", Architectures: nil},
			},
			nodes: multi,
			want: Allowed{Conflict: &Conflict{
				Code:    CodeArchConstraintConflict,
				Message: `no architecture runs all containers: main container "app" (broken:1) runs no architecture; nodes are amd64, arm64`,
				Containers: []Exclusion{
					{Name: "app", Role: cluster.RoleMain, Image: "broken:1", Runs: []string{}, Excludes: multi},
				},
			}},
		},
		{
			name: "nothing known",
			containers: []Container{
				{Name: "app", Role: cluster.RoleMain, Unknown: true},
			},
			want: Allowed{Unverified: []string{"app"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AllowedArchitectures(tt.containers, tt.nodes)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AllowedArchitectures (-want +got):\n%s", diff)
			}
		})
	}
}
