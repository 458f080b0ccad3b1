package remedy

import "testing"

func TestPointerToken(t *testing.T) {
	for in, want := range map[string]string{"archfit.io/pinned": "archfit.io~1pinned", "a~b/c": "a~0b~1c", "~1": "~01", "plain": "plain"} {
		if got := PointerToken(in); got != want {
			t.Errorf("PointerToken(%q) = %q, want %q", in, got, want)
		}
	}
	if got := pointer("metadata", "annotations", "a/b"); got != "/metadata/annotations/a~1b" {
		t.Errorf("pointer = %q", got)
	}
}
