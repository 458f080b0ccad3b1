package image

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	regclient "github.com/archfit/archfit/internal/registry"
	"github.com/archfit/archfit/internal/registry/hostiletest"
	"github.com/archfit/archfit/internal/testimage"
)

type fixedKeychain struct{ a authn.Authenticator }

func (k fixedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// TestCredentialsArePerRequest (issue 10, item 5): an image read with one
// namespace's pull secret is not reported as readable to a request with
// other credentials, neither by tag (cached within the tag TTL) nor by
// digest (cached content): that request reads the reference itself first.
// The registry is the real in-process one behind Basic auth.
func TestCredentialsArePerRequest(t *testing.T) {
	env := hostiletest.New(t, hostiletest.WithBasicAuth("shop", "shop-secret"))
	tag := env.Host(hostiletest.Registry) + "/private/app:1"
	r, _ := name.ParseReference(tag)
	img := testimage.App("linux/amd64", "amd64")
	env.Handle(hostiletest.Registry, env.Push)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	env.Handle(hostiletest.Registry, nil)
	d, _ := img.Digest()
	byDigest := r.Context().Digest(d.String()).String()

	c := regclient.New(regclient.WithInsecureRegistries(env.Host(hostiletest.Registry)))
	res, err := NewResolver(WithRegistryClient(c))
	if err != nil {
		t.Fatal(err)
	}
	shop := &Credentials{ID: "shop/regcred", Keychain: fixedKeychain{authn.FromConfig(authn.AuthConfig{Username: "shop", Password: "shop-secret"})}}
	other := &Credentials{ID: "other/", Keychain: authn.NewMultiKeychain()}
	ctx := context.Background()
	if rep := res.Inspect(ctx, Request{Ref: tag, Credentials: shop}); rep.Error != nil {
		t.Fatalf("with the shop secret: %+v", rep.Error)
	}
	secrets := len(env.Leaks(hostiletest.Registry))
	for _, ref := range []string{tag, byDigest} {
		rep := res.Inspect(ctx, Request{Ref: ref, Credentials: other})
		if rep.Error == nil || rep.Error.Reason != "auth" {
			t.Errorf("%s without the secret: got %+v, want an auth failure", ref, rep.Error)
		}
	}
	if n := len(env.Leaks(hostiletest.Registry)); n != secrets {
		t.Errorf("the shop secret was sent for another namespace's request (%d times)", n-secrets)
	}
	// The same credentials again: the answer is shared.
	if rep := res.Inspect(ctx, Request{Ref: byDigest, Credentials: shop}); rep.Error != nil {
		t.Errorf("by digest with the shop secret: %+v", rep.Error)
	}
}
