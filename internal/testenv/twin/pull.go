package twin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	podmanmanifest "go.podman.io/image/v5/manifest"
	podmantypes "go.podman.io/image/v5/types"
)

// matcher names the index-entry selection a node's runtime applies.
type matcher int

const (
	containerdLocal    matcher = iota // containerd <= 2.0, or use_local_image_pull
	containerdTransfer                // containerd >= 2.1 transfer service
	crio                              // CRI-O, containers/image
)

func (s NodeSpec) matcher() matcher {
	if s.runtimeName() == "cri-o" {
		return crio
	}
	major, minor := s.runtimeVersion()
	if (major > 2 || major == 2 && minor >= 1) && !s.LocalPull {
		return containerdTransfer
	}
	return containerdLocal
}

func (s NodeSpec) platform() specs.Platform {
	p := specs.Platform{OS: s.OS, Architecture: s.Arch}
	if s.Arch == "arm64" {
		p.Variant = "v8" // the kernel reports CPU architecture 8 on every arm64
	}
	return p
}

// pulled is a successful pull: the image the node would run.
type pulled struct {
	image   v1.Image
	imageID string // repo@digest of what the reference resolved to
	size    int64
}

// pullError is a failed pull, as the kubelet shows it: the gRPC error text
// of the runtime.
type pullError struct{ msg string }

func (e *pullError) Error() string { return e.msg }

// pull resolves ref the way spec's runtime would and returns the image it
// would unpack, or a *pullError with the runtime's exact message.
func (t *Twin) pull(ctx context.Context, spec NodeSpec, image string, kc authn.Keychain) (*pulled, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		// The kubelet refuses these itself (InvalidImageName) before the runtime.
		return nil, &pullError{msg: fmt.Sprintf("Failed to apply default image tag %q: couldn't parse image name %q: %v", image, image, err)}
	}
	norm := normalizedRef(image)
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	if err != nil {
		return nil, resolveError(spec, norm, ref, err)
	}
	imageID := ref.Context().Name() + "@" + desc.Digest.String()
	if strings.HasPrefix(imageID, "index.docker.io/") {
		imageID = "docker.io/" + strings.TrimPrefix(imageID, "index.docker.io/")
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		img, err = chooseFromIndex(spec, norm, desc)
		if err != nil {
			return nil, err
		}
	} else {
		// Single manifests are pulled whatever their config says.
		img, err = desc.Image()
		if err != nil {
			return nil, &pullError{msg: grpcUnknown(fmt.Sprintf("failed to pull and unpack image %q: %v", norm, err))}
		}
	}
	var size int64
	if layers, err := img.Layers(); err == nil {
		for _, l := range layers {
			if n, err := l.Size(); err == nil {
				size += n
			}
		}
	}
	return &pulled{image: img, imageID: imageID, size: size}, nil
}

func grpcUnknown(msg string) string  { return "rpc error: code = Unknown desc = " + msg }
func grpcNotFound(msg string) string { return "rpc error: code = NotFound desc = " + msg }

// resolveError turns a failed manifest fetch into the runtime's message.
func resolveError(spec NodeSpec, norm string, ref name.Reference, err error) error {
	var terr *transport.Error
	status := 0
	if errors.As(err, &terr) {
		status = terr.StatusCode
	}
	switch spec.matcher() {
	case crio:
		tagOrDigest := ref.Identifier()
		repo := ref.Context().RegistryStr() + "/" + ref.Context().RepositoryStr()
		var cause string
		switch {
		case terr != nil && len(terr.Errors) > 0:
			cause = podmanRegistryError(terr.Errors[0])
		case terr != nil:
			cause = fmt.Sprintf("StatusCode: %d, %q", status, "")
		default:
			cause = netCause(err)
		}
		return &pullError{msg: grpcUnknown(fmt.Sprintf("reading manifest %s in %s: %s", tagOrDigest, repo, cause))}
	default:
		var inner string
		code := grpcUnknown
		switch {
		case status == http.StatusNotFound:
			inner = fmt.Sprintf("%s: not found", norm)
			code = grpcNotFound
		case status == http.StatusUnauthorized:
			inner = "pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials"
		case terr != nil:
			inner = fmt.Sprintf("unexpected status from HEAD request to %s: %d %s", manifestURL(ref), status, http.StatusText(status))
		default:
			inner = "failed to do request: " + netCause(err)
		}
		if spec.matcher() == containerdTransfer {
			return &pullError{msg: code(fmt.Sprintf("failed to pull and unpack image %q: failed to resolve image: %s", norm, inner))}
		}
		return &pullError{msg: code(fmt.Sprintf("failed to pull and unpack image %q: failed to resolve reference %q: %s", norm, norm, inner))}
	}
}

