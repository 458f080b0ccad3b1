package registry

import (
	_ "crypto/sha256" // registers the algorithms go-digest verifies
	_ "crypto/sha512"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Default size limits of a manifest and of a blob read whole (a config);
// an OCI layout source reads with the same.
const (
	DefaultMaxManifest = 4 << 20
	DefaultMaxBlob     = 16 << 20
)

// ErrUnsupportedDigest is returned for a digest that is malformed or uses an
// algorithm the OCI image spec does not register (sha256, sha512).
var ErrUnsupportedDigest = errors.New("unsupported digest")

// CheckDigest accepts well-formed sha256 and sha512 digests only: content
// is addressed (and URLs built) only by digests that can be verified.
func CheckDigest(d string) error {
	dg := digest.Digest(d)
	if err := dg.Validate(); err != nil {
		return fmt.Errorf("%w %q: %v", ErrUnsupportedDigest, d, err)
	}
	if a := dg.Algorithm(); a != digest.SHA256 && a != digest.SHA512 {
		return fmt.Errorf("%w %q: algorithm %s is not sha256 or sha512", ErrUnsupportedDigest, d, a)
	}
	return nil
}

// VerifyDigest checks that b is the content d names, whatever its (allowed)
// algorithm.
func VerifyDigest(d string, b []byte) error {
	if err := CheckDigest(d); err != nil {
		return err
	}
	if got := digest.Digest(d).Algorithm().FromBytes(b); got.String() != d {
		return fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, got, d)
	}
	return nil
}
