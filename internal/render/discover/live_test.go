package discover

import (
	"context"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/testenv"
)

// The real kube-apiserver of internal/testenv; without its binaries
// (hack/testenv.sh build) and under -short these tests skip.
var testCluster testenv.Shared

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.Main(m, &testCluster))
}

func TestCapabilitiesLive(t *testing.T) {
	env := testCluster.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	caps, err := Capabilities(ctx, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if caps.KubeVersion != testenv.KubeVersion {
		t.Errorf("version %s, want the server's %s", caps.KubeVersion, testenv.KubeVersion)
	}
	if caps.KubeMajor != "1" || caps.KubeMinor == "" || !strings.HasPrefix(testenv.KubeVersion, "v1."+caps.KubeMinor+".") {
		t.Errorf("major %q minor %q for %s", caps.KubeMajor, caps.KubeMinor, testenv.KubeVersion)
	}
	for _, want := range []string{"v1", "apps/v1", "apps/v1/Deployment", "batch/v1/CronJob", "v1/Pod", "autoscaling/v2"} {
		if !slices.Contains(caps.APIVersions, want) {
			t.Errorf("%s not served, by discovery", want)
		}
	}
	// Subresources are not listed: apps/v1 serves Scale only as
	// deployments/scale and the like.
	if slices.Contains(caps.APIVersions, "apps/v1/Scale") {
		t.Error("subresource kind apps/v1/Scale listed")
	}
	if !strings.Contains(caps.Source, env.Config.Host) {
		t.Errorf("source %q does not name %s", caps.Source, env.Config.Host)
	}

	// What a chart sees: the server's version, and the kinds it serves
	// (not the ServiceMonitor it does not).
	c, err := render.RenderChart(ctx, "../testdata/chart/hooks", nil, nil, "", "", render.WithCapabilities(caps))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`kubeVersion: "` + testenv.KubeVersion + `"`, `hasAutoscalingV2: "true"`, `hasServiceMonitor: "false"`} {
		if !strings.Contains(string(c.Manifests), want) {
			t.Errorf("render does not say %s", want)
		}
	}
}

// A server that does not answer: the discovery ends with ctx.
func TestCapabilitiesUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	// 192.0.2.0/24 is TEST-NET-1: never routed.
	_, err := Capabilities(ctx, &rest.Config{Host: "https://192.0.2.1:6443"})
	if err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
	if !strings.Contains(err.Error(), "https://192.0.2.1:6443") {
		t.Errorf("error %v does not name the server", err)
	}
}
