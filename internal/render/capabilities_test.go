package render

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docs parses a render into its objects.
func docs(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				return objs
			}
			t.Fatalf("render does not parse: %v\n%s", err, out)
		}
		if m != nil {
			objs = append(objs, m)
		}
	}
}

func find(t *testing.T, objs []map[string]any, kind, name string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["kind"] == kind && (name == "" || o["metadata"].(map[string]any)["name"] == name) {
			return o
		}
	}
	t.Fatalf("no %s %s in the render", kind, name)
	return nil
}

// The default Kubernetes version follows Helm's own rule (client-go v0.N
// is Kubernetes v1.N.0) on the client-go of go.mod.
func TestDefaultKubeVersionFollowsClientGo(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/client-go v0\.(\d+)\.`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("no k8s.io/client-go in go.mod")
	}
	if want := "v1." + string(m[1]) + ".0"; DefaultKubeVersion != want {
		t.Errorf("DefaultKubeVersion %s, want %s for client-go v0.%s", DefaultKubeVersion, want, m[1])
	}
}

func TestCapabilitiesReachTemplates(t *testing.T) {
	for _, tc := range []struct {
		name                          string
		caps                          *Capabilities
		version, minor, hpa, smonitor string
	}{
		{name: "default", version: DefaultKubeVersion, minor: "37", hpa: "true", smonitor: "false"},
		{name: "kube version", caps: &Capabilities{KubeVersion: "1.29"}, version: "v1.29", minor: "29", hpa: "true", smonitor: "false"},
		{name: "extra API versions", caps: &Capabilities{ExtraAPIVersions: []string{"monitoring.coreos.com/v1/ServiceMonitor"}},
			version: DefaultKubeVersion, minor: "37", hpa: "true", smonitor: "true"},
		// As helm template --kube-version reads it.
		{name: "kube version with suffix", caps: &Capabilities{KubeVersion: "v1.31.4-eks-2d5f260"}, version: "v1.31.4", minor: "31", hpa: "true", smonitor: "false"},
		// A cluster's version is taken as it is, and its set replaces
		// Helm's default set, as helm install does.
		{name: "cluster", caps: &Capabilities{KubeVersion: "v1.31.4-eks-2d5f260", KubeMajor: "1", KubeMinor: "31+", APIVersions: []string{"v1", "apps/v1"}, Source: "the cluster"},
			version: "v1.31.4-eks-2d5f260", minor: "31+", hpa: "false", smonitor: "false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.caps != nil {
				opts = append(opts, WithCapabilities(*tc.caps))
			}
			c, err := RenderChart(context.Background(), "testdata/chart/hooks", nil, nil, "", "", opts...)
			if err != nil {
				t.Fatal(err)
			}
			data := find(t, docs(t, c.Manifests), "ConfigMap", "capabilities")["data"].(map[string]any)
			want := map[string]any{"kubeVersion": tc.version, "minor": tc.minor, "hasAutoscalingV2": tc.hpa, "hasServiceMonitor": tc.smonitor}
			for k, v := range want {
				if data[k] != v {
					t.Errorf("%s: %v, want %v", k, data[k], v)
				}
			}
			if c.KubeVersion != tc.version {
				t.Errorf("Chart.KubeVersion %s, want %s", c.KubeVersion, tc.version)
			}
		})
	}
}

// ingress-nginx's own templates (testdata/chart/ingress-nginx, see NOTICE)
// pick their API versions from .Capabilities, and its Chart.yaml has a
// kubeVersion.
func TestIngressNginxCapabilities(t *testing.T) {
	set := []string{"defaultBackend.enabled=true", "defaultBackend.autoscaling.enabled=true", "defaultBackend.autoscaling.minReplicas=2"}
	const chart = "testdata/chart/ingress-nginx"
	for _, tc := range []struct {
		name     string
		caps     Capabilities
		hpa, pdb string
	}{
		{name: "default", hpa: "autoscaling/v2", pdb: "policy/v1"},
		{name: "cluster without autoscaling/v2", caps: Capabilities{KubeVersion: "1.22.3", APIVersions: []string{"v1", "autoscaling/v2beta2", "policy/v1"}},
			hpa: "autoscaling/v2beta2", pdb: "policy/v1"},
		{name: "--api-versions added", caps: Capabilities{KubeVersion: "1.22.3", APIVersions: []string{"v1"}, ExtraAPIVersions: []string{"autoscaling/v2"}},
			hpa: "autoscaling/v2", pdb: "policy/v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := HelmChart(context.Background(), chart, nil, set, "", "ingress", WithCapabilities(tc.caps))
			if err != nil {
				t.Fatal(err)
			}
			objs := docs(t, out)
			if got := find(t, objs, "HorizontalPodAutoscaler", "")["apiVersion"]; got != tc.hpa {
				t.Errorf("HPA apiVersion %v, want %s", got, tc.hpa)
			}
			if got := find(t, objs, "PodDisruptionBudget", "")["apiVersion"]; got != tc.pdb {
				t.Errorf("PDB apiVersion %v, want %s", got, tc.pdb)
			}
		})
	}
	// Before 1.21 the chart refuses, as helm does.
	_, err := HelmChart(context.Background(), chart, nil, set, "", "", WithCapabilities(Capabilities{KubeVersion: "v1.20.15"}))
	if err == nil || !strings.Contains(err.Error(), "requires kubeVersion >=1.21.0-0, incompatible with Kubernetes v1.20.15 (--kube-version)") {
		t.Errorf("error %v", err)
	}
	_, err = HelmChart(context.Background(), chart, nil, nil, "", "", WithCapabilities(Capabilities{KubeVersion: "one.twenty"}))
	if err == nil || !strings.Contains(err.Error(), `kube version "one.twenty"`) {
		t.Errorf("error %v", err)
	}
}

func TestAPIVersionsBounded(t *testing.T) {
	many := make([]string, maxAPIVersions+1)
	for i := range many {
		many[i] = "example.com/v1"
	}
	_, err := HelmChart(context.Background(), "testdata/chart/hooks", nil, nil, "", "", WithCapabilities(Capabilities{ExtraAPIVersions: many}))
	if err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Errorf("error %v", err)
	}
}
