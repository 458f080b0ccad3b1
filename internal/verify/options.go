package verify

// Limits bound the work and memory one verification may use. A zero field
// takes its default from DefaultLimits.
type Limits struct {
	// Compressed bytes pulled from layer streams, in total (rereads count).
	Compressed int64
	// Decompressed bytes per layer stream, and in total over all streams.
	LayerDecompressed int64
	Decompressed      int64
	// File is the most read of one file (the entrypoint, when it is a Go
	// binary and its build info is wanted); bigger files are judged from
	// their first bytes only.
	File int64
	// Entries is the most paths indexed over all layers: tar headers, and
	// the directories their names imply.
	Entries int
	// Lookups bounds the work of path lookups in the layer indexes: the
	// bytes of the paths probed, each probe counting 64 more.
	Lookups int64
}

// DefaultLimits are generous for real images and small enough that a gzip
// bomb costs a few seconds of CPU, not the machine.
func DefaultLimits() Limits {
	return Limits{
		Compressed:        512 << 20,
		LayerDecompressed: 512 << 20,
		Decompressed:      1 << 30,
		File:              64 << 20,
		Entries:           500_000,
		Lookups:           1 << 30,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Compressed <= 0 {
		l.Compressed = d.Compressed
	}
	if l.LayerDecompressed <= 0 {
		l.LayerDecompressed = d.LayerDecompressed
	}
	if l.Decompressed <= 0 {
		l.Decompressed = d.Decompressed
	}
	if l.File <= 0 {
		l.File = d.File
	}
	if l.Entries <= 0 {
		l.Entries = d.Entries
	}
	if l.Lookups <= 0 {
		l.Lookups = d.Lookups
	}
	return l
}

type options struct {
	arch       string
	command    []string
	args       []string
	env        []string
	limits     Limits
	headerOnly bool
	cache      *Cache
}

// Option configures Entrypoint.
type Option func(*options)

// WithArch sets the architecture the entry declares (an index entry's
// platform architecture; aarch64, x86_64... are normalized). Without it the
// image config's architecture is used.
func WithArch(arch string) Option {
	return func(o *options) { o.arch = arch }
}

// WithCommand applies a pod container's command and args, as the kubelet
// does: a non-empty command replaces the image Entrypoint and Cmd; args alone
// replace only Cmd.
func WithCommand(command, args []string) Option {
	return func(o *options) {
		o.command, o.args = command, args
	}
}

// WithEnv adds a pod container's environment ("NAME=value"); a PATH set
// there replaces the image's for the lookup of a bare command name.
func WithEnv(env []string) Option {
	return func(o *options) { o.env = env }
}

// WithLimits overrides the limits; zero fields keep their defaults.
func WithLimits(l Limits) Option {
	return func(o *options) { o.limits = l }
}

// HeaderOnly reads only the first bytes of the entrypoint, even of a Go
// binary: no Go build info, fewer bytes downloaded.
func HeaderOnly() Option {
	return func(o *options) { o.headerOnly = true }
}

// WithCache shares what is read of layers with the other verifications
// that use c (see Cache).
func WithCache(c *Cache) Option {
	return func(o *options) { o.cache = c }
}
