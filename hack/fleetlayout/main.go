// Command fleetlayout writes an OCI image layout that answers for a list of
// image references, so a whole-process benchmark of archfit on a real
// manifest (argo-cd's install.yaml, a rendered kube-prometheus-stack) can
// run offline. Each reference gets a small, real image: by default an OCI
// index of linux/amd64 and linux/arm64 entries with a BuildKit attestation;
// a reference listed with the suffix " amd64" gets a single amd64 manifest.
// Both annotations are written, the full reference in each, so every
// version of archfit finds the entry.
//
//	archfit audit -f install.yaml -o json | jq -r '.images[].reference' | sort -u |
//	  go run ./hack/fleetlayout DIR
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	ti "github.com/archfit/archfit/internal/testimage"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fleetlayout DIR < references")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "fleetlayout:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	amd := ti.App("linux/amd64", "amd64")
	arm := ti.App("linux/arm64", "arm64")
	multi := ti.Index(ti.For(amd, "linux/amd64"), ti.For(arm, "linux/arm64"), ti.Attestation(amd), ti.Attestation(arm))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		ann := layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": f[0],
			"io.containerd.image.name":          f[0],
		})
		if len(f) > 1 && f[1] == "amd64" {
			err = p.AppendImage(amd, ann)
		} else {
			err = p.AppendIndex(multi, ann)
		}
		if err != nil {
			return err
		}
	}
	return sc.Err()
}
