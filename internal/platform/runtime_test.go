package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is shorthand: "os/arch[/variant]" or "" for no platform; a "+zstd"
// suffix adds the zstd annotation, "+feat" an os.features list.
func mkIndex(mt string, entries ...string) Index {
	idx := Index{Ref: "example.com/app:1", Digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111", MediaType: mt,
		ConfigPlatform: map[digest.Digest]specs.Platform{}}
	for i, e := range entries {
		d := specs.Descriptor{
			MediaType: specs.MediaTypeImageManifest,
			Digest:    digest.Digest(fmt.Sprintf("sha256:%064d", i+1)),
			Size:      100,
		}
		if mt == "application/vnd.docker.distribution.manifest.list.v2+json" {
			d.MediaType = "application/vnd.docker.distribution.manifest.v2+json"
		}
		spec, ann := e, ""
		for j := 0; j < len(e); j++ {
			if e[j] == '+' {
				spec, ann = e[:j], e[j+1:]
				break
			}
		}
		switch {
		case spec == "":
		case len(spec) > 7 && spec[:7] == "config:":
			p, _ := Parse(spec[7:])
			idx.ConfigPlatform[d.Digest] = p
		default:
			p, err := Parse(spec)
			if err != nil {
				panic(err)
			}
			d.Platform = &p
		}
		switch ann {
		case "zstd":
			d.Annotations = map[string]string{"io.github.containers.compression.zstd": "true"}
		case "feat":
			d.Platform.OSFeatures = []string{"sse4"}
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	raw, err := json.Marshal(struct {
		SchemaVersion int                `json:"schemaVersion"`
		MediaType     string             `json:"mediaType"`
		Manifests     []specs.Descriptor `json:"manifests"`
	}{2, mt, idx.Manifests})
	if err != nil {
		panic(err)
	}
	idx.Raw = raw
	return idx
}

const oci = specs.MediaTypeImageIndex
const dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"

// TestChoose checks FACTS.md section 2, case by case. Want is the 1-based
// index of the chosen entry, 0 for a failed pull.
func TestChoose(t *testing.T) {
	amd64, arm64 := Node("linux", "amd64"), Node("linux", "arm64")
	cases := []struct {
		name string
		idx  Index
		node specs.Platform
		want map[Runtime]int
	}{
		{"exact amd64", mkIndex(oci, "linux/amd64", "linux/arm64/v8"), amd64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 1, CRIO: 1}},
		{"exact arm64/v8", mkIndex(oci, "linux/amd64", "linux/arm64/v8"), arm64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 2}},
		{"plain arm64 matches an arm64 node", mkIndex(oci, "linux/amd64", "linux/arm64"), arm64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 2}},
		{"amd64 only: arm64 pull fails everywhere", mkIndex(oci, "linux/amd64"), arm64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 0}},
		{"386 only: local path falls back on amd64, others do not", mkIndex(oci, "linux/386"), amd64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 0, CRIO: 0}},
		{"arm/v7 fallback on arm64: local path only", mkIndex(oci, "linux/amd64", "linux/arm/v7"), arm64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 0, CRIO: 0}},
		{"arm/v6 fallback too", mkIndex(oci, "linux/arm/v6"), arm64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 0, CRIO: 0}},
		{"arm64 preferred over arm/v7 whatever the order", mkIndex(oci, "linux/arm/v7", "linux/arm64"), arm64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 2}},
		{"only arm64/v8.2 and v9: nothing on a real arm64 node", mkIndex(oci, "linux/amd64", "linux/arm64/v8.2", "linux/arm64/v9"), arm64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 0}},
		{"amd64/v3 is never selected by containerd or CRI-O", mkIndex(oci, "linux/amd64/v3", "linux/arm64"), amd64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 0}},
		{"amd64/v3 first, plain amd64 second", mkIndex(oci, "linux/amd64/v3", "linux/amd64"), amd64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 2}},
		{"aarch64 spelling: containerd normalizes, CRI-O does not", mkIndex(oci, "linux/x86_64", "linux/aarch64"), arm64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 0}},
		{"x86_64 spelling on amd64", mkIndex(oci, "linux/x86_64"), amd64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 1, CRIO: 0}},
		{"CRI-O prefers arm64/v8 over plain arm64 whatever the order", mkIndex(oci, "linux/arm64", "linux/arm64/v8"), arm64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 1, CRIO: 2}},
		{"CRI-O prefers the zstd instance at equal rank", mkIndex(oci, "linux/amd64", "linux/amd64+zstd"), amd64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 1, CRIO: 2}},
		{"os.features entry does not match a plain node", mkIndex(oci, "linux/amd64+feat"), amd64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 1}},
		{"attestation unknown/unknown never matches", mkIndex(oci, "unknown/unknown"), amd64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 0}},
		{"no-platform entry: containerd checks its config", mkIndex(oci, "config:linux/arm64"), arm64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 1, CRIO: 1}},
		{"no-platform entry whose config is another arch", mkIndex(oci, "config:linux/amd64"), arm64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 1}},
		{"no-platform entries: only the first is checked against its config", mkIndex(oci, "config:linux/amd64", "config:linux/arm64"), arm64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 1}},
		{"no-platform entries: the first matching is pulled", mkIndex(oci, "config:linux/arm64", "config:linux/amd64"), arm64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 1, CRIO: 1}},
		{"386 + arm64 on amd64: fallback on the local path only", mkIndex(oci, "linux/386", "linux/arm64"), amd64,
			map[Runtime]int{ContainerdLocal: 1, ContainerdTransfer: 0, CRIO: 0}},
		{"no-platform entries come last", mkIndex(oci, "config:linux/amd64", "linux/amd64"), amd64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 2}},
		{"docker manifest list", mkIndex(dockerList, "linux/amd64", "linux/arm64/v8"), arm64,
			map[Runtime]int{ContainerdLocal: 2, ContainerdTransfer: 2, CRIO: 2}},
		{"windows entries do not match linux nodes", mkIndex(oci, "windows/amd64", "linux/arm64"), amd64,
			map[Runtime]int{ContainerdLocal: 0, ContainerdTransfer: 0, CRIO: 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[Runtime]int{}
			for _, rt := range Runtimes {
				d, err := Choose(rt, tc.node, tc.idx)
				var nm *NoMatchError
				switch {
				case errors.As(err, &nm):
					got[rt] = 0
				case err != nil:
					t.Fatalf("%s: %v", rt, err)
				default:
					for i, m := range tc.idx.Manifests {
						if m.Digest == d.Digest {
							got[rt] = i + 1
						}
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chosen entry by runtime (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNoMatchMessages(t *testing.T) {
	idx := mkIndex(oci, "linux/amd64")
	arm64 := Node("linux", "arm64")
	want := map[Runtime]string{
		ContainerdLocal:    "no match for platform in manifest: not found",
		ContainerdTransfer: "get image config descriptor: no match for platform in manifest " + string(idx.Digest) + ": not found",
		CRIO:               `choosing image instance: no image found in image index for architecture "arm64", variant "v8", OS "linux"`,
	}
	for rt, w := range want {
		_, err := Choose(rt, arm64, idx)
		if err == nil || err.Error() != w {
			t.Errorf("%s: got %v, want %q", rt, err, w)
		}
	}
	_, err := Choose(CRIO, arm64, mkIndex(dockerList, "linux/amd64"))
	if w := `choosing image instance: no image found in manifest list for architecture "arm64", variant "v8", OS "linux"`; err == nil || err.Error() != w {
		t.Errorf("docker list: got %v, want %q", err, w)
	}
}

func TestParseRuntime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Runtime
	}{
		{"containerd://1.7.27", []Runtime{ContainerdLocalPreRC5}},
		{"containerd://2.0.5", []Runtime{ContainerdLocalPreRC5}},
		{"containerd://2.1.4", []Runtime{ContainerdTransferPreRC5, ContainerdLocalPreRC5}},
		{"containerd://2.2.0-rc.1", []Runtime{ContainerdTransferPreRC5, ContainerdLocalPreRC5}},
		{"containerd://2.3.0", []Runtime{ContainerdTransfer, ContainerdLocal}},
		{"containerd://2.4.1", []Runtime{ContainerdTransfer, ContainerdLocal}},
		{"containerd://v1.6.8-k3s1", []Runtime{ContainerdLocalPreRC5}},
		{"containerd://weird", []Runtime{ContainerdLocal}},
		{"cri-o://1.31.0", []Runtime{CRIO}},
		{"docker://24.0.7", []Runtime{ContainerdLocal}},
		{"", []Runtime{ContainerdLocal}},
	} {
		if diff := cmp.Diff(tc.want, ParseRuntime(tc.in).Matchers); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestNodeAndNormalize(t *testing.T) {
	if got := String(ptr(Node("linux", "arm64"))); got != "linux/arm64/v8" {
		t.Errorf("arm64 node: %s", got)
	}
	if got := String(ptr(Node("", "amd64"))); got != "linux/amd64" {
		t.Errorf("amd64 node: %s", got)
	}
	for in, want := range map[string]string{"linux/aarch64": "arm64", "linux/x86_64": "amd64", "linux/armhf": "arm", "linux/i386": "386", "linux/arm64/v8": "arm64"} {
		p, _ := Parse(in)
		if got := Arch(p); got != want {
			t.Errorf("Arch(%s) = %s, want %s", in, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestContainerdMessages checks the messages real containerd reports (issue
// 12 points 1, 3, 4): the "get image config descriptor" failures come after a
// successful download, so the runtime reports them without the "failed to
// pull and unpack image" prefix.
func TestContainerdMessages(t *testing.T) {
	amd64, arm64 := Node("linux", "amd64"), Node("linux", "arm64")
	noMatch := "get image config descriptor: no match for platform in manifest sha256:1111111111111111111111111111111111111111111111111111111111111111: not found"
	content := func(i int) string {
		return fmt.Sprintf("get image config descriptor: content digest sha256:%064d: not found", i)
	}
	cases := []struct {
		name      string
		rt        Runtime
		node      specs.Platform
		idx       Index
		msg       string
		afterPull bool
	}{
		{"first platform-less entry is another arch (local)", ContainerdLocal, arm64, mkIndex(oci, "config:linux/amd64", "config:linux/arm64"), noMatch, true},
		{"first platform-less entry is another arch (transfer)", ContainerdTransfer, arm64, mkIndex(oci, "config:linux/amd64", "config:linux/arm64"), noMatch, true},
		{"arm/v7 fallback on the transfer path", ContainerdTransfer, arm64, mkIndex(oci, "linux/amd64", "linux/arm/v7"), content(2), true},
		{"386 fallback on the transfer path", ContainerdTransfer, amd64, mkIndex(oci, "linux/386", "linux/arm64"), content(1), true},
		{"no candidate on the transfer path", ContainerdTransfer, arm64, mkIndex(oci, "linux/amd64"), noMatch, true},
		{"no candidate on the local path", ContainerdLocal, arm64, mkIndex(oci, "linux/amd64"), "no match for platform in manifest: not found", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Choose(tc.rt, tc.node, tc.idx)
			var nm *NoMatchError
			if !errors.As(err, &nm) {
				t.Fatalf("got %v, want a NoMatchError", err)
			}
			if nm.Message != tc.msg || nm.AfterPull != tc.afterPull {
				t.Errorf("got %q (after pull %v), want %q (after pull %v)", nm.Message, nm.AfterPull, tc.msg, tc.afterPull)
			}
		})
	}
}

// TestOSFeaturesByVersion: containerd/platforms rc.5 (containerd >= 2.3)
// refuses a Linux entry listing os.features for a plain node; the matchers of
// older releases (1.7.35 and 2.1.9 seen pulling such entries) ignore the field.
func TestOSFeaturesByVersion(t *testing.T) {
	amd64 := Node("linux", "amd64")
	for _, tc := range []struct {
		version string
		idx     Index
		want    int // 1-based chosen entry, 0 for a failed pull
	}{
		{"1.6.20", mkIndex(oci, "linux/amd64+feat"), 1},
		{"1.7.35", mkIndex(oci, "linux/amd64+feat"), 1},
		{"2.0.5", mkIndex(oci, "linux/amd64+feat"), 1},
		{"2.1.4", mkIndex(oci, "linux/amd64+feat"), 1},
		{"2.1.9", mkIndex(oci, "linux/amd64+feat"), 1},
		{"2.2.1", mkIndex(oci, "linux/amd64+feat"), 1},
		{"2.3.0", mkIndex(oci, "linux/amd64+feat"), 0},
		{"2.4.0", mkIndex(oci, "linux/amd64+feat"), 0},
		{"2.3.0", mkIndex(oci, "linux/amd64+feat", "linux/amd64"), 2},
		{"2.1.9", mkIndex(oci, "linux/amd64+feat", "linux/amd64"), 1},
	} {
		for _, rt := range ParseRuntime("containerd://" + tc.version).Matchers {
			d, err := Choose(rt, amd64, tc.idx)
			got := 0
			if err == nil {
				for i, m := range tc.idx.Manifests {
					if m.Digest == d.Digest {
						got = i + 1
					}
				}
			}
			if got != tc.want {
				t.Errorf("containerd %s %s: chose %d (%v), want %d", tc.version, rt, got, err, tc.want)
			}
		}
	}
	if ContainerdLocalPreRC5.Base() != ContainerdLocal || CRIO.Base() != CRIO {
		t.Errorf("Base: %s, %s", ContainerdLocalPreRC5.Base(), CRIO.Base())
	}
}

// TestLocalPullSettings: every setting that makes containerd >= 2.1 take its
// local pull path (issue 12 point 6) is listed.
func TestLocalPullSettings(t *testing.T) {
	all := fmt.Sprint(LocalPullSettings)
	for _, s := range []string{"use_local_image_pull", "mirrors", "max_concurrent_downloads", "disable_snapshot_annotations = false", "discard_unpacked_layers", "image_pull_with_sync_fs"} {
		if !strings.Contains(all, s) {
			t.Errorf("LocalPullSettings lacks %s", s)
		}
	}
}

// TestSizeWalkAndNestedLevels covers two rules the runtime conformance
// suite found in real containerd (1.7 to 2.4, both pull paths): the CRI's
// image-size walk sorts every entry of a level, so a pulled entry without a
// platform loses to any entry with one, which was never fetched; and nested
// indexes are chosen level by level, a platform-less nested index sorting
// after the entries with a platform.
func TestSizeWalkAndNestedLevels(t *testing.T) {
	arm := Node("linux", "arm64")
	amd := Node("linux", "amd64")
	idx := mkIndex(specs.MediaTypeImageIndex, "linux/amd64", "config:linux/arm64")
	idx.ConfigDigest = map[digest.Digest]digest.Digest{idx.Manifests[1].Digest: digest.Digest("sha256:" + strings.Repeat("c", 64))}
	for _, rt := range []Runtime{ContainerdLocal, ContainerdTransfer, ContainerdLocalPreRC5} {
		_, err := Choose(rt, arm, idx)
		var nm *NoMatchError
		if !errors.As(err, &nm) || !nm.AfterPull {
			t.Fatalf("%s: got %v, want a failure after the download", rt, err)
		}
		want := `failed to update image store "sha256:` + strings.Repeat("c", 64) + `": get image info from containerd: get image compressed resource size: content digest ` + string(idx.Manifests[0].Digest) + `: not found`
		if nm.Message != want {
			t.Errorf("%s:\n got %s\nwant %s", rt, nm.Message, want)
		}
		if d, err := Choose(rt, amd, idx); err != nil || d.Digest != idx.Manifests[0].Digest {
			t.Errorf("%s on amd64: got %v %v, want the amd64 entry", rt, d.Digest, err)
		}
	}

	// [index{linux/amd64} (no platform), linux/amd64]: the direct entry wins.
	inner := specs.Descriptor{MediaType: specs.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Platform: &specs.Platform{OS: "linux", Architecture: "amd64"}}
	nested := specs.Descriptor{MediaType: specs.MediaTypeImageIndex, Digest: digest.Digest("sha256:" + strings.Repeat("b", 64))}
	direct := specs.Descriptor{MediaType: specs.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("d", 64)), Platform: &specs.Platform{OS: "linux", Architecture: "amd64"}}
	idx = Index{Digest: digest.Digest("sha256:" + strings.Repeat("1", 64)), MediaType: specs.MediaTypeImageIndex,
		Manifests: []specs.Descriptor{nested, direct}, Children: map[digest.Digest][]specs.Descriptor{nested.Digest: {inner}}}
	for _, rt := range []Runtime{ContainerdLocal, ContainerdTransfer} {
		if d, err := Choose(rt, amd, idx); err != nil || d.Digest != direct.Digest {
			t.Errorf("%s: got %v %v, want the direct entry", rt, d.Digest, err)
		}
	}
	// [index{linux/arm64} (no platform), linux/amd64] on arm64: the nested
	// entry is pulled, then the size walk meets linux/amd64 first.
	inner.Platform = &specs.Platform{OS: "linux", Architecture: "arm64"}
	idx.Children[nested.Digest] = []specs.Descriptor{inner}
	_, err := Choose(ContainerdLocal, arm, idx)
	if err == nil || !strings.Contains(err.Error(), "content digest "+string(direct.Digest)) {
		t.Errorf("got %v, want the size walk to miss the amd64 entry", err)
	}
	// An index whose nested index was not read is an error, not a guess.
	delete(idx.Children, nested.Digest)
	if _, err := Choose(ContainerdLocal, arm, idx); err == nil || !strings.Contains(err.Error(), "not read") {
		t.Errorf("got %v, want an unread nested index", err)
	}
}
