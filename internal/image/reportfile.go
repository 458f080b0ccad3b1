package image

import (
	"encoding/json"

	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/archfit/archfit/internal/platform"
)

// decodeReport decodes a cached report (a Report as json.Marshal writes
// it). A warm run decodes one per image, and encoding/json spends most of
// such a run's image phase on them (it scans each twice, and matches every
// field through reflection): the common shape is read in one pass here —
// the fields a cached report usually has, plain ASCII strings without
// escapes, integers, booleans, each key once — and anything else (another
// field, an escape, a null, a key twice, a number with a fraction) goes to
// encoding/json whole, so a field added to Report later, or a message with
// a quote in it, is still read, only more slowly. A test and a fuzz seed
// check that both give the same Report.
func decodeReport(b []byte, rep *Report) error {
	d := fastJSON{b: b}
	var r Report
	d.report(&r)
	if d.end() {
		*rep = r
		return nil
	}
	*rep = Report{}
	return json.Unmarshal(b, rep)
}

// fastJSON reads b from i; bad says it met something it does not read
// (from then on every read returns a zero value at once).
type fastJSON struct {
	b   []byte
	i   int
	bad bool
}

func (d *fastJSON) end() bool {
	d.i = skipSpace(d.b, d.i)
	return !d.bad && d.i == len(d.b)
}

// next skips space and reports whether the next byte is c (taking it).
func (d *fastJSON) next(c byte) bool {
	d.i = skipSpace(d.b, d.i)
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *fastJSON) str() string {
	if d.bad {
		return ""
	}
	s, e, next, ok := plainString(d.b, skipSpace(d.b, d.i))
	if !ok {
		d.bad = true
		return ""
	}
	d.i = next
	return string(d.b[s:e])
}

func (d *fastJSON) boolean() bool {
	if d.bad {
		return false
	}
	d.i = skipSpace(d.b, d.i)
	switch rest := d.b[d.i:]; {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		d.i += 4
		return true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.i += 5
		return false
	}
	d.bad = true
	return false
}

// integer reads 0 or -?[1-9][0-9]* of at most 18 digits (no overflow);
// a fraction or exponent, which encoding/json refuses for an integer
// field, is left to it.
func (d *fastJSON) integer() int64 {
	if d.bad {
		return 0
	}
	d.i = skipSpace(d.b, d.i)
	j, neg := d.i, false
	if j < len(d.b) && d.b[j] == '-' {
		neg = true
		j++
	}
	start := j
	var n int64
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		n = n*10 + int64(d.b[j]-'0')
		j++
	}
	digits := j - start
	if digits == 0 || digits > 18 || (digits > 1 && d.b[start] == '0') ||
		j < len(d.b) && (d.b[j] == '.' || d.b[j] == 'e' || d.b[j] == 'E') {
		d.bad = true
		return 0
	}
	d.i = j
	if neg {
		return -n
	}
	return n
}

// int reads an integer for an int field; one it cannot hold (on a 32-bit
// platform) is left to encoding/json, which refuses it.
func (d *fastJSON) int() int {
	v := d.integer()
	if int64(int(v)) != v {
		d.bad = true
		return 0
	}
	return int(v)
}

// object reads an object, calling field with each key (which reads the
// value); field returns the key's number (< 64; untracked from 64 on), or
// -1 for a key it does not know. An unknown key, or one seen twice, makes d
// bad.
func (d *fastJSON) object(field func(key []byte) int) {
	if d.bad || !d.next('{') {
		d.bad = true
		return
	}
	if d.next('}') {
		return
	}
	var seen uint64
	for !d.bad {
		s, e, next, ok := plainString(d.b, skipSpace(d.b, d.i))
		if !ok {
			d.bad = true
			return
		}
		d.i = next
		if !d.next(':') {
			d.bad = true
			return
		}
		switch n := field(d.b[s:e]); {
		case n < 0 || n < 64 && seen&(1<<n) != 0:
			d.bad = true
			return
		case n < 64:
			seen |= 1 << n
		}
		if d.next(',') {
			continue
		}
		if !d.next('}') {
			d.bad = true
		}
		return
	}
}

// array reads an array, calling elem for each element.
func (d *fastJSON) array(elem func()) {
	if d.bad || !d.next('[') {
		d.bad = true
		return
	}
	if d.next(']') {
		return
	}
	for !d.bad {
		elem()
		if d.next(',') {
			continue
		}
		if !d.next(']') {
			d.bad = true
		}
		return
	}
}

// untracked is a key number object does not check for repeats.
const untracked = 64

func (d *fastJSON) strings() []string {
	out := []string{}
	d.array(func() { out = append(out, d.str()) })
	return out
}

