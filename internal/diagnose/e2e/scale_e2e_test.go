package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testenv/twin"
	"github.com/archfit/archfit/internal/testimage"
)

// TestDiagnoseLiveScale: 500 failing pods of 50 Deployments over 30 images
// on the live cluster. It reports the API and registry request counts and
// the wall time of one diagnose run (numbers for the README). Slow: set
// ARCHFIT_E2E_SCALE=1 to run it.
func TestDiagnoseLiveScale(t *testing.T) {
	if os.Getenv("ARCHFIT_E2E_SCALE") == "" {
		t.Skip("set ARCHFIT_E2E_SCALE=1 to run the 500-pod live test")
	}
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "scale")
	// Room for 500 pods on arm64 nodes.
	for i := 0; i < 3; i++ {
		spec := twin.NodeSpec{Name: fmt.Sprintf("arm64-scale-%d", i), Arch: "arm64", Runtime: []string{"containerd://2.1.4", "containerd://1.7.27", "cri-o://1.32.9"}[i],
			Pods: 200, Labels: map[string]string{"karpenter.sh/nodepool": "scale-arm"}}
		if err := env.AddNode(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	var refs []string
	for i := 0; i < 30; i++ {
		ref := fmt.Sprintf("%s/scale/svc-%02d:1", env.Registry, i)
		refs = append(refs, ref)
		app := func(plat, arch string) v1.Image {
			return testimage.Must(testimage.Spec{Platform: plat, Entrypoint: []string{"/app"},
				Layers: [][]testimage.File{{{Path: "/app", Data: testimage.ELF(arch)}}, {{Path: fmt.Sprintf("/etc/svc-%02d", i), Data: []byte(ref), Mode: 0o644}}}}.Build())
		}
		if i%2 == 0 {
			testenv.Push(t, ref, app("linux/amd64", "amd64"))
		} else {
			amd := app("linux/amd64", "amd64")
			testenv.Push(t, ref, testimage.Index(testimage.For(amd, "linux/amd64"), testimage.Attestation(amd)))
		}
	}
	for w := 0; w < 50; w++ {
		d := testenv.SpreadDeployment(ns, fmt.Sprintf("svc-%02d", w), refs[w%30], 10)
		d.Spec.Template.Spec.TopologySpreadConstraints = nil
		d.Spec.Template.Spec.NodeSelector = map[string]string{"karpenter.sh/nodepool": "scale-arm"}
		if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var last result
	var stderr string
	start := time.Now()
	err := testenv.Poll(ctx, 8*time.Minute, func(ctx context.Context) (bool, error) {
		time.Sleep(5 * time.Second)
		last, stderr = diagnose(ctx, t, env.Kubeconfig, "-n", ns)
		return last.Extra.Stats["failingPods"] >= 500 && len(codesByWorkload(last)) == 50, nil
	})
	if err != nil {
		t.Fatalf("never 500 failing pods: %v; last: %v %s", err, last.Extra.Stats, stderr)
	}
	t.Logf("cluster settled in %s", time.Since(start).Round(time.Second))
	// The measured run.
	last, stderr = diagnose(ctx, t, env.Kubeconfig, "-n", ns)
	t.Logf("stats: %v; %s", last.Extra.Stats, strings.TrimSpace(stderr))
	if n := last.Extra.Stats["registryRequests"]; n > 30*6 {
		t.Errorf("%d registry requests for 30 images", n)
	}
	// One previous log per crash shape (here one per Deployment: one image,
	// one architecture, one exit code), not one per pod: 50 log reads and
	// the lists, where one per pod was 250 of 287 requests.
	if n := last.Extra.Stats["apiRequests"]; n > 150 {
		t.Errorf("%d API requests for 50 workloads of 10 identical failing pods each", n)
	}
}
