package cli

import (
	"strings"
	"testing"
)

// --no-annotation-waivers: the example's annotation waiver no longer
// counts, the config file's still does, and the text says why.
func TestAuditNoAnnotationWaivers(t *testing.T) {
	out, errOut, code := runArchfit(t, "", append([]string{"audit", "-o", "text", "--fail-on", "never", "--no-annotation-waivers"}, exampleArgs...)...)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if strings.Contains(out, "waived: replaced by node-agent v4") || !strings.Contains(out, "1 finding(s) waived") || !strings.Contains(out, "not accepted") {
		t.Errorf("the annotation waiver still counts, or the config's is lost, or nothing says so:\n%s", out)
	}
}
