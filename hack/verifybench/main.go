// Command verifybench measures what `archfit inspect --verify` reads of
// realistic images. It builds, for amd64 and arm64, a Debian rootfs layer
// (a debootstrap directory), a package layer (extracted .debs) and an app
// layer (one small dynamically linked binary), pushes them as multi-arch
// indexes to an in-process registry that adds a delay to every request,
// and runs the archfit binary under /usr/bin/time -v against each image:
// entrypoint in the top layer, in the package layer, in the base layer,
// then all of them in one run. hack/bench-verify.sh prepares the
// directories and runs it.
//
//	verifybench -archfit BIN -work DIR [-delay 20ms] [-runs 3]
//
// DIR holds rootfs-ARCH, pkgs-ARCH and hello-ARCH (and gets layer-*.tar.gz,
// the built layers, cached for the next run).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var arches = []string{"amd64", "arm64"}

type benchCase struct {
	name, where string
	entrypoint  []string
}

var cases = []benchCase{
	{"static", "app layer (top), static Go binary", []string{"/usr/local/bin/hello"}},
	{"top", "app layer (top)", []string{"/usr/local/bin/app"}},
	{"pkg", "package layer", []string{"python3"}},
	{"base", "rootfs layer (bottom)", []string{"/bin/bash"}},
}

func main() {
	bin := flag.String("archfit", "", "archfit binary to measure")
	work := flag.String("work", "", "directory with rootfs-ARCH and pkgs-ARCH")
	delay := flag.Duration("delay", 20*time.Millisecond, "added to every registry request")
	runs := flag.Int("runs", 3, "runs of each measurement (the median is printed)")
	only := flag.String("only", "", "measure only this case (static, top, pkg, base, all)")
	flag.Parse()
	if *bin == "" || *work == "" {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)

	reg := &counting{h: registry.New(registry.Logger(log.New(io.Discard, "", 0))), delay: *delay}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: reg}
	go srv.Serve(ln)
	defer srv.Close()
	host := ln.Addr().String()

	sizes := map[string]int64{} // per case: compressed layers + config, both arches
	layerInfo := map[string][3]int64{}
	for _, c := range cases {
		var adds []mutate.IndexAddendum
		for _, arch := range arches {
			ls, err := layers(*work, arch)
			if err != nil {
				log.Fatal(err)
			}
			img, err := build(ls, arch, c.entrypoint)
			if err != nil {
				log.Fatal(err)
			}
			var per [3]int64
			for i, l := range ls {
				per[i], _ = l.Size()
				sizes[c.name] += per[i]
			}
			layerInfo[arch] = per
			cfg, _ := img.RawConfigFile()
			sizes[c.name] += int64(len(cfg))
			adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		}
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
		ref, err := name.ParseReference(host + "/bench/" + c.name + ":1")
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.WriteIndex(ref, idx); err != nil {
			log.Fatal(err)
		}
	}
	for _, arch := range arches {
		p := layerInfo[arch]
		fmt.Printf("%s layers (compressed): rootfs %s, packages %s, app %s\n", arch, mb(p[0]), mb(p[1]), mb(p[2]))
	}
	fmt.Printf("registry on %s, %v added to every request; cold runs (--no-cache); the run of median wall time of %d\n\n", host, *delay, *runs)

	fmt.Println("| entrypoint | image (2 arches) | requests | blob GETs | bytes served | bytes read (archfit) | share read | wall, median (min–max) | user+sys | peak RSS (min–max) | verdicts |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	var all []string
	var total int64
	for _, c := range cases {
		ref := host + "/bench/" + c.name + ":1"
		all = append(all, ref)
		total += sizes[c.name]
		if *only == "" || *only == c.name {
			row(reg, *bin, *runs, fmt.Sprintf("%s `%s`", c.where, c.entrypoint[0]), sizes[c.name], ref)
		}
	}
	// The images share their layers: in one run they are read once.
	if *only == "" || *only == "all" {
		row(reg, *bin, *runs, fmt.Sprintf("all %d in one run", len(cases)), total, all...)
	}
}

