package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DefaultLogLimitBytes is how much of the end of a log archfit keeps: the
// error that matters is the last thing a crashed container printed.
const DefaultLogLimitBytes = 16 << 10

// StdinName names standard input in errors.
const StdinName = "<stdin>"

// FileOption configures LoadFiles.
type FileOption func(*fileConfig)

type fileConfig struct {
	namespace     string
	recursive     bool
	logLimitBytes int
	limits        limits
}

// Recursive makes LoadFiles walk directories recursively, like kubectl -R.
func Recursive(r bool) FileOption { return func(c *fileConfig) { c.recursive = r } }

// DefaultNamespace puts the objects that have no metadata.namespace in ns,
// as `kubectl apply -n ns -f` does (the commands give "default" when -n is
// not given). Objects that name a namespace keep it; nodes have none.
// Without it (or with ""), such objects stay without namespace.
func DefaultNamespace(ns string) FileOption { return func(c *fileConfig) { c.namespace = ns } }

// LogLimitBytes sets how much of the end of each log file is kept.
func LogLimitBytes(n int) FileOption { return func(c *fileConfig) { c.logLimitBytes = n } }

// manifestExts are the extensions kubectl reads when walking a directory.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// LoadFiles reads kubectl output from paths as kubectl -f does: files,
// directories (their .yaml, .yml and .json files; recursively with
// Recursive(true)), and "-" for stdin. Documents may be multi-document YAML,
// JSON objects or streams, and List kinds. Logs are read from the layout in
// the package doc.
//
// A document that cannot be read is returned in the []error as a
// *DocumentError naming its file and line, and the rest is still used. The
// error is for inputs that cannot be read at all (a missing file).
func LoadFiles(ctx context.Context, paths []string, stdin io.Reader, opts ...FileOption) (*Snapshot, []error, error) {
	cfg := fileConfig{logLimitBytes: DefaultLogLimitBytes, limits: defaultLimits}
	for _, o := range opts {
		o(&cfg)
	}
	c := newCollector()
	c.limits = cfg.limits
	logDirs := map[string]bool{}
	readStdin := false
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if p == "-" {
			if readStdin {
				continue
			}
			readStdin = true
			if stdin == nil {
				return nil, nil, fmt.Errorf("reading %s: no standard input", StdinName)
			}
			if err := c.decodeFile(ctx, StdinName, stdin); err != nil {
				return nil, nil, err
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if !fi.IsDir() {
			if err := c.readFile(ctx, p); err != nil {
				return nil, nil, err
			}
			logDirs[filepath.Join(filepath.Dir(p), "logs")] = true
			continue
		}
		if filepath.Base(filepath.Clean(p)) == "logs" {
			logDirs[p] = true
			continue
		}
		if isChartDir(p) {
			return nil, nil, chartDirError(p)
		}
		logDirs[filepath.Join(p, "logs")] = true
		if err := c.readDir(ctx, p, cfg.recursive, logDirs); err != nil {
			return nil, nil, err
		}
	}
	if err := c.readLogDirs(ctx, logDirs, cfg.logLimitBytes); err != nil {
		return nil, nil, err
	}
	if cfg.namespace != "" {
		c.in.defaultNamespace(cfg.namespace)
	}
	return build(&c.in), c.errs, nil
}

// ErrChartDir: a directory given to read manifests from is a Helm chart.
var ErrChartDir = errors.New("a Helm chart directory (it holds Chart.yaml), not manifests")

// isChartDir tells a Helm chart directory: one holding a Chart.yaml file.
func isChartDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "Chart.yaml"))
	return err == nil && fi.Mode().IsRegular()
}

func chartDirError(dir string) error {
	return fmt.Errorf("%s is %w: archfit audit and plan render it with --helm-chart %s (values with --values and --set); other commands read the output of helm template", dir, ErrChartDir, dir)
}

// defaultNamespace puts the namespaced objects that have no namespace in
// ns, then drops the earlier of two that are now the same object, as the
// collector does when reading them (the later document wins, as a later
// kubectl apply would).
func (in *input) defaultNamespace(ns string) {
	for _, o := range in.objects {
		if o.ref.Namespace != "" {
			continue
		}
		o.ref.Namespace = ns
		if o.meta != nil {
			o.meta.Namespace = ns
		}
		if o.orig != nil {
			o.orig.SetNamespace(ns)
		}
		o.nsDefaulted = true
		if o.workloadRef != nil && o.workloadRef.Namespace == "" {
			o.workloadRef.Namespace = ns
		}
	}
	for _, p := range in.pods {
		if p.Namespace == "" {
			p.Namespace = ns
		}
	}
	for _, e := range in.events {
		if e.Namespace == "" {
			e.Namespace = ns
			if e.InvolvedObject.Namespace == "" && e.InvolvedObject.Kind != "Node" {
				e.InvolvedObject.Namespace = ns
			}
		}
	}
	in.objects = dedupe(in.objects, func(o *object) string { return o.ref.Kind + "/" + o.ref.Namespace + "/" + o.ref.Name })
	in.pods = dedupe(in.pods, func(p *corev1.Pod) string { return p.Namespace + "/" + p.Name })
	in.events = dedupe(in.events, func(e *corev1.Event) string { return e.Namespace + "/" + e.Name })
}

