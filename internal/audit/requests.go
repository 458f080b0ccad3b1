package audit

import (
	"encoding/json"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/image"
)

// Requests lists the image inspections an audit needs: one per distinct
// image and, where a container sets command/args, one per distinct
// image+command+args, because what runs (and so what is verified) is the
// pod's command, not the image's entrypoint. Reports go back to Run keyed
// by ReportKey.
func Requests(snap *cluster.Snapshot, verify bool) ([]image.Request, []string) {
	seen := map[string]bool{}
	var reqs []image.Request
	var keys []string
	for _, w := range snap.Workloads {
		for _, c := range w.Containers {
			if c.Image == "" || c.Role == cluster.RoleEphemeral {
				continue
			}
			k, o := key(w, c)
			if seen[k] {
				continue
			}
			seen[k] = true
			reqs = append(reqs, image.Request{Ref: c.Image, Verify: verify, Override: o})
			keys = append(keys, k)
		}
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	sr, sk := make([]image.Request, len(idx)), make([]string, len(idx))
	for i, j := range idx {
		sr[i], sk[i] = reqs[j], keys[j]
	}
	return sr, sk
}

// ReportKey is the key of a container's report in the map Run takes.
func ReportKey(w *cluster.Workload, c cluster.Container) string {
	k, _ := key(w, c)
	return k
}

func key(w *cluster.Workload, c cluster.Container) (string, *image.Override) {
	spec := templateContainer(w, c.Name)
	if spec == nil || len(spec.Command) == 0 && len(spec.Args) == 0 {
		return c.Image, nil
	}
	o := &image.Override{Command: spec.Command, Args: spec.Args}
	b, _ := json.Marshal(o)
	return c.Image + "\x00" + string(b), o
}

func templateContainer(w *cluster.Workload, name string) *corev1.Container {
	if w == nil {
		return nil
	}
	spec := &w.Template.Spec
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// reportFor finds a container's report: the one verified with its own
// command/args, else any report of the same image.
func reportFor(reports map[string]*image.Report, w *cluster.Workload, c cluster.Container) *image.Report {
	if r := reports[ReportKey(w, c)]; r != nil {
		return r
	}
	return reports[c.Image]
}