func row(reg *counting, bin string, runs int, label string, size int64, refs ...string) {
	var ms []measure
	for range runs {
		m, err := run(reg, bin, refs)
		if err != nil {
			log.Fatal(err)
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].wall < ms[j].wall })
	m := ms[len(ms)/2]
	lo, hi := ms[0].rssKB, ms[0].rssKB
	for _, x := range ms {
		lo, hi = min(lo, x.rssKB), max(hi, x.rssKB)
	}
	fmt.Printf("| %s | %s | %d | %d | %s | %s | %.1f%% | %.2f s (%.2f–%.2f) | %.2f s | %d–%d MB | %s |\n",
		label, mb(size), m.requests, m.blobGets, mb(m.served), mb(m.read), 100*float64(m.read)/float64(size),
		m.wall.Seconds(), ms[0].wall.Seconds(), ms[len(ms)-1].wall.Seconds(), m.cpu.Seconds(), lo/1024, hi/1024, m.verdicts)
}

type measure struct {
	requests, blobGets int64
	served, read       int64
	wall, cpu          time.Duration
	rssKB              int64
	verdicts           string
}

var (
	reWall = regexp.MustCompile(`Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)`)
	reUser = regexp.MustCompile(`User time \(seconds\): ([\d.]+)`)
	reSys  = regexp.MustCompile(`System time \(seconds\): ([\d.]+)`)
	reRSS  = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)
)

