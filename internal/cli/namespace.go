package cli

import (
	"fmt"
	"io"
	"strings"

	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/archfit/archfit/internal/cluster"
)

// fileNamespace is the namespace of the -f objects that name none: -n, else
// "default", as `kubectl apply -f` gives them (archfit reads no kubeconfig
// for file input, so a context's namespace does not apply).
func fileNamespace(f *genericclioptions.ConfigFlags) string {
	if f != nil && f.Namespace != nil && *f.Namespace != "" {
		return *f.Namespace
	}
	return "default"
}

// warnOtherNamespaces says which workloads of the files name a namespace
// other than the -n given: kubectl apply -n would refuse them; archfit reads
// them in their own namespace (audit, plan) or leaves them out (diagnose,
// patch select by -n).
func warnOtherNamespaces(w io.Writer, f *genericclioptions.ConfigFlags, snap *cluster.Snapshot, what string) {
	if f == nil || f.Namespace == nil || *f.Namespace == "" || snap == nil {
		return
	}
	ns := *f.Namespace
	var other []string
	for _, wl := range snap.Workloads {
		if wl.Original != nil && wl.Namespace != ns {
			other = append(other, wl.Ref.String())
		}
	}
	if len(other) == 0 {
		return
	}
	more := ""
	if len(other) > 3 {
		more = fmt.Sprintf(" and %d more", len(other)-3)
		other = other[:3]
	}
	fmt.Fprintf(w, "warning: -n %s: %s%s name another namespace in the files; %s\n", ns, strings.Join(other, ", "), more, what)
}
