// Package e2e runs `archfit diagnose` against a real kube-apiserver,
// scheduler and controller-manager whose node twins produce the failures
// (internal/testenv). The tests skip when the control-plane binaries are
// not built (hack/testenv.sh build).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
)

var cluster testenv.Shared

func TestMain(m *testing.M) {
	flag.Parse() // testenv.Main reads testing.Short before m.Run parses flags
	os.Exit(testenv.Main(m, &cluster))
}

type result struct {
	Findings []struct {
		Code     string `json:"code"`
		Workload struct {
			Kind, Namespace, Name string
		} `json:"workload"`
		Evidence   []string `json:"evidence"`
		Confidence string   `json:"confidence"`
	} `json:"findings"`
	Extra struct {
		Stats map[string]int `json:"stats"`
	} `json:"extra"`
}

func diagnose(ctx context.Context, t *testing.T, kubeconfig string, args ...string) (result, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"diagnose", "--kubeconfig", kubeconfig, "--no-cache", "-o", "json", "--fail-on", "never"}, args...))
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("archfit diagnose: %v\n%s", err, errOut.String())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output: %v\n%s", err, out.String())
	}
	return r, errOut.String()
}

// codesByWorkload maps "Deployment/NAME" to its sorted finding codes.
func codesByWorkload(r result) map[string][]string {
	m := map[string][]string{}
	for _, f := range r.Findings {
		k := f.Workload.Kind + "/" + f.Workload.Name
		m[k] = append(m[k], f.Code)
	}
	for k := range m {
		sort.Strings(m[k])
	}
	return m
}

// TestDiagnoseLiveCluster: the twins on a six-node amd64/arm64 cluster
// (containerd 2.1, containerd 1.7, CRI-O per arch) produce CrashLoopBackOff
// and ImagePullBackOff; archfit diagnose, reading the API server (pods,
// events, previous logs) and the registry, names each root cause.
func TestDiagnoseLiveCluster(t *testing.T) {
	env := cluster.Env(t)
	ctx := t.Context()
	ns := env.Namespace(ctx, t, "diagnose")
	reg := env.Registry

	amd := testimage.App("linux/amd64", "amd64")
	script := func(plat string) v1.Image {
		arch := strings.Split(plat, "/")[1]
		return testimage.Must(testimage.Spec{Platform: plat, Entrypoint: []string{"/run.sh"},
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Layers: [][]testimage.File{{{Path: "/bin", Dir: true}, {Path: "/bin/sh", Data: testimage.ELF(arch)},
				{Path: "/run.sh", Data: []byte("echo no shebang\n")}}}}.Build())
	}
	images := map[string]any{
		"amd-only":   amd,
		"single-att": testimage.Index(testimage.For(amd, "linux/amd64"), testimage.Attestation(amd)),
		"mislabeled": testimage.Index(testimage.For(amd, "linux/amd64"), testimage.For(testimage.App("linux/arm64", "amd64"), "linux/arm64")),
		"script":     testimage.Index(testimage.For(script("linux/amd64"), "linux/amd64"), testimage.For(script("linux/arm64/v8"), "linux/arm64/v8")),
		"multi":      testimage.MultiArch("linux/amd64", "linux/arm64/v8"),
	}
	for app, img := range images {
		testenv.Push(t, fmt.Sprintf("%s/e2e/%s:1", reg, app), img)
	}
	refs := map[string]string{"private": reg + "/private/e2e/secret:1"}
	for app := range images {
		refs[app] = fmt.Sprintf("%s/e2e/%s:1", reg, app)
	}
	testenv.Push(t, refs["private"], testimage.MultiArch("linux/amd64", "linux/arm64/v8"))
	for app, ref := range refs {
		if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, testenv.SpreadDeployment(ns, app, ref, 6), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Pinned to an architecture no node has: Pending, FailedScheduling.
	nowhere := testenv.SpreadDeployment(ns, "nowhere", refs["multi"], 1)
	nowhere.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "s390x"}
	// Healthy on amd64 (preferred), but nothing keeps it off arm64: at risk.
	lucky := testenv.SpreadDeployment(ns, "lucky", refs["amd-only"], 1)
	lucky.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 100, Preference: corev1.NodeSelectorTerm{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}}}}}}}}
	// A private amd64-only image the pods pull with an imagePullSecret:
	// archfit must read the same secret to inspect the image, so the
	// verdict rests on the image too (high confidence), not on the log alone.
	refs["withsecret"] = reg + "/private/e2e/amd-only:1"
	testenv.Push(t, refs["withsecret"], amd)
	cfgJSON, _ := json.Marshal(map[string]any{"auths": map[string]any{reg: map[string]string{
		"username": testenv.RegistryUser, "password": testenv.RegistryPassword}}})
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "regcred"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfgJSON},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	withSecret := testenv.SpreadDeployment(ns, "withsecret", refs["withsecret"], 6)
	withSecret.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	for _, d := range []*appsv1.Deployment{nowhere, lucky, withSecret} {
		if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	want := map[string][]string{
		"Deployment/amd-only":   {"wrong-arch-binary"},
		"Deployment/single-att": {"missing-platform"},
		"Deployment/mislabeled": {"mislabeled-platform"},
		"Deployment/script":     {"not-an-executable"},
		"Deployment/private":    {"pull-failure-not-arch"},
		"Deployment/nowhere":    {"arch-constraint-conflict"},
		"Deployment/lucky":      {"single-arch-at-risk"},
		"Deployment/withsecret": {"wrong-arch-binary"},
	}
	var got map[string][]string
	var last result
	var stderr string
	err := testenv.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		last, stderr = diagnose(ctx, t, env.Kubeconfig, "-n", ns, "--insecure-registry", reg) // credentials over plain HTTP
		got = codesByWorkload(last)
		return cmp.Diff(want, got) == "", nil
	})
	if err != nil {
		t.Fatalf("diagnose never settled (-want +got):\n%s\nstderr: %s", cmp.Diff(want, got), stderr)
	}
	for _, f := range last.Findings {
		if len(f.Evidence) == 0 {
			t.Errorf("%s %s: no evidence", f.Workload.Name, f.Code)
		}
		if f.Workload.Name == "withsecret" && f.Confidence != "high" {
			t.Errorf("withsecret: confidence %q: the image was not read with the pods' pull secret\n%s", f.Confidence, stderr)
		}
	}
	t.Logf("stats: %v; %s", last.Extra.Stats, strings.TrimSpace(stderr))
	if last.Extra.Stats["apiRequests"] == 0 {
		t.Error("no API requests counted")
	}

	// A target narrows to one workload.
	r, _ := diagnose(ctx, t, env.Kubeconfig, "-n", ns, "deployment/mislabeled")
	if diff := cmp.Diff(map[string][]string{"Deployment/mislabeled": {"mislabeled-platform"}}, codesByWorkload(r)); diff != "" {
		t.Errorf("deployment/mislabeled (-want +got):\n%s", diff)
	}
}