func manifestURL(ref name.Reference) string {
	reg := ref.Context().Registry
	return fmt.Sprintf("%s://%s/v2/%s/manifests/%s", reg.Scheme(), reg.RegistryStr(), ref.Context().RepositoryStr(), ref.Identifier())
}

func netCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return err.Error()
}

// podmanRegistryError renders a registry error body entry the way
// containers/image does: the message alone when it is the code's default
// text, else "code text: message".
func podmanRegistryError(d transport.Diagnostic) string {
	defaults := map[transport.ErrorCode]string{
		transport.ManifestUnknownErrorCode: "manifest unknown",
		transport.NameUnknownErrorCode:     "repository name not known to registry",
		transport.UnauthorizedErrorCode:    "authentication required",
		transport.DeniedErrorCode:          "requested access to the resource is denied",
		transport.TooManyRequestsErrorCode: "too many requests",
	}
	def, ok := defaults[d.Code]
	if !ok {
		def = strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " "))
	}
	if d.Message == def || d.Message == "" {
		return def
	}
	return def + ": " + d.Message
}

// normalizedRef is the reference as containerd's CRI plugin prints it
// (distribution's ParseDockerRef: docker.io/library/ prefix, :latest tag).
func normalizedRef(image string) string {
	s := image
	first, rest, hasSlash := strings.Cut(s, "/")
	if !hasSlash || !strings.ContainsAny(first, ".:") && first != "localhost" {
		if !hasSlash {
			s = "docker.io/library/" + s
		} else {
			s = "docker.io/" + first + "/" + rest
		}
	}
	last := s[strings.LastIndex(s, "/")+1:]
	if !strings.Contains(last, ":") && !strings.Contains(s, "@") {
		s += ":latest"
	}
	return s
}

// chooseFromIndex picks the entry of an index the node's runtime would.
func chooseFromIndex(spec NodeSpec, norm string, desc *remote.Descriptor) (v1.Image, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, &pullError{msg: grpcUnknown(fmt.Sprintf("failed to pull and unpack image %q: %v", norm, err))}
	}
	node := spec.platform()
	switch spec.matcher() {
	case crio:
		list, err := podmanmanifest.ListFromBlob(desc.Manifest, string(desc.MediaType))
		if err != nil {
			return nil, &pullError{msg: grpcUnknown(fmt.Sprintf("parsing manifest list: %v", err))}
		}
		sys := &podmantypes.SystemContext{OSChoice: node.OS, ArchitectureChoice: node.Architecture, VariantChoice: node.Variant}
		d, err := list.ChooseInstance(sys)
		if err != nil {
			return nil, &pullError{msg: grpcUnknown(fmt.Sprintf("choosing an image from manifest list docker://%s: %v", familiar(norm), err))}
		}
		h, err := v1.NewHash(d.String())
		if err != nil {
			return nil, &pullError{msg: grpcUnknown(err.Error())}
		}
		img, err := idx.Image(h)
		if err != nil {
			return nil, &pullError{msg: grpcUnknown(fmt.Sprintf("reading manifest %s in %s: %v", d, norm, err))}
		}
		return img, nil
	default:
		return containerdChoose(idx, desc.Digest, norm, node, spec.matcher() == containerdTransfer, spec.ignoresOSFeatures())
	}
}

// ignoresOSFeatures tells whether the node's containerd links a
// containerd/platforms older than v1.0.0-rc.5 (its go.mod: 1.7 and 2.0
// v0.2.1, 2.1 and 2.2 rc.1/rc.2), whose matchers do not look at an entry's
// os.features.
func (s NodeSpec) ignoresOSFeatures() bool {
	if s.runtimeName() != "containerd" {
		return false
	}
	major, minor := s.runtimeVersion()
	return major < 2 || major == 2 && minor < 3
}

