package platform

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
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
}

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

// chooseContainerd follows containerd's CRI pull and then its images.Manifest
// (image.Config): keep the image manifests whose platform platforms.Only(node)
// matches (or that have none), stable-sort them by its preference with
// platform-less entries last, and look at the FIRST only (images.Manifest
// walks with a limit of one candidate):
//   - a platform-less first candidate whose config is another platform fails
//     with "no match for platform in manifest <index>", even when a later
//     platform-less entry would match;
//   - on the transfer path, which downloads only what platforms.Ordered(node)
//     accepts, a first candidate that is a fallback (386 on amd64, 32-bit arm
//     on arm64) was never fetched: its manifest is missing content.
func chooseContainerd(rt Runtime, node specs.Platform, idx Index) (specs.Descriptor, error) {
	var m, ordered platforms.MatchComparer = platforms.Only(node), platforms.Ordered(node)
	if rt.ignoresOSFeatures() {
		m, ordered = noOSFeatures{m}, noOSFeatures{ordered}
	}
	transfer := rt.Base() == ContainerdTransfer
	var cands []specs.Descriptor
	for _, d := range idx.Manifests {
		if !isImageManifest(d.MediaType) {
			continue
		}
		if d.Platform == nil || m.Match(*d.Platform) {
			cands = append(cands, d)
		}
	}
	sortStable(cands, func(a, b specs.Descriptor) bool {
		if a.Platform == nil {
			return false
		}
		if b.Platform == nil {
			return true
		}
		return m.Less(*a.Platform, *b.Platform)
	})
	configNoMatch := &NoMatchError{Runtime: rt, Node: node, AfterPull: true,
		Message: fmt.Sprintf("get image config descriptor: no match for platform in manifest %s: not found", idx.Digest)}
	if len(cands) == 0 {
		if transfer {
			return specs.Descriptor{}, configNoMatch
		}
		return specs.Descriptor{}, &NoMatchError{Runtime: rt, Node: node, Message: "no match for platform in manifest: not found"}
	}
	d := cands[0]
	if d.Platform == nil {
		// containerd matches the config's OS and architecture only.
		p, ok := idx.ConfigPlatform[d.Digest]
		if !ok || !m.Match(platforms.Normalize(specs.Platform{OS: p.OS, Architecture: p.Architecture})) {
			return specs.Descriptor{}, configNoMatch
		}
		return d, nil
	}
	if transfer && !ordered.Match(*d.Platform) {
		return specs.Descriptor{}, &NoMatchError{Runtime: rt, Node: node, AfterPull: true,
			Message: fmt.Sprintf("get image config descriptor: content digest %s: not found", d.Digest)}
	}
	return d, nil
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
		return specs.Descriptor{}, &NoMatchError{Runtime: CRIO, Node: node, Message: "choosing image instance: " + err.Error()}
	}
	for _, d := range idx.Manifests {
		if d.Digest == dgst {
			return d, nil
		}
	}
	return specs.Descriptor{}, fmt.Errorf("CRI-O chose %s, which is not an entry of the index", dgst)
}

func isImageManifest(mt string) bool {
	switch mt {
	case specs.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
		return true
	}
	return false
}

// sortStable is an insertion sort: indexes are small and stability is what
// matters (containerd uses sort.SliceStable).
func sortStable(s []specs.Descriptor, less func(a, b specs.Descriptor) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
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
