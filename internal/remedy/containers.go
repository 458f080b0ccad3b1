package remedy

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/image"
)

// Containers lists the containers of a pod spec with their roles (an init
// container with restartPolicy Always is a native sidecar) and what their
// images run, as reports says (keyed by the image reference as written in
// the spec). An image without a report, or whose report is an inspection
// failure, is Unknown.
func Containers(spec corev1.PodSpec, reports map[string]image.Report) []Container {
	var out []Container
	add := func(name, img string, role Role) {
		c := Container{Name: name, Role: role, Image: img}
		r, ok := reports[img]
		if !ok || r.Error != nil {
			c.Unknown = true
		} else {
			c.Architectures = sortedSet(r.Architectures)
		}
		out = append(out, c)
	}
	for _, c := range spec.InitContainers {
		role := RoleInit
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			role = RoleSidecar
		}
		add(c.Name, c.Image, role)
	}
	for _, c := range spec.Containers {
		add(c.Name, c.Image, RoleMain)
	}
	for _, c := range spec.EphemeralContainers {
		add(c.Name, c.Image, RoleEphemeral)
	}
	return out
}
