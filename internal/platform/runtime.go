package platform

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	podmanmanifest "go.podman.io/image/v5/manifest"
	podmantypes "go.podman.io/image/v5/types"
)

// Runtime names the index-entry selection logic of a container runtime.
type Runtime string

const (
	// ContainerdLocal is containerd <= 2.0, or >= 2.1 when the CRI plugin uses
	// the local pull path: platforms.Only(node), with 386 and 32-bit arm fallbacks.
	ContainerdLocal Runtime = "containerd-local"
	// ContainerdTransfer is containerd >= 2.1's default transfer service:
	// platforms.Ordered(node), the exact platform only.
	ContainerdTransfer Runtime = "containerd-transfer"
	// CRIO is CRI-O (containers/image ChooseInstance): exact compare, no aliasing.
	CRIO Runtime = "cri-o"
)

// LocalPullSettings are the CRI config settings that make containerd >= 2.1
// pull on its local path instead of the transfer service (its CRI plugin
// logs "Falling back to local image pull mode").
var LocalPullSettings = []string{
	"use_local_image_pull = true",
	"registry mirrors, configs or auths",
	"a non-default max_concurrent_downloads",
	"an explicit disable_snapshot_annotations = false",
	"discard_unpacked_layers",
	"image_pull_with_sync_fs",
}

// Runtimes lists every modelled runtime, in display order. The containerd
// ones apply the rules of the containerd/platforms archfit links (v1.0.0-rc.5,
// used by containerd >= 2.3).
var Runtimes = []Runtime{ContainerdLocal, ContainerdTransfer, CRIO}

// PreRC5 marks a containerd matcher with the rules of containerd/platforms
// before v1.0.0-rc.5: containerd 1.x and 2.0 (v0.2.1 or older), 2.1 and 2.2
// (v1.0.0-rc.1/rc.2). They ignore an entry's os.features where rc.5 refuses
// a Linux entry listing os.features for a node that has none.
const PreRC5 = "@pre-rc.5"

// Matchers of containerd releases older than 2.3.
const (
	ContainerdLocalPreRC5    = ContainerdLocal + PreRC5
	ContainerdTransferPreRC5 = ContainerdTransfer + PreRC5
)

// Variants are the matchers besides Runtimes that a node's runtime version may
// select. A report lists their pulls only where they choose differently from
// their Base.
var Variants = []Runtime{ContainerdLocalPreRC5, ContainerdTransferPreRC5}

// Base is the matcher without its rules variant: containerd-local for
// containerd-local@pre-rc.5.
func (rt Runtime) Base() Runtime {
	b, _, _ := strings.Cut(string(rt), "@")
	return Runtime(b)
}

// ignoresOSFeatures tells whether the matcher ignores os.features.
func (rt Runtime) ignoresOSFeatures() bool { return strings.HasSuffix(string(rt), PreRC5) }

// RuntimeInfo is what a node's status.nodeInfo.containerRuntimeVersion says.
type RuntimeInfo struct {
	Name    string // containerd, cri-o, docker, ...
	Version string // as reported, e.g. 2.1.4
	// Matchers are the selection logics this runtime may apply, the default
	// first. containerd >= 2.1 uses the transfer service unless its CRI config
	// forces the local path (LocalPullSettings), which the node object does
	// not show.
	Matchers []Runtime
}

// ParseRuntime reads a containerRuntimeVersion such as "containerd://2.1.4"
// or "cri-o://1.31.0". Unknown runtimes get containerd's local matcher, which
// is also what Docker (cri-dockerd) uses.
func ParseRuntime(v string) RuntimeInfo {
	name, ver, ok := strings.Cut(v, "://")
	if !ok {
		name, ver = v, ""
	}
	info := RuntimeInfo{Name: name, Version: ver}
	switch name {
	case "cri-o":
		info.Matchers = []Runtime{CRIO}
	case "containerd":
		major, minor, ok := majorMinor(ver)
		if ok && (major > 2 || major == 2 && minor >= 1) {
			info.Matchers = []Runtime{ContainerdTransfer, ContainerdLocal}
		} else {
			info.Matchers = []Runtime{ContainerdLocal}
		}
		// containerd/platforms by release (its go.mod): 1.7 v0.2.1, 2.1.4
		// rc.1, 2.1.9 and 2.2 rc.2, 2.3 and later rc.5. Unparsable versions
		// get the newest rules.
		if ok && (major < 2 || major == 2 && minor < 3) {
			for i, m := range info.Matchers {
				info.Matchers[i] = m + PreRC5
			}
		}
	default:
		info.Matchers = []Runtime{ContainerdLocal}
	}
	return info
}

