// Package helmlive tests archfit patch on a live workload that Helm
// manages: archfit reads the release's Secret from a real kube-apiserver,
// rebuilds the chart and prints the values override.
package helmlive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/archfit/archfit/internal/cli"
	"github.com/archfit/archfit/internal/render"
	"github.com/archfit/archfit/internal/testenv"
	"github.com/archfit/archfit/internal/testimage"
)

// cluster is a real kube-apiserver, scheduler and controller-manager with
// node twins. Without the binaries (hack/testenv.sh build) the tests skip.
var cluster testenv.Shared

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.Main(m, &cluster))
}

const (
	chartDir = "../testdata/charts/ingress-nginx"
	rel      = "edge"
	ns       = "ingress"
)

func archfit(ctx context.Context, t *testing.T, env *testenv.Env, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append(args, "--kubeconfig", env.Kubeconfig, "--no-cache"))
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(&errOut, "error: %v\n", err)
	}
	t.Logf("archfit %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), cli.ExitCode(err), out.String(), errOut.String())
	return out.String(), errOut.String(), cli.ExitCode(err)
}

// install does what helm install does for the controller Deployment: it
// creates the rendered Deployment with Helm's annotations and stores the
// release record as Helm v3 does (Secret sh.helm.release.v1.NAME.v1,
// base64 of gzipped JSON).
func install(ctx context.Context, t *testing.T, env *testenv.Env, config map[string]any) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := render.HelmChart(ctx, chartDir, nil, nil, rel, ns, render.WithValues(config))
	if err != nil {
		t.Fatal(err)
	}
	var dep *appsv1.Deployment
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err == nil && d.Kind == "Deployment" && d.Name == rel+"-ingress-nginx-controller" {
			dep = &d
		}
	}
	if dep == nil {
		t.Fatal("the render has no controller Deployment")
	}
	dep.Annotations = map[string]string{"meta.helm.sh/release-name": rel, "meta.helm.sh/release-namespace": ns}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := release.Release{Name: rel, Namespace: ns, Version: 1, Chart: chrt, Config: config,
		Info: &release.Info{Status: release.StatusDeployed}, Manifest: string(out)}
	js, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(js); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1." + rel + ".v1", Namespace: ns,
			Labels: map[string]string{"owner": "helm", "name": rel, "version": "1", "status": "deployed"}},
		Type: render.ReleaseSecretType,
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))},
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPatchLiveHelmRelease(t *testing.T) {
	env := cluster.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The controller's image runs on amd64 only.
	ref := env.Registry + "/ingress-nginx/controller:v1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, testimage.App("linux/amd64", "amd64")); err != nil {
		t.Fatal(err)
	}
	config := map[string]any{"controller": map[string]any{
		"image":             map[string]any{"registry": env.Registry, "image": "ingress-nginx/controller", "tag": "v1", "digest": "", "digestChroot": ""},
		"admissionWebhooks": map[string]any{"enabled": false},
		// What the user set: kept in the override, with the arch added.
		"affinity": map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{
			map[string]any{"weight": 50, "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname",
				"labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/component": "controller"}}}}}}},
	}}
	install(ctx, t, env, config)

	out, errOut, code := archfit(ctx, t, env, "patch", "deployment/"+rel+"-ingress-nginx-controller", "-n", ns)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "helm upgrade edge REPO/ingress-nginx --version 4.15.1 --reuse-values -f archfit-values.yaml -n ingress") {
		t.Errorf("no helm upgrade command in\n%s", out)
	}
	var vals struct {
		Controller struct {
			Affinity corev1.Affinity `json:"affinity"`
		} `json:"controller"`
	}
	if err := yaml.Unmarshal([]byte(out), &vals); err != nil {
		t.Fatal(err)
	}
	a := vals.Controller.Affinity
	if a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		t.Fatalf("no required node affinity in the override:\n%s", out)
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || terms[0].MatchExpressions[0].Key != "kubernetes.io/arch" ||
		strings.Join(terms[0].MatchExpressions[0].Values, ",") != "amd64" {
		t.Errorf("terms = %+v, want kubernetes.io/arch In [amd64]", terms)
	}
	if a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("the release's pod anti-affinity is not kept: %+v", a.PodAntiAffinity)
	}

	// --apply refuses, and says where the change belongs: the values.
	out, errOut, code = archfit(ctx, t, env, "patch", "deployment/"+rel+"-ingress-nginx-controller", "-n", ns, "--apply")
	if code != cli.ExitFailure || !strings.Contains(errOut, "managed by Helm") || !strings.Contains(out, "--reuse-values -f archfit-values.yaml") || !strings.Contains(out, "controller:\n  affinity:\n") {
		t.Errorf("--apply: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got, err := env.Client.AppsV1().Deployments(ns).Get(ctx, rel+"-ingress-nginx-controller", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if got.Spec.Template.Spec.Affinity.NodeAffinity != nil {
		t.Errorf("--apply patched a Helm-managed Deployment: %+v", got.Spec.Template.Spec.Affinity)
	}

	// Someone who may read the workloads but not the Secrets gets the
	// object patch, and is told why.
	sa := "reader"
	if _, err := env.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "archfit-reader"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "nodes", "events", "serviceaccounts", "namespaces"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"get", "list"}},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "archfit-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "archfit-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitAllowed(ctx, t, env.Client, "system:serviceaccount:"+ns+":"+sa, ns, "apps", "deployments", "list")
	out, errOut, code = archfit(ctx, t, env, "patch", "deployment/"+rel+"-ingress-nginx-controller", "-n", ns, "--as", "system:serviceaccount:"+ns+":"+sa)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "no permission to list the Secrets of namespace ingress") {
		t.Errorf("stderr does not say the release could not be read:\n%s", errOut)
	}
	if !strings.Contains(out, `"path": "/spec/template/spec/affinity/nodeAffinity"`) {
		t.Errorf("no object patch on stdout:\n%s", out)
	}
}
