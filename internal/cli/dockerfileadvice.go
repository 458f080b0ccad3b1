package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/archfit/archfit/internal/dockerfile"
	"github.com/archfit/archfit/internal/remedy"
)

// dockerfileAdvice is --dockerfile of diagnose, audit, plan and patch: the
// Dockerfiles that build the images to rebuild, whose findings go into the
// build advice ("for good").
type dockerfileAdvice struct {
	values  []string
	sources []remedy.DockerfileSource
	// failed are the paths that could not be read or parsed: the command
	// fails with them (exit 1) after printing the rest.
	failed []error
}

func (d *dockerfileAdvice) addFlag(fs *pflag.FlagSet) {
	fs.StringArrayVar(&d.values, "dockerfile", nil, "the Dockerfile (file or directory, as archfit dockerfile takes) that builds the image to rebuild: its findings go into the build advice; IMAGE=PATH says which image it builds (needed when several images need a rebuild); repeatable")
}

// parse splits each value into IMAGE and PATH: a value that names an
// existing file or directory is a PATH; otherwise IMAGE=PATH.
func (d *dockerfileAdvice) parse() error {
	for _, v := range d.values {
		img, path := "", v
		if _, err := os.Stat(v); err != nil {
			if k, p, ok := strings.Cut(v, "="); ok {
				if k == "" || p == "" {
					return fmt.Errorf("--dockerfile %q: want PATH or IMAGE=PATH", v)
				}
				if err := remedy.ValidImageKey(k); err != nil {
					return fmt.Errorf("--dockerfile %q: %w", v, err)
				}
				img, path = k, p
			}
		}
		d.sources = append(d.sources, remedy.DockerfileSource{Image: img, Path: path})
	}
	return nil
}

// analyze runs the static analysis of archfit dockerfile (no registry
// read) on every path; a path that cannot be read or parsed is kept in
// failed and left out.
func (d *dockerfileAdvice) analyze() {
	kept := d.sources[:0]
	for _, s := range d.sources {
		files, err := dockerfile.Files(s.Path)
		if err != nil {
			d.failed = append(d.failed, err)
			continue
		}
		for _, f := range files {
			a, err := dockerfile.AnalyzeFile(f)
			if err != nil {
				d.failed = append(d.failed, err)
				continue
			}
			s.Files = append(s.Files, remedy.DockerfileFile{Path: f, Findings: a.Findings})
		}
		if len(s.Files) > 0 {
			kept = append(kept, s)
		}
	}
	d.sources = kept
}

// attach puts the findings into the advice and warns on errOut about each
// --dockerfile that matched no image to rebuild.
func (d *dockerfileAdvice) attach(errOut io.Writer, advice []*remedy.BuildAdvice) {
	if len(d.sources) == 0 {
		return
	}
	for _, w := range remedy.AttachDockerfiles(advice, d.sources) {
		fmt.Fprintf(errOut, "warning: %s\n", w)
	}
}

// err is the error of the paths that could not be analyzed, to return
// after the output is printed (archfit failed on some input: that
// outranks any finding).
func (d *dockerfileAdvice) err() error {
	if len(d.failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d --dockerfile path(s) could not be analyzed:\n%w", len(d.failed), errors.Join(d.failed...))
}

// remedyAdvice is the build advice of every remedy.
func remedyAdvice(rems []*remedy.Remedy) []*remedy.BuildAdvice {
	var out []*remedy.BuildAdvice
	for _, r := range rems {
		for i := range r.Build {
			out = append(out, &r.Build[i])
		}
	}
	return out
}
