package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/archfit/archfit/internal/image"
	"github.com/archfit/archfit/internal/platform"
)

// TestPullsTableVariants: a report that lists @pre-rc.5 pulls (an entry with
// os.features) shows them in their own columns, titled by containerd version.
func TestPullsTableVariants(t *testing.T) {
	yes := true
	fails := "get image config descriptor: no match for platform in manifest sha256:1: not found"
	r := &image.Report{Kind: image.KindIndex, Pulls: []image.Pull{
		{Node: "linux/amd64", Runtime: platform.ContainerdLocal, Error: "failed to pull and unpack image \"x\": no match for platform in manifest: not found"},
		{Node: "linux/amd64", Runtime: platform.ContainerdTransfer, Error: fails},
		{Node: "linux/amd64", Runtime: platform.CRIO, Digest: "sha256:2", Platform: "linux/amd64", Runs: &yes},
		{Node: "linux/amd64", Runtime: platform.ContainerdLocalPreRC5, Digest: "sha256:2", Platform: "linux/amd64", Runs: &yes},
		{Node: "linux/amd64", Runtime: platform.ContainerdTransferPreRC5, Digest: "sha256:2", Platform: "linux/amd64", Runs: &yes},
	}}
	var b bytes.Buffer
	if err := pullsTable(&b, r); err != nil {
		t.Fatal(err)
	}
	pullNotes(&b, r)
	out := b.String()
	for _, want := range []string{"containerd>=2.3 local", "containerd 2.1-2.2", "containerd<=2.0", "linux/amd64, containerd>=2.3: " + fails} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, ", : ") {
		t.Errorf("untitled runtime in:\n%s", out)
	}
}