// Pull is what a node of spec pulls for image, as the kubelet sees it: the
// digest of the manifest its runtime unpacks, or the runtime's gRPC error
// text. For the runtime conformance suite, which checks the twin against
// real runtimes.
func Pull(ctx context.Context, spec NodeSpec, image string) (manifest string, err error) {
	t := &Twin{}
	p, err := t.pull(ctx, spec.withDefaults(), image, keychain{})
	if err != nil {
		return "", err
	}
	d, err := p.image.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// containerdChoose follows containerd's CRI pull, then its image.Config:
//
//   - the local pull path fetches, at each index level, the first entry
//     platforms.Only(node) prefers (LimitManifests, limit 1) and fails at
//     once when none matches;
//   - the transfer service (>= 2.1) fetches every entry platforms.Ordered(node)
//     accepts (FilterPlatforms) and never fails for lack of a match;
//   - then image.Config walks the index with the client's default matcher,
//     platforms.Only(node), taking the first preferred entry (limit 1): no
//     entry is "no match for platform in manifest <index>"; an entry the
//     transfer did not fetch (arm/v7 on arm64, 386 on amd64) is missing content.
func containerdChoose(idx v1.ImageIndex, top v1.Hash, norm string, node specs.Platform, transfer, ignoreOSFeatures bool) (v1.Image, error) {
	var only, ordered platforms.MatchComparer = platforms.Only(node), platforms.Ordered(node)
	if ignoreOSFeatures {
		only, ordered = noOSFeatures{only}, noOSFeatures{ordered}
	}
	failed := func(err error) error {
		return &pullError{msg: grpcUnknown(fmt.Sprintf("failed to pull and unpack image %q: %v", norm, err))}
	}
	noMatch := &pullError{msg: grpcNotFound(fmt.Sprintf("get image config descriptor: no match for platform in manifest %s: not found", top))}
	var walked [][]v1.Descriptor // every entry of each index level
	var chosen []v1.Descriptor   // the entry followed at each level
	var img v1.Image
	for img == nil {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, failed(err)
		}
		cands := preferred(im.Manifests, only, true)
		if len(cands) == 0 {
			if !transfer {
				return nil, &pullError{msg: grpcNotFound(fmt.Sprintf("failed to pull and unpack image %q: no match for platform in manifest: not found", norm))}
			}
			return nil, noMatch
		}
		d := cands[0]
		if transfer && d.Platform != nil && !ordered.Match(toSpec(*d.Platform)) {
			return nil, &pullError{msg: grpcNotFound(fmt.Sprintf("get image config descriptor: content digest %s: not found", d.Digest))}
		}
		walked, chosen = append(walked, im.Manifests), append(chosen, d)
		if d.MediaType.IsIndex() {
			if idx, err = idx.ImageIndex(d.Digest); err != nil {
				return nil, failed(err)
			}
			continue
		}
		if img, err = idx.Image(d.Digest); err != nil {
			return nil, failed(err)
		}
		if d.Platform == nil {
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, failed(err)
			}
			p := specs.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
			if !only.Match(p) {
				return nil, noMatch
			}
		}
	}
	// The CRI then records the image with its size: the same walk, the
	// same sort, but over every entry (images.LimitManifests without
	// FilterPlatforms). An entry it puts ahead of the one pulled was never
	// fetched.
	for i, all := range walked {
		sorted := preferred(all, only, false)
		if len(sorted) > 0 && sorted[0].Digest != chosen[i].Digest {
			id, err := img.ConfigName()
			if err != nil {
				return nil, failed(err)
			}
			return nil, &pullError{msg: grpcNotFound(fmt.Sprintf("failed to update image store %q: get image info from containerd: get image compressed resource size: content digest %s: not found", id, sorted[0].Digest))}
		}
	}
	return img, nil
}

// preferred orders entries by m's preference, stable, entries without a
// platform last. With filter it keeps only the image manifests and indexes
// m matches (and those without a platform, to be checked against their
// config).
func preferred(ds []v1.Descriptor, m platforms.MatchComparer, filter bool) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range ds {
		if !filter {
			out = append(out, d)
			continue
		}
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		if d.Platform == nil || m.Match(toSpec(*d.Platform)) {
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Platform == nil {
			return false
		}
		if out[j].Platform == nil {
			return true
		}
		return m.Less(toSpec(*out[i].Platform), toSpec(*out[j].Platform))
	})
	return out
}

// noOSFeatures is a matcher as containerd/platforms had it before
// v1.0.0-rc.5: os.features are not looked at.
type noOSFeatures struct{ platforms.MatchComparer }

func (n noOSFeatures) Match(p specs.Platform) bool {
	p.OSFeatures = nil
	return n.MatchComparer.Match(p)
}

func (n noOSFeatures) Less(a, b specs.Platform) bool {
	a.OSFeatures, b.OSFeatures = nil, nil
	return n.MatchComparer.Less(a, b)
}

func toSpec(p v1.Platform) specs.Platform {
	return specs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
}

// keychain serves the credentials of a pod's imagePullSecrets
// (kubernetes.io/dockerconfigjson) by registry host.
type keychain map[string]authn.AuthConfig

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if c, ok := k[r.RegistryStr()]; ok {
		return authn.FromConfig(c), nil
	}
	return authn.Anonymous, nil
}

func parseDockerConfig(data []byte, into keychain) {
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if json.Unmarshal(data, &cfg) != nil {
		return
	}
	for host, c := range cfg.Auths {
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		if _, ok := into[host]; !ok {
			into[host] = c
		}
	}
}

// familiar is distribution's FamiliarString: docker.io/library/ and docker.io/ dropped.
func familiar(ref string) string {
	if r, ok := strings.CutPrefix(ref, "docker.io/library/"); ok {
		return r
	}
	return strings.TrimPrefix(ref, "docker.io/")
}