// dedupe keeps one element per key: the last, at the place of the first.
func dedupe[T any](s []T, key func(T) string) []T {
	at := make(map[string]int, len(s))
	out := s[:0]
	for _, v := range s {
		k := key(v)
		if i, ok := at[k]; ok {
			out[i] = v
			continue
		}
		at[k] = len(out)
		out = append(out, v)
	}
	return out
}

func (c *collector) readFile(ctx context.Context, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	return c.decodeFile(ctx, p, f)
}

// readDir reads the manifests of a directory. A directory named "logs" is a
// log tree, read later; with recursive, *.log files anywhere are logs too.
func (c *collector) readDir(ctx context.Context, dir string, recursive bool, logDirs map[string]bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == dir {
				return nil
			}
			if d.Name() == "logs" {
				logDirs[p] = true
				return fs.SkipDir
			}
			if !recursive {
				return fs.SkipDir
			}
			if isChartDir(p) {
				c.errs = append(c.errs, &DocumentError{File: p, Err: fmt.Errorf("skipped, %w: render it with --helm-chart %s", ErrChartDir, p)})
				return fs.SkipDir
			}
			return nil
		}
		switch ext := filepath.Ext(p); {
		case manifestExts[ext]:
			return c.readFile(ctx, p)
		case ext == ".log" && recursive:
			logDirs[p] = true // a single log file
		}
		return nil
	})
}

// readLogDirs reads every log file under the given directories (or the
// given .log files), in a stable order; directories that do not exist are
// skipped (they were only guesses next to a file).
func (c *collector) readLogDirs(ctx context.Context, dirs map[string]bool, limit int) error {
	type logFile struct{ root, path string }
	var files []logFile
	for d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			files = append(files, logFile{path: d})
			continue
		}
		err = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("reading logs %s: %w", p, err)
			}
			if !e.IsDir() && strings.HasSuffix(p, ".log") {
				files = append(files, logFile{root: d, path: p})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	seen := map[string]bool{}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		abs, _ := filepath.Abs(f.path)
		if seen[abs] {
			continue
		}
		seen[abs] = true
		rel := f.path
		if f.root != "" {
			rel, _ = filepath.Rel(f.root, f.path)
			if strings.Count(filepath.ToSlash(rel), "/") != 2 {
				rel = "" // not NAMESPACE/POD/CONTAINER.log under the logs root
			}
		}
		l, ok := parseLogPath(rel)
		if !ok {
			c.errs = append(c.errs, &DocumentError{File: f.path, Err: fmt.Errorf("log file not laid out as logs/NAMESPACE/POD/CONTAINER[.previous].log")})
			continue
		}
		text, truncated, err := readTail(f.path, limit)
		if err != nil {
			return err
		}
		l.Text, l.Truncated, l.Source = text, truncated, f.path
		c.in.logs = append(c.in.logs, l)
	}
	return nil
}

// parseLogPath reads NAMESPACE/POD/CONTAINER[.previous].log from the end of
// a path.
func parseLogPath(p string) (*Log, bool) {
	parts := strings.Split(filepath.ToSlash(filepath.Clean(p)), "/")
	if len(parts) < 3 {
		return nil, false
	}
	ns, pod, file := parts[len(parts)-3], parts[len(parts)-2], parts[len(parts)-1]
	name, ok := strings.CutSuffix(file, ".log")
	if !ok || ns == "" || pod == "" || ns == "." || ns == "logs" {
		return nil, false
	}
	l := &Log{Namespace: ns, Pod: pod}
	l.Container, l.Previous = strings.CutSuffix(name, ".previous")
	if l.Container == "" {
		return nil, false
	}
	return l, true
}

// readTail returns at most the last limit bytes of a file.
func readTail(p string, limit int) (string, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", false, fmt.Errorf("reading log %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", false, fmt.Errorf("reading log %s: %w", p, err)
	}
	truncated := false
	if limit > 0 && fi.Size() > int64(limit) {
		if _, err := f.Seek(fi.Size()-int64(limit), io.SeekStart); err != nil {
			return "", false, fmt.Errorf("reading log %s: %w", p, err)
		}
		truncated = true
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", false, fmt.Errorf("reading log %s: %w", p, err)
	}
	return string(b), truncated, nil
}

// withLimits lowers the size limits (for tests).
func withLimits(l limits) FileOption { return func(c *fileConfig) { c.limits = l } }
