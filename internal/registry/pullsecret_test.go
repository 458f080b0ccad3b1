package registry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// TestPullSecretRunsNoHelper: a pull secret is tenant-written; its
// credsStore and credHelpers must not make archfit run a program, while
// its auths still answer for their own host.
func TestPullSecretRunsNoHelper(t *testing.T) {
	data := []byte(`{"credsStore":"archfit-no-such-helper","credHelpers":{"evil.example":"archfit-no-such-helper"},
		"auths":{"reg.example":{"auth":"dTpw"}}}`)
	kc, err := PullSecretKeychain(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"evil.example/x:1", "other.example/x:1"} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(r.Context())
		if err != nil || a != authn.Anonymous {
			t.Errorf("%s: got %v, %v; want anonymous and no helper run", ref, a, err)
		}
	}
	a, err := kc.Resolve(name.MustParseReference("reg.example/x:1").Context())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.Authorization(); err != nil || c.Username != "u" || c.Password != "p" {
		t.Errorf("reg.example: got %+v, %v; want its auths entry", c, err)
	}
	// The user's own config still honours its helpers: there, running
	// the named helper is asked for (and fails here, since none exists).
	uk, err := DockerConfigKeychain(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uk.Resolve(name.MustParseReference("evil.example/x:1").Context()); err == nil {
		t.Error("the user's config did not try its credential helper")
	}
}