func majorMinor(v string) (int, int, bool) {
	v = strings.TrimPrefix(v, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// Index is what a runtime sees of an image index: its raw bytes, its
// entries in order, and the platforms read from the config blobs of entries
// that declare none (containerd checks those against the node).
type Index struct {
	Ref       string // the reference as pulled, for error messages
	Digest    digest.Digest
	MediaType string
	Raw       []byte
	Manifests []specs.Descriptor
	// ConfigPlatform holds, by entry digest, the platform in the config blob of
	// entries without a platform. Missing means unknown (not fetched).
	ConfigPlatform map[digest.Digest]specs.Platform
	// ConfigDigest holds, by manifest digest, the digest of its config blob
	// (the image ID a runtime reports), where it was read.
	ConfigDigest map[digest.Digest]digest.Digest
	// Children holds the entries of nested indexes, by index digest; missing
	// means not read.
	Children map[digest.Digest][]specs.Descriptor
}

// maxLevels bounds the walk into nested indexes (a cycle is impossible by
// digest, but Children is input).
const maxLevels = 16

// NoMatchError is a pull that fails because no entry fits the node. Message is
// the text the runtime itself reports.
type NoMatchError struct {
	Runtime Runtime
	Node    specs.Platform
	Message string
	// AfterPull is set when the download itself succeeded and the CRI's
	// image.Config lookup that follows it failed ("get image config
	// descriptor: ..."): the runtime reports Message as is, without the
	// "failed to pull and unpack image" prefix of a failed download.
	AfterPull bool
}

func (e *NoMatchError) Error() string { return e.Message }

// Choose returns the entry a node of platform node running rt would pull from
// idx, or a *NoMatchError carrying the runtime's own message.
func Choose(rt Runtime, node specs.Platform, idx Index) (specs.Descriptor, error) {
	switch rt.Base() {
	case CRIO:
		return chooseCRIO(node, idx)
	default:
		return chooseContainerd(rt, node, idx)
	}
}

// chooseContainerd follows containerd's CRI pull, its images.Manifest
// (image.Config), and then the image-store update that computes the image's
// size. At each index level, keep the image manifests and indexes whose
// platform platforms.Only(node) matches (or that have none), stable-sort them
// by its preference with platform-less entries last, and follow the FIRST
// only (images.Manifest walks with a limit of one candidate):
//   - a platform-less first candidate whose config is another platform fails
//     with "no match for platform in manifest <index>", even when a later
//     platform-less entry would match;
//   - on the transfer path, which downloads only what platforms.Ordered(node)
//     accepts, a first candidate that is a fallback (386 on amd64, 32-bit arm
//     on arm64) was never fetched: its manifest is missing content;
//   - the size computation then walks the same levels with the same sort but
//     without dropping the entries that do not match: where the pulled entry
//     is platform-less and the level also has entries with a platform, the
//     first of those sorts ahead of it, was never fetched, and the pull fails
//     with "failed to update image store" (seen on containerd 1.7 to 2.4).
func chooseContainerd(rt Runtime, node specs.Platform, idx Index) (specs.Descriptor, error) {
	var m, ordered platforms.MatchComparer = platforms.Only(node), platforms.Ordered(node)
	if rt.ignoresOSFeatures() {
		m, ordered = noOSFeatures{m}, noOSFeatures{ordered}
	}
	transfer := rt.Base() == ContainerdTransfer
	configNoMatch := &NoMatchError{Runtime: rt, Node: node, AfterPull: true,
		Message: fmt.Sprintf("get image config descriptor: no match for platform in manifest %s: not found", idx.Digest)}
	byPreference := func(ds []specs.Descriptor) {
		sort.SliceStable(ds, func(i, j int) bool {
			if ds[i].Platform == nil {
				return false
			}
			if ds[j].Platform == nil {
				return true
			}
			return m.Less(*ds[i].Platform, *ds[j].Platform)
		})
	}
	var levels [][]specs.Descriptor // the entries of each index walked
	var path []specs.Descriptor     // the entry followed at each level
	level := idx.Manifests
	for depth := 0; ; depth++ {
		if depth >= maxLevels {
			return specs.Descriptor{}, fmt.Errorf("index nested deeper than %d levels", maxLevels)
		}
		var cands []specs.Descriptor
		for _, d := range level {
			if !isImageManifest(d.MediaType) && !isIndex(d.MediaType) {
				continue
			}
			if d.Platform == nil || m.Match(*d.Platform) {
				cands = append(cands, d)
			}
		}
		byPreference(cands)
		if len(cands) == 0 {
			if transfer {
				return specs.Descriptor{}, configNoMatch
			}
			return specs.Descriptor{}, &NoMatchError{Runtime: rt, Node: node, Message: "no match for platform in manifest: not found"}
		}
		d := cands[0]
		if transfer && d.Platform != nil && !ordered.Match(*d.Platform) {
			return specs.Descriptor{}, &NoMatchError{Runtime: rt, Node: node, AfterPull: true,
				Message: fmt.Sprintf("get image config descriptor: content digest %s: not found", d.Digest)}
		}
		levels, path = append(levels, level), append(path, d)
		if isIndex(d.MediaType) {
			children, ok := idx.Children[d.Digest]
			if !ok {
				return specs.Descriptor{}, fmt.Errorf("nested index %s was not read", d.Digest)
			}
			level = children
			continue
		}
		if d.Platform == nil {
			// containerd matches the config's OS and architecture only.
			p, ok := idx.ConfigPlatform[d.Digest]
			if !ok || !m.Match(platforms.Normalize(specs.Platform{OS: p.OS, Architecture: p.Architecture})) {
				return specs.Descriptor{}, configNoMatch
			}
		}
		break
	}
	// The size walk: every entry of each level, the same sort.
	for i, lv := range levels {
		all := append([]specs.Descriptor(nil), lv...)
		byPreference(all)
		if len(all) == 0 || all[0].Digest == path[i].Digest {
			continue
		}
		id := "<image ID>"
		if c, ok := idx.ConfigDigest[path[len(path)-1].Digest]; ok {
			id = c.String()
		}
		return specs.Descriptor{}, &NoMatchError{Runtime: rt, Node: node, AfterPull: true, Message: fmt.Sprintf(
			"failed to update image store %q: get image info from containerd: get image compressed resource size: content digest %s: not found", id, all[0].Digest)}
	}
	return path[len(path)-1], nil
}

// noOSFeatures is a matcher of containerd/platforms before v1.0.0-rc.5,
// which does not look at os.features.
type noOSFeatures struct{ platforms.MatchComparer }

func (n noOSFeatures) Match(p specs.Platform) bool {
	p.OSFeatures = nil
	return n.MatchComparer.Match(p)
}

func (n noOSFeatures) Less(a, b specs.Platform) bool {
	a.OSFeatures, b.OSFeatures = nil, nil
	return n.MatchComparer.Less(a, b)
}

// chooseCRIO asks containers/image itself, the library CRI-O pulls with.
func chooseCRIO(node specs.Platform, idx Index) (specs.Descriptor, error) {
	list, err := podmanmanifest.ListFromBlob(idx.Raw, idx.MediaType)
	if err != nil {
		return specs.Descriptor{}, fmt.Errorf("parsing index as CRI-O would: %w", err)
	}
	sys := &podmantypes.SystemContext{OSChoice: node.OS, ArchitectureChoice: node.Architecture, VariantChoice: node.Variant}
	dgst, err := list.ChooseInstance(sys)
	if err != nil {
		return specs.Descriptor{}, &NoMatchError{Runtime: CRIO, Node: node,
			Message: fmt.Sprintf("choosing an image from manifest list docker://%s: %v", CRIORef(idx.Ref), err)}
	}
	for _, d := range idx.Manifests {
		if d.Digest == dgst {
			if isIndex(d.MediaType) {
				// CRI-O does not walk into a nested index: it pulls the
				// chosen entry as an image and fails.
				return specs.Descriptor{}, &NoMatchError{Runtime: CRIO, Node: node, Message: crioNestedIndex}
			}
			return d, nil
		}
	}
	return specs.Descriptor{}, fmt.Errorf("CRI-O chose %s, which is not an entry of the index", dgst)
}

// CRIORef is a reference as CRI-O names it in its messages: docker.io for
// Docker Hub, library/ for its official images, the tag or digest kept.
func CRIORef(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	repo := r.Context().Name()
	if rest, ok := strings.CutPrefix(repo, name.DefaultRegistry+"/"); ok {
		repo = "docker.io/" + rest
	}
	sep := ":"
	if _, ok := r.(name.Digest); ok {
		sep = "@"
	}
	return repo + sep + r.Identifier()
}

// crioNestedIndex is CRI-O's image-pull error for an index whose chosen
// entry is itself an index.
const crioNestedIndex = "copying system image from manifest list: Unexpectedly received a manifest list instead of a manifest for a single image"

// CRIOMessage is CRI-O's message for a failed pull, as a given CRI-O
// version words it. msg is Choose's: what CRI-O before 1.34 says
// ("choosing an image from manifest list docker://REF: REASON", or the
// nested-index failure). From 1.34 CRI-O tries the reference as an OCI
// artifact after a failed image pull, fails again and reports both; the
// artifact half depends on the version (recorded by the conformance suite
// on 1.34.0 and 1.36.3; 1.35 is taken to word it as 1.36). An unparsable
// version gets the newest wording.
func CRIOMessage(version, msg string) string {
	major, minor, ok := majorMinor(version)
	if ok && (major < 1 || major == 1 && minor < 34) {
		return msg
	}
	v134 := ok && major == 1 && minor == 34
	var artifact string
	switch {
	case msg == crioNestedIndex:
		artifact = "image reference: parse manifest: Treating manifest lists as individual manifests is not implemented"
		if v134 {
			artifact = "parse manifest from blob: Treating manifest lists as individual manifests is not implemented"
		}
	case strings.HasPrefix(msg, "choosing an image from manifest list docker://"):
		_, reason, found := strings.Cut(msg, ": ")
		if !found {
			return msg
		}
		artifact = "image reference: choose manifest instance: " + reason
		switch {
		case v134 && strings.Contains(reason, " in manifest list for "):
			artifact = "provided artifact is a container image"
		case v134:
			artifact = "choose instance: " + reason
		}
	default:
		return msg
	}
	return "unable to pull image or OCI artifact: pull image err: " + msg + "; artifact err: " + artifact
}

func isImageManifest(mt string) bool {
	switch mt {
	case specs.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
		return true
	}
	return false
}

func isIndex(mt string) bool {
	switch mt {
	case specs.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

// NodeSpec is one node to predict for, as `inspect --node` names it:
// PLATFORM=RUNTIME://VERSION, e.g. linux/arm64=containerd://2.1.9.
type NodeSpec struct {
	Platform specs.Platform
	// Runtime is the runtime string as given; RuntimeInfo its parse.
	Runtime     string
	RuntimeInfo RuntimeInfo
}

// ParseNodeSpec reads PLATFORM=RUNTIME://VERSION. The platform is the
// node's (arm64 is always arm64/v8, as a kubelet reports it).
func ParseNodeSpec(s string) (NodeSpec, error) {
	pl, rt, ok := strings.Cut(s, "=")
	if !ok || rt == "" {
		return NodeSpec{}, fmt.Errorf("node %q: want PLATFORM=RUNTIME://VERSION, e.g. linux/arm64=containerd://2.1.9", s)
	}
	p, err := Parse(pl)
	if err != nil {
		return NodeSpec{}, fmt.Errorf("node %q: %w", s, err)
	}
	name, ver, ok := strings.Cut(rt, "://")
	if !ok || ver == "" || name != "containerd" && name != "cri-o" {
		return NodeSpec{}, fmt.Errorf("node %q: the runtime must be containerd://VERSION or cri-o://VERSION", s)
	}
	node := Node(p.OS, Arch(p))
	return NodeSpec{Platform: node, Runtime: rt, RuntimeInfo: ParseRuntime(rt)}, nil
}
