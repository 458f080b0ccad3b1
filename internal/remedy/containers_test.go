package remedy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/image"
)

func TestContainers(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "migrate", Image: "migrate:1"},
			{Name: "proxy", Image: "proxy:2", RestartPolicy: &always},
		},
		Containers:          []corev1.Container{{Name: "app", Image: "app:3"}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
	}
	reports := map[string]image.Report{
		"migrate:1": {Reference: "migrate:1", Architectures: []string{"amd64"}},
		"proxy:2":   {Reference: "proxy:2", Error: &image.Failure{Reason: "auth"}},
		"app:3":     {Reference: "app:3", Architectures: []string{"arm64", "amd64"}},
	}
	want := []Container{
		{Name: "migrate", Role: RoleInit, Image: "migrate:1", Architectures: []string{"amd64"}},
		{Name: "proxy", Role: RoleSidecar, Image: "proxy:2", Unknown: true},
		{Name: "app", Role: RoleMain, Image: "app:3", Architectures: []string{"amd64", "arm64"}},
		{Name: "debug", Role: RoleEphemeral, Image: "busybox", Unknown: true},
	}
	got := Containers(spec, reports)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Containers (-want +got):\n%s", diff)
	}
	allowed := AllowedArchitectures(got, []string{"amd64", "arm64"})
	if diff := cmp.Diff(Allowed{Architectures: []string{"amd64"}, Unverified: []string{"proxy"}}, allowed); diff != "" {
		t.Errorf("AllowedArchitectures (-want +got):\n%s", diff)
	}
}
