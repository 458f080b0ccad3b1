package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/archfit/archfit/internal/platform"
	"github.com/archfit/archfit/internal/registry"
)

// Walking an index tree and reading each entry's config and entrypoint.

// index walks an index (nested ones too), filling rep.Entries in order.
func (r *Resolver) index(ctx context.Context, ref name.Reference, d doc, parents []string, depth int, q Request, rep *Report, st *statsMu, w *walk) error {
	var idx specs.Index
	if err := json.Unmarshal(d.raw, &idx); err != nil {
		return fmt.Errorf("parsing index %s: %w", d.desc.Digest, err)
	}
	if depth == 0 && rep.Base == nil {
		rep.Base = baseFromAnnotations(idx.Annotations)
	}
	if w.children == nil {
		w.children = map[digest.Digest][]specs.Descriptor{}
	}
	w.children[digest.Digest(d.desc.Digest)] = idx.Manifests
	var jobs []*Entry
	start := len(rep.Entries)
	for k, m := range idx.Manifests {
		if w.manifests >= MaxManifestsPerImage {
			rep.Entries = append(rep.Entries, Entry{Digest: d.desc.Digest, MediaType: d.desc.MediaType, Nested: parents,
				SkipReason: SkipTooManyEntries, Skipped: fmt.Sprintf("%d more entries of this index not read: an image is read up to %d manifests", len(idx.Manifests)-k, MaxManifestsPerImage)})
			break
		}
		w.manifests++
		e := Entry{Digest: m.Digest.String(), MediaType: m.MediaType, Size: m.Size, Platform: m.Platform, Nested: parents}
		if m.Annotations[annotationRefType] == attestationManifestRef || platform.IsUnknown(m.Platform) {
			e.Attestation = true
			e.AttestsDigest = m.Annotations[annotationRefDigest]
		}
		if err := registry.CheckDigest(e.Digest); err != nil {
			e.skip(SkipInvalid, err.Error())
		}
		switch {
		case e.SkipReason != "":
		case e.Attestation:
		case isIndex(m.MediaType):
			switch {
			case e.Digest == rep.Digest || slices.Contains(parents, e.Digest):
				e.skip(SkipCycle, "nested index is one of its own parents")
			case w.seen[e.Digest]:
				e.skip(SkipRepeatedIndex, "nested index already listed in this image")
			case depth+1 >= maxNestedIndexDepth:
				e.skip(SkipNestedTooDeep, fmt.Sprintf("nested index deeper than %d levels", maxNestedIndexDepth))
			case w.indexes >= MaxNestedIndexes:
				e.skip(SkipTooManyEntries, fmt.Sprintf("nested index not read: an image is read up to %d nested indexes", MaxNestedIndexes))
			}
			if e.SkipReason != "" {
				break
			}
			w.seen[e.Digest] = true
			w.indexes++
			child, err := r.manifestByDigest(ctx, ref.Context(), e.Digest, m.MediaType, false, st)
			if err != nil {
				e.skip(skipReasonOf(err), "nested index unreadable: "+err.Error())
				break
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("entry %s is a nested index; its entries are listed with nested=[...]", short(e.Digest)))
			if err := r.index(ctx, ref, child, append(slices.Clone(parents), e.Digest), depth+1, q, rep, st, w); err != nil {
				return err
			}
			continue
		case isSchema1(m.MediaType):
			e.skip(SkipSchema1, "Docker schema 1 manifest: refused by containerd >= 2.1")
		case !isManifest(m.MediaType):
			e.skip(SkipUnknownMediaType, fmt.Sprintf("unknown media type %q", m.MediaType))
		}
		rep.Entries = append(rep.Entries, e)
	}
	// Entries are examined concurrently; each one is independent.
	for i := start; i < len(rep.Entries); i++ {
		e := &rep.Entries[i]
		if e.Attestation || e.SkipReason != "" || len(e.Nested) != len(parents) {
			continue
		}
		// Entries of nested indexes are read too: a runtime's choice and
		// its messages there depend on their configs.
		if e.Platform == nil || q.Verify || len(parents) > 0 {
			jobs = append(jobs, e)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, e := range jobs {
		g.Go(func() error {
			st.recordPanic(recovered(func() error {
				md, err := r.manifestByDigest(gctx, ref.Context(), e.Digest, e.MediaType, true, st)
				if err != nil {
					e.skip(skipReasonOf(err), "manifest unreadable: "+err.Error())
					return nil
				}
				if err := r.entry(gctx, ref, e, md.raw, q.Verify, q, st); err != nil {
					st.recordPanic(err)
					e.skip(skipReasonOf(err), err.Error())
				}
				return nil
			}))
			return nil
		})
	}
	_ = g.Wait()
	return ctx.Err()
}

// entry reads an image manifest's config (platform, Env, Entrypoint/Cmd)
// and, when asked, verifies its entrypoint binary.
func (r *Resolver) entry(ctx context.Context, ref name.Reference, e *Entry, raw []byte, verify bool, q Request, st *statsMu) error {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return definitive(fmt.Errorf("parsing manifest %s: %w", e.Digest, err))
	}
	// What an earlier run learned of this manifest (its config, its
	// verdicts) is in its entryFile, when the manifest came from elsewhere.
	r.cache.loadEntry(e.Digest)
	cfgRaw, err := r.blob(ctx, ref.Context(), m.Config.Digest.String(), st)
	if err != nil {
		return fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return definitive(fmt.Errorf("parsing config %s: %w", m.Config.Digest, err))
	}
	// One file for what this entry read: its manifest, config and (when
	// verified) verdicts, written when the entry is done.
	defer r.cache.putEntry(e.Digest, entryFile{Manifest: raw, MediaType: e.MediaType, ConfigDigest: m.Config.Digest.String(), Config: cfgRaw})
	e.ConfigDigest = m.Config.Digest.String()
	e.ConfigPlatform = &specs.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	e.Config = &Exec{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, WorkingDir: cf.Config.WorkingDir, Path: pathFromEnv(cf.Config.Env)}
	if e.Platform != nil && !platform.IsUnknown(e.Platform) {
		if platform.Arch(*e.Platform) != platform.Arch(*e.ConfigPlatform) || e.Platform.OS != e.ConfigPlatform.OS {
			e.Mismatch = fmt.Sprintf("index says %s, config says %s", platform.String(e.Platform), platform.String(e.ConfigPlatform))
		}
	}
	if !verify || r.verifier == nil {
		return nil
	}
	want := platform.Arch(*e.ConfigPlatform)
	if e.Platform != nil {
		want = platform.Arch(*e.Platform)
	}
	// What runs depends only on argv[0] (the arguments never change which
	// file the kernel executes), so pods that start the same image with the
	// same program but other arguments share one verification.
	vkey := fmt.Sprintf("%s|%s|%s|%q", e.Digest, r.origin(ref, st.layout()), want, argv0(cf.Config, q.Override))
	if a := argv0(cf.Config, q.Override); q.Override != nil && q.Override.PathSet && !strings.Contains(a, "/") {
		// A bare name is looked up on the pod's own PATH.
		vkey += fmt.Sprintf("|PATH=%q", q.Override.Path)
	}
	var ep Entrypoint
	if r.cache.getJSON("verify", vkey, &ep) {
		r.hit(st)
		e.Entrypoint = &ep
		e.GoVersion = ep.GoSettings["GOVERSION"]
	} else {
		v, err, _ := r.flight.Do("verify "+vkey, func() (any, error) {
			// Another request may have verified this and left the
			// flight between the look above and this one: a second
			// look, so that a program is verified once per run.
			var done Entrypoint
			if r.cache.getJSON("verify", vkey, &done) {
				return verified{ep: &done, cached: true}, nil
			}
			// The verification holds a concurrency slot only while it
			// streams a layer (streamSlot), not while it waits for one
			// another verification is reading or works on what it read.
			slot := &streamSlot{r: r}
			defer slot.done()
			img, err := toV1Image(ctx, slot, r.source(st), ref.Context(), raw, e.MediaType, cfgRaw, r.origin(ref, st.layout()))
			if err != nil {
				return nil, err
			}
			var res *Entrypoint
			err = recovered(func() (err error) { res, err = r.verifier(ctx, img, want, q.Override); return })
			if err != nil {
				return nil, err
			}
			if res.Verdict != VerdictUnverifiable {
				r.cache.putVerdict(e.Digest, vkey, res)
			}
			return verified{ep: res}, nil
		})
		if errors.As(err, new(panicError)) {
			return err
		}
		switch res, _ := v.(verified); {
		case err != nil:
			e.Entrypoint = &Entrypoint{Verdict: VerdictUnverifiable, Detail: err.Error()}
		case res.cached:
			r.hit(st)
			e.Entrypoint = res.ep
			e.GoVersion = res.ep.GoSettings["GOVERSION"]
		default:
			e.Entrypoint = res.ep
			e.GoVersion = e.Entrypoint.GoSettings["GOVERSION"]
			st.add(func(s *Stats) { s.Bytes += e.Entrypoint.BytesRead })
		}
	}
	if e.Entrypoint.Verdict == VerdictWrongArch && e.Mismatch == "" {
		e.Mismatch = fmt.Sprintf("entry claims %s, entrypoint %s is %s", want, e.Entrypoint.Path, e.Entrypoint.Arch)
	}
	return nil
}

// verified is what one verification gave: cached when it was found done
// by the time its flight began.
type verified struct {
	ep     *Entrypoint
	cached bool
}

// argv0 is the program a container runs: the pod's command, else the
// image Entrypoint, else the pod's args or the image Cmd (as containerd
// combines them).
func argv0(cfg v1.Config, o *Override) string {
	var argv []string
	switch {
	case o != nil && len(o.Command) > 0:
		argv = o.Command
	case len(cfg.Entrypoint) > 0:
		argv = cfg.Entrypoint
	case o != nil && len(o.Args) > 0:
		argv = o.Args
	default:
		argv = cfg.Cmd
	}
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}

func pathFromEnv(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			return v
		}
	}
	return ""
}

func (r *Resolver) schema1(raw []byte, rep *Report) {
	var m struct {
		Architecture string `json:"architecture"`
	}
	_ = json.Unmarshal(raw, &m)
	p := &specs.Platform{OS: "linux", Architecture: m.Architecture}
	rep.Entries = append(rep.Entries, Entry{Digest: rep.Digest, MediaType: rep.MediaType, ConfigPlatform: p})
	rep.Notes = append(rep.Notes, "Docker schema 1 manifest: deprecated, refused by containerd >= 2.1; re-push it with a current client")
}

func baseFrom(raw []byte) *BaseImage {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(raw, &m)
	return baseFromAnnotations(m.Annotations)
}

func baseFromAnnotations(a map[string]string) *BaseImage {
	if a[annotationBaseName] == "" && a[annotationBaseDigest] == "" {
		return nil
	}
	return &BaseImage{Name: a[annotationBaseName], Digest: a[annotationBaseDigest]}
}