func (d *fastJSON) report(r *Report) {
	d.object(func(k []byte) int {
		switch string(k) {
		case "reference":
			r.Reference = d.str()
			return 0
		case "digest":
			r.Digest = d.str()
			return 1
		case "mediaType":
			r.MediaType = d.str()
			return 2
		case "kind":
			r.Kind = d.str()
			return 3
		case "entries":
			r.Entries = []Entry{}
			d.array(func() {
				r.Entries = append(r.Entries, Entry{})
				d.entry(&r.Entries[len(r.Entries)-1])
			})
			return 4
		case "platforms":
			r.Platforms = d.strings()
			return 5
		case "architectures":
			r.Architectures = d.strings()
			return 6
		case "effectivelySingleArch":
			r.EffectivelySingleArch = d.boolean()
			return 7
		case "base":
			r.Base = &BaseImage{}
			d.object(func(k []byte) int {
				switch string(k) {
				case "name":
					r.Base.Name = d.str()
					return 0
				case "digest":
					r.Base.Digest = d.str()
					return 1
				}
				return -1
			})
			return 8
		case "pulls":
			r.Pulls = []Pull{}
			d.array(func() {
				r.Pulls = append(r.Pulls, Pull{})
				d.pull(&r.Pulls[len(r.Pulls)-1])
			})
			return 9
		case "problems":
			r.Problems = []Problem{}
			d.array(func() {
				r.Problems = append(r.Problems, Problem{})
				p := &r.Problems[len(r.Problems)-1]
				d.object(func(k []byte) int {
					switch string(k) {
					case "code":
						p.Code = d.str()
						return 0
					case "entry":
						p.Entry = d.str()
						return 1
					case "detail":
						p.Detail = d.str()
						return 2
					}
					return -1
				})
			})
			return 10
		case "notes":
			r.Notes = d.strings()
			return 11
		case "stats":
			d.object(func(k []byte) int {
				switch string(k) {
				case "requests":
					r.Stats.Requests = d.int()
					return 0
				case "cacheHits":
					r.Stats.CacheHits = d.int()
					return 1
				case "bytes":
					r.Stats.Bytes = d.integer()
					return 2
				}
				return -1
			})
			return 12
		}
		return -1
	})
}

func (d *fastJSON) entry(e *Entry) {
	d.object(func(k []byte) int {
		switch string(k) {
		case "digest":
			e.Digest = d.str()
			return 0
		case "mediaType":
			e.MediaType = d.str()
			return 1
		case "size":
			e.Size = d.integer()
			return 2
		case "platform":
			e.Platform = d.platform()
			return 3
		case "configPlatform":
			e.ConfigPlatform = d.platform()
			return 4
		case "configDigest":
			e.ConfigDigest = d.str()
			return 5
		case "attestation":
			e.Attestation = d.boolean()
			return 6
		case "attestsDigest":
			e.AttestsDigest = d.str()
			return 7
		case "nested":
			e.Nested = d.strings()
			return 8
		case "skipReason":
			e.SkipReason = SkipReason(d.str())
			return 9
		case "skipped":
			e.Skipped = d.str()
			return 10
		case "mismatch":
			e.Mismatch = d.str()
			return 11
		case "entrypoint":
			e.Entrypoint = &Entrypoint{}
			d.entrypoint(e.Entrypoint)
			return 12
		case "goVersion":
			e.GoVersion = d.str()
			return 13
		case "exec":
			x := &Exec{}
			e.Config = x
			d.object(func(k []byte) int {
				switch string(k) {
				case "entrypoint":
					x.Entrypoint = d.strings()
					return 0
				case "cmd":
					x.Cmd = d.strings()
					return 1
				case "workingDir":
					x.WorkingDir = d.str()
					return 2
				case "path":
					x.Path = d.str()
					return 3
				}
				return -1
			})
			return 14
		}
		return -1
	})
}

func (d *fastJSON) platform() *specs.Platform {
	p := &specs.Platform{}
	d.object(func(k []byte) int {
		switch string(k) {
		case "architecture":
			p.Architecture = d.str()
			return 0
		case "os":
			p.OS = d.str()
			return 1
		case "os.version":
			p.OSVersion = d.str()
			return 2
		case "os.features":
			p.OSFeatures = d.strings()
			return 3
		case "variant":
			p.Variant = d.str()
			return 4
		}
		return -1
	})
	return p
}

func (d *fastJSON) entrypoint(ep *Entrypoint) {
	d.object(func(k []byte) int {
		switch string(k) {
		case "argv0":
			ep.Argv0 = d.str()
			return 0
		case "path":
			ep.Path = d.str()
			return 1
		case "format":
			ep.Format = d.str()
			return 2
		case "elfMachine":
			ep.ELFMachine = d.int()
			return 3
		case "elfClass":
			ep.ELFClass = d.int()
			return 4
		case "arch":
			ep.Arch = d.str()
			return 5
		case "static":
			ep.Static = d.boolean()
			return 6
		case "interpreter":
			ep.Interpreter = d.str()
			return 7
		case "interpreterArch":
			ep.InterpreterArch = d.str()
			return 8
		case "shebang":
			ep.Shebang = d.str()
			return 9
		case "goSettings":
			ep.GoSettings = map[string]string{}
			d.object(func(k []byte) int {
				if _, dup := ep.GoSettings[string(k)]; dup {
					return -1
				}
				ep.GoSettings[string(k)] = d.str()
				return untracked // a key twice is found in the map
			})
			return 10
		case "verdict":
			ep.Verdict = d.str()
			return 11
		case "detail":
			ep.Detail = d.str()
			return 12
		case "bytesRead":
			ep.BytesRead = d.integer()
			return 13
		case "layersRead":
			ep.LayersRead = d.int()
			return 14
		}
		return -1
	})
}

func (d *fastJSON) pull(p *Pull) {
	d.object(func(k []byte) int {
		switch string(k) {
		case "node":
			p.Node = d.str()
			return 0
		case "runtime":
			p.Runtime = platform.Runtime(d.str())
			return 1
		case "digest":
			p.Digest = d.str()
			return 2
		case "platform":
			p.Platform = d.str()
			return 3
		case "error":
			p.Error = d.str()
			return 4
		case "runs":
			v := d.boolean()
			p.Runs = &v
			return 5
		case "reason":
			p.Reason = d.str()
			return 6
		case "nodeRuntime":
			p.NodeRuntime = d.str()
			return 7
		}
		return -1
	})
}