func run(reg *counting, bin string, refs []string) (measure, error) {
	reg.reset()
	args := append([]string{"-v", bin, "inspect"}, refs...)
	args = append(args, "--verify", "--no-cache", "-o", "json", "--fail-on", "never")
	cmd := exec.Command("/usr/bin/time", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return measure{}, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var m measure
	m.requests, m.blobGets, m.served = reg.get()
	t := errb.String()
	w := reWall.FindStringSubmatch(t)
	if w == nil {
		return m, fmt.Errorf("no wall time in:\n%s", t)
	}
	h, _ := strconv.Atoi(w[1])
	mi, _ := strconv.Atoi(w[2])
	s, _ := strconv.ParseFloat(w[3], 64)
	m.wall = time.Duration((float64(h*3600+mi*60) + s) * float64(time.Second))
	u, _ := strconv.ParseFloat(reUser.FindStringSubmatch(t)[1], 64)
	sy, _ := strconv.ParseFloat(reSys.FindStringSubmatch(t)[1], 64)
	m.cpu = time.Duration((u + sy) * float64(time.Second))
	m.rssKB, _ = strconv.ParseInt(reRSS.FindStringSubmatch(t)[1], 10, 64)

	var doc struct {
		Images []struct {
			Entries []struct {
				Platform   *v1.Platform `json:"platform"`
				Entrypoint *struct {
					Verdict    string `json:"verdict"`
					Path       string `json:"path"`
					BytesRead  int64  `json:"bytesRead"`
					LayersRead int    `json:"layersRead"`
				} `json:"entrypoint"`
			} `json:"entries"`
		} `json:"images"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		return m, fmt.Errorf("archfit output: %v\n%.400s", err, out.String())
	}
	var vs []string
	for _, im := range doc.Images {
		for _, e := range im.Entries {
			if e.Entrypoint == nil || e.Platform == nil {
				continue
			}
			m.read += e.Entrypoint.BytesRead
			vs = append(vs, fmt.Sprintf("%s %s (%d layer reads, %s) %s", e.Platform.Architecture, e.Entrypoint.Path, e.Entrypoint.LayersRead, mb(e.Entrypoint.BytesRead), e.Entrypoint.Verdict))
		}
	}
	if len(refs) > 1 {
		m.verdicts = fmt.Sprintf("%d entries: %s", len(vs), summarize(vs))
	} else {
		m.verdicts = strings.Join(vs, ", ")
	}
	return m, nil
}

func summarize(vs []string) string {
	n := map[string]int{}
	for _, v := range vs {
		n[v[strings.LastIndexByte(v, ' ')+1:]]++
	}
	var out []string
	for k, c := range n {
		out = append(out, fmt.Sprintf("%d %s", c, k))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

// counting wraps the registry: a delay on every request, and counts of
// requests, blob GETs and the bytes written for blobs.
type counting struct {
	h     http.Handler
	delay time.Duration

	mu                 sync.Mutex
	requests, blobGets int64
	served             int64
}

func (c *counting) reset() { c.mu.Lock(); c.requests, c.blobGets, c.served = 0, 0, 0; c.mu.Unlock() }
func (c *counting) get() (int64, int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, c.blobGets, c.served
}

type countWriter struct {
	http.ResponseWriter
	c *counting
}

func (w countWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.c.mu.Lock()
	w.c.served += int64(n)
	w.c.mu.Unlock()
	return n, err
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	blob := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
	if blob {
		c.blobGets++
	}
	c.mu.Unlock()
	time.Sleep(c.delay)
	if blob {
		w = countWriter{w, c}
	}
	c.h.ServeHTTP(w, r)
}

// layers builds (or takes from the work directory) the three layers of an
// arch, bottom first.
func layers(work, arch string) ([]v1.Layer, error) {
	var out []v1.Layer
	for _, l := range []struct {
		name string
		make func(tw *tar.Writer) error
	}{
		{"rootfs", func(tw *tar.Writer) error { return tarDir(tw, filepath.Join(work, "rootfs-"+arch), skipRootfs) }},
		{"pkgs", func(tw *tar.Writer) error { return tarDir(tw, filepath.Join(work, "pkgs-"+arch), nil) }},
		{"app", func(tw *tar.Writer) error { return appLayer(tw, work, arch) }},
	} {
		p := filepath.Join(work, fmt.Sprintf("layer-%s-%s.v2.tar.gz", l.name, arch))
		if _, err := os.Stat(p); err != nil {
			if err := writeLayer(p, l.make); err != nil {
				return nil, fmt.Errorf("%s layer of %s: %w", l.name, arch, err)
			}
		}
		layer, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		out = append(out, layer)
	}
	return out, nil
}

func writeLayer(p string, fill func(*tar.Writer) error) error {
	f, err := os.Create(p + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	if err := fill(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// skipRootfs leaves out what a rootfs image does not ship: debootstrap's
// own files and downloaded .debs, and the pseudo-filesystems' contents.
func skipRootfs(rel string) bool {
	switch {
	case rel == "debootstrap" || strings.HasPrefix(rel, "debootstrap/"):
		return true
	case strings.HasPrefix(rel, "var/cache/apt/archives/") && strings.HasSuffix(rel, ".deb"):
		return true
	case strings.HasPrefix(rel, "dev/") || strings.HasPrefix(rel, "proc/") || strings.HasPrefix(rel, "sys/"):
		return true
	}
	return false
}

// tarDir writes dir as a layer: lexical order, as docker and buildkit
// write layers; owners dropped; hardlinks as tar hardlinks.
func tarDir(tw *tar.Writer, dir string, skip func(string) bool) error {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
			return nil // devices, fifos, sockets
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = rel
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.Format = tar.FormatPAX
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			k := inode{uint64(st.Dev), uint64(st.Ino)}
			if first, ok := seen[k]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			seen[k] = rel
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
}

// appLayer is a small app: the arch's own /usr/bin/true (a dynamically
// linked ELF that needs the loader of the rootfs) as /usr/local/bin/app,
// a static Go binary (work/hello-ARCH) as /usr/local/bin/hello, and a
// config file.
func appLayer(tw *tar.Writer, work, arch string) error {
	b, err := os.ReadFile(filepath.Join(work, "rootfs-"+arch, "usr/bin/true"))
	if err != nil {
		return err
	}
	hello, err := os.ReadFile(filepath.Join(work, "hello-"+arch))
	if err != nil {
		return err
	}
	epoch := time.Unix(1700000000, 0)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/app/", 0o755, nil},
		{"etc/app/config.yaml", 0o644, []byte("listen: :8080\n")},
		{"usr/local/bin/app", 0o755, b},
		{"usr/local/bin/hello", 0o755, hello},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return nil
}

func build(ls []v1.Layer, arch string, entrypoint []string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, ls...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cf)
}
