package diagnose

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
)

// Images are the run's image reports (image.Set answers by request).
type Images = image.Set

// NewImages pairs requests with the reports InspectAll returned for them.
func NewImages(reqs []image.Request, reps []*image.Report) *Images { return image.NewSet(reqs, reps) }

// request is what inspecting container c of a pod asks: its image with its
// command, args and PATH (c nil: the image alone, as for an injected one).
func request(c *corev1.Container, img string) image.Request {
	if c == nil {
		c = &corev1.Container{Image: img}
	}
	q := image.ForContainer(c, true)
	q.Ref = img
	return q
}

// specContainer finds a container of the pod spec by name.
func specContainer(spec *corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == name {
			return &spec.InitContainers[i]
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	for i := range spec.EphemeralContainers {
		if spec.EphemeralContainers[i].Name == name {
			c := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
			return &c
		}
	}
	return nil
}

// Requests lists the images to inspect: every container of every failing
// pod in the snapshot, verified, with the pod's command/args. Identical
// requests are listed once. Images of healthy pods are not requested.
func Requests(snap *cluster.Snapshot) []image.Request {
	var out []image.Request
	seen := map[string]bool{}
	for _, p := range snap.FailingPods() {
		for _, cs := range p.Containers() {
			if cs.Image == "" {
				continue
			}
			q := request(specContainer(&p.Spec, cs.Name), cs.Image)
			if seen[q.Key()] {
				continue
			}
			seen[q.Key()] = true
			out = append(out, q)
		}
	}
	return out
}
