package audit

import (
	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
)

// Requests lists the image inspections an audit needs: one per distinct
// image and container command, args and PATH, because what runs (and so
// what is verified) is the pod's program, not the image's entrypoint.
func Requests(snap *cluster.Snapshot, verify bool) []image.Request {
	var qs []image.Request
	for _, w := range snap.Workloads {
		for _, c := range w.Containers {
			if c.Image == "" || c.Role == cluster.RoleEphemeral {
				continue
			}
			qs = append(qs, image.ForContainer(w.ContainerSpec(c.Name, c.Image), verify))
		}
	}
	return image.Requests(qs)
}

// reportFor finds a container's report: the one verified with its own
// command, args and PATH, else any report of the same image.
func reportFor(images *image.Set, w *cluster.Workload, c cluster.Container, verify bool) *image.Report {
	return images.Get(image.ForContainer(w.ContainerSpec(c.Name, c.Image), verify))
}
