package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/archfit/archfit/internal/cluster"
	"github.com/archfit/archfit/internal/finding"
	renderer "github.com/archfit/archfit/internal/render"
)

// locateFindings gives findings about a workload read from a file the
// file and line of the container's image (of the workload's object for a
// finding about no container): editors and code scanning jump there.
// Findings that already have a file (a Dockerfile's) keep it.
func locateFindings(snap *cluster.Snapshot, fs []finding.Finding) {
	if snap == nil {
		return
	}
	byRef := make(map[cluster.Ref]*cluster.Workload, len(snap.Workloads))
	for _, w := range snap.Workloads {
		if w.File != "" && w.File != cluster.StdinName { // stdin is no file to jump to
			byRef[cluster.Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name}] = w
		}
	}
	for i := range fs {
		f := &fs[i]
		if f.File != "" || f.Workload == nil {
			continue
		}
		w := byRef[cluster.Ref{Kind: f.Workload.Kind, Namespace: f.Workload.Namespace, Name: f.Workload.Name}]
		if w == nil {
			continue
		}
		f.File, f.Line = w.Position(f.Container)
	}
}

// locateRendered points the workloads read from a rendered chart at their
// template, from the "# Source:" comment before each document: the
// template's path under the chart directory as given; those of a
// kustomization at the resource's file (the comment Kustomize's WithOrigins
// writes), else at the kustomization's directory. Their lines are dropped: a line of the
// render is not a line of the template, and the line of a templated image
// in its template is not known.
func locateRendered(snap *cluster.Snapshot, r rendered) {
	chartDir := r.src
	if snap == nil {
		return
	}
	type mark struct {
		line int
		src  string
	}
	var marks []mark // in line order
	n := 0
	for data := r.data; len(data) > 0; {
		n++
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if s, ok := bytes.CutPrefix(l, []byte(renderer.SourcePrefix)); ok {
			marks = append(marks, mark{n, strings.TrimSpace(string(s))})
		}
	}
	dir := false
	if st, err := os.Stat(chartDir); err == nil && st.IsDir() {
		dir = true
	}
	for _, w := range snap.Workloads {
		if w.File != r.file {
			continue
		}
		src := ""
		for _, m := range marks {
			if m.line > w.Line {
				break
			}
			src = m.src
		}
		w.File, w.Line = chartDir, 0
		for i := range w.Containers {
			w.Containers[i].Line = 0
		}
		// "chart/templates/x.yaml": the first element is the chart's
		// name, not necessarily its directory's.
		switch _, rest, ok := strings.Cut(filepath.ToSlash(src), "/"); {
		case !dir || src == "":
		case r.helm && ok && filepath.IsLocal(rest):
			w.File = existing(filepath.Join(chartDir, filepath.FromSlash(rest)), chartDir)
		case !r.helm && !filepath.IsAbs(src):
			// kustomize's origin: relative to the kustomization, which may
			// take it from a base beside it ("../base/deployment.yaml").
			w.File = existing(filepath.Join(chartDir, filepath.FromSlash(src)), chartDir)
		}
	}
}

// existing returns file if it exists, else dir: a subchart packed as a
// .tgz under charts/ has no template file on disk.
func existing(file, dir string) string {
	if _, err := os.Stat(file); err != nil {
		return dir
	}
	return file
}
