package diagnose

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
)

// Images holds the image reports of one run, by reference and the pod's
// command/args (the entrypoint verdict depends on both).
type Images struct {
	byKey map[string]*image.Report
	byRef map[string]*image.Report
}

// NewImages pairs requests with the reports InspectAll returned for them.
func NewImages(reqs []image.Request, reps []*image.Report) *Images {
	im := &Images{byKey: map[string]*image.Report{}, byRef: map[string]*image.Report{}}
	for i, q := range reqs {
		if i >= len(reps) || reps[i] == nil {
			continue
		}
		im.byKey[requestKey(q.Ref, q.Override)] = reps[i]
		if old, ok := im.byRef[q.Ref]; !ok || old.Error != nil {
			im.byRef[q.Ref] = reps[i]
		}
	}
	return im
}

// Report returns the report for ref as run with o, else any report of ref,
// else nil (the image was not inspected).
func (im *Images) Report(ref string, o *image.Override) *image.Report {
	if im == nil {
		return nil
	}
	if r, ok := im.byKey[requestKey(ref, o)]; ok {
		return r
	}
	return im.byRef[ref]
}

// All returns the distinct reports, in reference order.
func (im *Images) All() []*image.Report {
	if im == nil {
		return nil
	}
	seen := map[*image.Report]bool{}
	var out []*image.Report
	for _, r := range im.byKey {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sortReports(out)
	return out
}

func requestKey(ref string, o *image.Override) string {
	if o == nil {
		return ref
	}
	b, _ := json.Marshal(o)
	return ref + "|" + string(b)
}

// override is the pod's command/args for a container, nil when it sets
// neither (the image's Entrypoint and Cmd run).
func override(c *corev1.Container) *image.Override {
	if c == nil || len(c.Command) == 0 && len(c.Args) == 0 {
		return nil
	}
	return &image.Override{Command: c.Command, Args: c.Args}
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
			o := override(specContainer(&p.Spec, cs.Name))
			k := requestKey(cs.Image, o)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, image.Request{Ref: cs.Image, Verify: true, Override: o})
		}
	}
	return out
}
