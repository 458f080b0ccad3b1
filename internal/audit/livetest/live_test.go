// Package livetest runs `archfit audit` against a real API server (the
// testenv control plane with its node twin and registry).
package livetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
)

var cluster testenv.Shared

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &cluster)) }

func deployment(ns, name string, replicas int32, init, main string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: main}}},
			},
		},
	}
	if init != "" {
		d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: init}}
	}
	return d
}

func TestAuditLive(t *testing.T) {
	env := cluster.Env(t)
	ctx := context.Background()
	api := env.Registry + "/live/api:1"
	worker := env.Registry + "/live/worker:1"
	for ref, img := range map[string]any{api: testimage.MultiArch("linux/amd64", "linux/arm64/v8"), worker: testimage.App("linux/amd64", "amd64")} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		switch v := img.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(r, v)
		case v1.Image:
			err = remote.Write(r, v)
		}
		if err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}
	ns := env.Namespace(ctx, t, "audit")
	ds := []*appsv1.Deployment{deployment(ns, "ready", 0, "", api), deployment(ns, "blocked", 0, worker, api)}
	for i := 0; i < 25; i++ {
		ds = append(ds, deployment(ns, fmt.Sprintf("filler-%02d", i), 0, "", api))
	}
	for _, d := range ds {
		if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	cmd := cli.NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs([]string{"audit", "--kubeconfig", env.Kubeconfig, "-n", ns, "--no-cache", "-o", "json", "--chunk-size", "10"})
	err := cmd.ExecuteContext(ctx)
	if code := cli.ExitCode(err); code != cli.ExitOK && code != cli.ExitFindings {
		t.Fatalf("exit %d: %v\n%s", code, err, errOut.String())
	}
	t.Logf("stderr:\n%s", errOut.String())
	var requests int
	if _, err := fmt.Sscanf(errOut.String(), "read the cluster with %d API request(s)", &requests); err != nil {
		t.Errorf("the API request count is not reported: %v", err)
	}
	// 27 Deployments in pages of 10 take 3 list requests on their own.
	if requests < 3 {
		t.Errorf("%d API requests: the Deployments were not paginated", requests)
	}
	var doc struct {
		Findings []struct {
			Code, Container string
			Workload        struct{ Name string }
		}
		Extra struct {
			Pools     []struct{ ID, Arch string }
			Readiness struct{ Workloads, ReadyWorkloads int }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	archs := map[string]bool{}
	for _, p := range doc.Extra.Pools {
		archs[p.Arch] = true
	}
	if !archs["amd64"] || !archs["arm64"] {
		t.Errorf("pools %+v: want the twin's amd64 and arm64 nodes", doc.Extra.Pools)
	}
	if doc.Extra.Readiness.Workloads != 27 || doc.Extra.Readiness.ReadyWorkloads != 26 {
		t.Errorf("readiness %+v, want 26 of 27", doc.Extra.Readiness)
	}
	found := false
	for _, f := range doc.Findings {
		if f.Code == "single-arch-at-risk" && f.Workload.Name == "blocked" && f.Container == "init" {
			found = true
		}
	}
	if !found {
		t.Errorf("no single-arch-at-risk for the init container: %+v", doc.Findings)
	}
}
