package image

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/archfit/archfit/internal/platform"
	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/testimage"
)

// What an entry's inspection read (manifest, config, verdicts) is kept in
// one entryFile: a later run whose whole report is not cached (here: other
// node platforms) reads it all from there, without a request.
func TestEntryFileAnswersWithoutRequests(t *testing.T) {
	reg := newCountingRegistry(t)
	multi, single := reg.host()+"/ef:multi", reg.host()+"/ef:single"
	push(t, multi, testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	push(t, single, testimage.App("linux/amd64", "amd64"))
	dir := t.TempDir()
	ctx := context.Background()
	reqs := []Request{{Ref: multi, Verify: true}, {Ref: single, Verify: true}}
	first := newResolver(t, dir, WithVerifier(headerVerifier)).InspectAll(ctx, reqs)
	reg.take()

	r := newResolver(t, dir, WithVerifier(headerVerifier), WithTagTTL(time.Hour), WithNodes(platform.Node("linux", "arm")))
	again := r.InspectAll(ctx, reqs)
	if got := reg.take(); len(got) != 0 {
		t.Errorf("a run with other nodes sent %v; want everything from the cache", got)
	}
	for i, rep := range again {
		if rep.Error != nil {
			t.Fatalf("%s: %v", rep.Reference, rep.Error)
		}
		if len(rep.Entries) != len(first[i].Entries) {
			t.Fatalf("%s: %d entries, want %d", rep.Reference, len(rep.Entries), len(first[i].Entries))
		}
		for j, e := range rep.Entries {
			w := first[i].Entries[j]
			if e.Entrypoint == nil || w.Entrypoint == nil || e.Entrypoint.Verdict != w.Entrypoint.Verdict || e.ConfigDigest != w.ConfigDigest {
				t.Errorf("%s entry %d: %+v, want %+v", rep.Reference, j, e.Entrypoint, w.Entrypoint)
			}
		}
	}
}

// An entryFile is checked like the single files: a config that is not the
// content of its digest is not used (it is read again), and a verdict filed
// under another manifest's digest answers for nothing.
func TestEntryFileIsChecked(t *testing.T) {
	reg := newCountingRegistry(t)
	ref := reg.host() + "/efc:1"
	push(t, ref, testimage.App("linux/amd64", "amd64"))
	dir := t.TempDir()
	ctx := context.Background()
	rep := newResolver(t, dir, WithVerifier(headerVerifier)).Inspect(ctx, Request{Ref: ref, Verify: true})
	if rep.Error != nil || len(rep.Entries) != 1 {
		t.Fatalf("%+v", rep)
	}
	files, err := filepath.Glob(filepath.Join(dir, "v1", "entries", "*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("entry files: %v %v", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var e entryFile
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Verify) != 1 || e.ConfigDigest != rep.Entries[0].ConfigDigest {
		t.Fatalf("entry file: config %s, verdicts %d", e.ConfigDigest, len(e.Verify))
	}
	// A planted config (an arm64 one) and a verdict for another digest.
	e.Config = []byte(`{"architecture":"arm64","os":"linux","config":{}}`)
	other := "sha256:" + strings.Repeat("0", 64)
	for k, v := range e.Verify {
		_, rest, _ := strings.Cut(k, "|")
		e.Verify[other+"|"+rest] = v
	}
	b, _ = json.Marshal(e)
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	reg.take()
	r := newResolver(t, dir, WithVerifier(headerVerifier), WithTagTTL(time.Hour), WithNodes(platform.Node("linux", "arm")))
	got := r.Inspect(ctx, Request{Ref: ref, Verify: true})
	if got.Error != nil || len(got.Entries) != 1 || got.Entries[0].ConfigPlatform == nil || got.Entries[0].ConfigPlatform.Architecture != "amd64" {
		t.Fatalf("a planted config was used: %+v", got.Entries)
	}
	if sent := reg.take(); len(sent) != 1 || sent[0] != "GET blob" {
		t.Errorf("requests %v, want the config read again (GET blob)", sent)
	}
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	for k := range r.cache.mem {
		if strings.HasPrefix(k, "verify "+other) {
			t.Errorf("a verdict filed under another digest was loaded: %s", k)
		}
	}
}

// A tag's file keeps the manifest it named; one that is not the content of
// the tag's digest is not used.
func TestTagFileManifestIsChecked(t *testing.T) {
	reg := newCountingRegistry(t)
	ref := reg.host() + "/tf:1"
	push(t, ref, testimage.App("linux/amd64", "amd64"))
	other := reg.host() + "/tf:arm"
	push(t, other, testimage.App("linux/arm64/v8", "arm64"))
	dir := t.TempDir()
	ctx := context.Background()
	first := newResolver(t, dir).Inspect(ctx, Request{Ref: ref})
	planted := newResolver(t, t.TempDir()).Inspect(ctx, Request{Ref: other})
	if first.Error != nil || planted.Error != nil {
		t.Fatal(first.Error, planted.Error)
	}
	c := newCache(dir)
	var te tagEntry
	if !c.getJSON("tags", first.Reference, &te) {
		t.Fatal("no tag file")
	}
	if len(te.Manifest) == 0 {
		t.Fatal("the tag file keeps no manifest")
	}
	// The arm64 image's manifest under the amd64 one's digest.
	r, err := name.ParseReference(other)
	if err != nil {
		t.Fatal(err)
	}
	armRaw, _, err := regclient.New().Manifest(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	te.Manifest = armRaw
	c.putJSON("tags", first.Reference, te)
	c.flush()
	// Other nodes: the report is not cached; the manifest must come from
	// the registry, not from the planted tag file.
	got := newResolver(t, dir, WithTagTTL(time.Hour), WithNodes(platform.Node("linux", "arm"))).Inspect(ctx, Request{Ref: ref})
	if got.Error != nil || len(got.Entries) != 1 || got.Entries[0].ConfigPlatform == nil || got.Entries[0].ConfigPlatform.Architecture != "amd64" {
		t.Fatalf("a planted manifest was used: %+v", got.Entries)
	}
}
