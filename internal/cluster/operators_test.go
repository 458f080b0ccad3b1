package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// describeCustom is what a test checks of a workload read from a custom
// resource: its identity, containers (role, name, image) and whether its
// patch location is known.
func describeCustom(w *Workload) string {
	var cs []string
	for _, c := range w.Containers {
		cs = append(cs, fmt.Sprintf("%s %s=%s", c.Role, c.Name, c.Image))
	}
	loc := "known"
	if w.PatchUnknown {
		loc = "unknown"
	}
	return fmt.Sprintf("%s %s [%s] patch=%s notes=%d", w.APIVersion, w.Ref, strings.Join(cs, ", "), loc, len(w.Notes))
}

// TestOperatorManifests reads real manifests of operators' custom
// resources: none that runs containers may vanish, and a ServiceMonitor
// (which runs nothing) is not a workload.
func TestOperatorManifests(t *testing.T) {
	s, errs, err := LoadFiles(context.Background(), []string{"testdata/operators"}, nil, Recursive(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("document errors: %v", errs)
	}
	var got []string
	for _, w := range s.Workloads {
		got = append(got, describeCustom(w))
	}
	want := []string{
		// cluster-example names no image: the operator's default runs, which
		// archfit cannot name (a note says so); the Secrets are not workloads.
		"postgresql.cnpg.io/v1 Cluster/cluster-example [] patch=known notes=1",
		"postgresql.cnpg.io/v1 Cluster/cluster-example-full [main postgres=ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie] patch=known notes=0",
		"argoproj.io/v1alpha1 Rollout/rollout-bluegreen [main rollouts-demo=argoproj/rollouts-demo:blue] patch=known notes=0",
		// generateName stands for the name; unnamed template containers take
		// their template's name; containers are in the order of the kind's
		// paths (container, then script...).
		"argoproj.io/v1alpha1 Workflow/scripts-bash- [main print-message/container=alpine:3.23, main gen-random-int/script=alpine:3.23] patch=known notes=0",
		"argoproj.io/v1alpha1 Workflow/sequence- [main a=argoproj/argosay:v2, main b=argoproj/argosay:v2, main c=argoproj/argosay:v2] patch=known notes=0",
		"monitoring.coreos.com/v1 monitoring/Alertmanager/main [main alertmanager=quay.io/prometheus/alertmanager:v0.33.1] patch=known notes=0",
		"monitoring.coreos.com/v1 monitoring/Prometheus/k8s [main prometheus=quay.io/prometheus/prometheus:v3.13.2] patch=known notes=0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	prom := s.Workload(Ref{Kind: "Prometheus", Namespace: "monitoring", Name: "k8s"})
	if prom == nil {
		t.Fatal("no Prometheus")
	}
	// The audit judges the constraints the operator gives the pods.
	if diff := cmp.Diff(map[string]string{"kubernetes.io/os": "linux"}, prom.Template.Spec.NodeSelector); diff != "" {
		t.Errorf("Prometheus nodeSelector (-want +got):\n%s", diff)
	}
	if prom.Operator == nil || prom.Operator.Operator != "Prometheus Operator" || prom.Original == nil {
		t.Errorf("Prometheus: operator %v, original %v", prom.Operator, prom.Original != nil)
	}
}

func TestOperatorImages(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string
		notes      []string
	}{{
		name: "prometheus from version",
		yaml: `{"apiVersion":"monitoring.coreos.com/v1","kind":"Prometheus","metadata":{"name":"p"},"spec":{"version":"v2.55.0",
			"containers":[{"name":"prometheus","args":["--log.level=debug"]},{"name":"oauth-proxy","image":"quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"}],
			"thanos":{"image":"quay.io/thanos/thanos:v0.36.1"}}}`,
		want:  "monitoring.coreos.com/v1 Prometheus/p [main oauth-proxy=quay.io/oauth2-proxy/oauth2-proxy:v7.6.0, main prometheus=quay.io/prometheus/prometheus:v2.55.0, main thanos-sidecar=quay.io/thanos/thanos:v0.36.1] patch=known notes=1",
		notes: []string{"container prometheus: image quay.io/prometheus/prometheus:v2.55.0 derived from the operator's default base image (--prometheus-default-base-image) and spec.version, as the operator builds it (an operator started with another --prometheus-default-base-image runs another image)"},
	}, {
		name:  "prometheus with baseImage and sha",
		yaml:  `{"apiVersion":"monitoring.coreos.com/v1","kind":"Prometheus","metadata":{"name":"p"},"spec":{"baseImage":"mirror.example/prom","sha":"abc","version":"v2"}}`,
		want:  "monitoring.coreos.com/v1 Prometheus/p [main prometheus=mirror.example/prom@sha256:abc] patch=known notes=1",
		notes: []string{"container prometheus: image mirror.example/prom@sha256:abc derived from spec.baseImage and spec.sha"},
	}, {
		name:  "alertmanager with nothing: the operator's default, not named",
		yaml:  `{"apiVersion":"monitoring.coreos.com/v1","kind":"Alertmanager","metadata":{"name":"a"},"spec":{}}`,
		want:  "monitoring.coreos.com/v1 Alertmanager/a [] patch=known notes=1",
		notes: []string{"container alertmanager: spec.image is unset, so the operator runs the operator's default Alertmanager version (it depends on the operator's release): archfit cannot name that image, and does not audit it"},
	}, {
		name: "elasticsearch from version, with two nodeSets",
		yaml: `{"apiVersion":"elasticsearch.k8s.elastic.co/v1","kind":"Elasticsearch","metadata":{"name":"es"},"spec":{"version":"8.15.0","nodeSets":[
			{"name":"a","podTemplate":{"spec":{"initContainers":[{"name":"sysctl","image":"busybox:1.36"}],"nodeSelector":{"kubernetes.io/arch":"amd64"}}}},
			{"name":"b","podTemplate":{"spec":{"containers":[{"name":"elasticsearch","resources":{}}]}}}]}}`,
		want:  "elasticsearch.k8s.elastic.co/v1 Elasticsearch/es [init sysctl=busybox:1.36, main elasticsearch=docker.elastic.co/elasticsearch/elasticsearch:8.15.0] patch=known notes=1",
		notes: []string{"container elasticsearch: image docker.elastic.co/elasticsearch/elasticsearch:8.15.0 derived from spec.version under ECK's default registry docker.elastic.co (an operator started with --container-registry runs another image)"},
	}, {
		name: "knative service",
		yaml: `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","namespace":"web"},"spec":{"template":{"spec":{"containers":[{"image":"ghcr.io/knative/helloworld-go:latest"}]}}}}`,
		want: "serving.knative.dev/v1 web/Service/hello [main spec.template.spec.containers.0=ghcr.io/knative/helloworld-go:latest] patch=known notes=0",
	}, {
		name: "tekton task steps and sidecars",
		yaml: `{"apiVersion":"tekton.dev/v1","kind":"Task","metadata":{"name":"build"},"spec":{"steps":[{"name":"compile","image":"golang:1.23"}],"sidecars":[{"name":"docker","image":"docker:dind"}]}}`,
		want: "tekton.dev/v1 Task/build [main compile=golang:1.23, main docker=docker:dind] patch=known notes=0",
	}, {
		name: "keda scaled job",
		yaml: `{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledJob","metadata":{"name":"q"},"spec":{"jobTargetRef":{"template":{"spec":{"containers":[{"name":"worker","image":"example.com/worker:1"}]}}}}}`,
		want: "keda.sh/v1alpha1 ScaledJob/q [main worker=example.com/worker:1] patch=known notes=0",
	}, {
		name:  "strimzi kafka with no image: the operator's",
		yaml:  `{"apiVersion":"kafka.strimzi.io/v1beta2","kind":"Kafka","metadata":{"name":"k"},"spec":{"kafka":{"version":"3.8.0"},"entityOperator":{"topicOperator":{}}}}`,
		want:  "kafka.strimzi.io/v1beta2 Kafka/k [] patch=known notes=1",
		notes: []string{"container kafka: spec.kafka.image is unset, so the operator runs the operator's Kafka image for spec.kafka.version (its STRIMZI_KAFKA_IMAGES): archfit cannot name that image, and does not audit it"},
	}, {
		name: "unknown kind: containers found by walking the spec",
		yaml: `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"runner":{"name":"main","image":"example.com/run:1"},
			"pool":{"containers":[{"image":"example.com/side:1"}]},"initContainers":[{"name":"init","image":"example.com/init:1"}],
			"logo":{"image":"https://example.com/logo.png"},"note":"image: not a container"}}`,
		want:  "example.com/v1 Widget/w [init init=example.com/init:1, main spec.pool.containers.0=example.com/side:1, main main=example.com/run:1] patch=unknown notes=1",
		notes: []string{"example.com/v1 Widget is not a kind archfit knows: its images were found by walking its spec, and where its operator reads node affinity is unknown"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, errs, err := LoadFiles(context.Background(), []string{"-"}, strings.NewReader(tt.yaml))
			if err != nil || len(errs) > 0 {
				t.Fatal(err, errs)
			}
			if len(s.Workloads) != 1 {
				t.Fatalf("%d workloads, want 1", len(s.Workloads))
			}
			w := s.Workloads[0]
			if got := describeCustom(w); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if tt.notes != nil {
				if diff := cmp.Diff(tt.notes, w.Notes); diff != "" {
					t.Errorf("notes (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestCustomResourceWithoutImages: custom resources that run nothing (a
// Certificate, a ServiceMonitor) are not workloads.
func TestCustomResourceWithoutImages(t *testing.T) {
	in := `{"apiVersion":"cert-manager.io/v1","kind":"Certificate","metadata":{"name":"c"},"spec":{"secretName":"c","issuerRef":{"name":"i"}}}`
	s, _, err := LoadFiles(context.Background(), []string{"-"}, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Workloads) != 0 {
		t.Errorf("workloads %v, want none", s.Workloads)
	}
}

// TestGenericWalkBounds: a hostile object nests deeply and lists many
// containers; the walk stops at its bounds.
func TestGenericWalkBounds(t *testing.T) {
	deep := map[string]any{"name": "deep", "image": "example.com/deep:1"}
	for i := 0; i < 10_000; i++ {
		deep = map[string]any{"x": deep}
	}
	var many []any
	for i := 0; i < 5000; i++ {
		many = append(many, map[string]any{"name": fmt.Sprint("c", i), "image": "example.com/c:1"})
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Hostile", "metadata": map[string]any{"name": "h"},
		"spec": map[string]any{"deep": deep, "containers": many},
	}}
	o, err := newCustom(u)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(o.template.Spec.Containers); n != maxCRContainers {
		t.Errorf("%d containers, want the cap %d", n, maxCRContainers)
	}
	for _, c := range o.template.Spec.Containers {
		if c.Name == "deep" {
			t.Error("a container below the depth bound was found")
		}
	}
}

func TestExpand(t *testing.T) {
	obj := map[string]any{"spec": map[string]any{"nodeSets": []any{
		map[string]any{"podTemplate": map[string]any{"spec": map[string]any{}}},
		map[string]any{"name": "no template"},
		map[string]any{"podTemplate": map[string]any{"spec": map[string]any{}}},
	}}}
	got := Expand(obj, "spec.nodeSets[].podTemplate.spec")
	want := [][]string{{"spec", "nodeSets", "0", "podTemplate", "spec"}, {"spec", "nodeSets", "2", "podTemplate", "spec"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok := Get(obj, []string{"spec", "nodeSets", "1", "name"}); !ok || v != "no template" {
		t.Errorf("Get = %v, %v", v, ok)
	}
	if _, ok := Get(obj, []string{"spec", "nodeSets", "9"}); ok {
		t.Error("Get past the end found something")
	}
}

// TestPodSpecAtTemplatePath: where an operator reads a plain pod spec, the
// template path follows Workload.TemplatePath's convention (so a plan's
// toleration lands there); where it does not, the workload says so.
func TestPodSpecAtTemplatePath(t *testing.T) {
	tests := []struct {
		obj  string
		path string
		ok   bool
	}{
		{`{"apiVersion":"monitoring.coreos.com/v1","kind":"Prometheus","metadata":{"name":"p"},"spec":{"image":"a:1"}}`, "", true},
		{`{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"s"},"spec":{"template":{"spec":{"containers":[{"image":"a:1"}]}}}}`, "spec.template", true},
		{`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledJob","metadata":{"name":"j"},"spec":{"jobTargetRef":{"template":{"spec":{"containers":[{"name":"w","image":"a:1"}]}}}}}`, "spec.jobTargetRef.template", true},
		{`{"apiVersion":"postgresql.cnpg.io/v1","kind":"Cluster","metadata":{"name":"c"},"spec":{"imageName":"a:1"}}`, "", false},
		{`{"apiVersion":"argoproj.io/v1alpha1","kind":"CronWorkflow","metadata":{"name":"c"},"spec":{"workflowSpec":{"templates":[{"name":"m","container":{"image":"a:1"}}]}}}`, "", false},
		{`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"containers":[{"image":"a:1"}]}}`, "", false},
	}
	for _, tt := range tests {
		s, _, err := LoadFiles(context.Background(), []string{"-"}, strings.NewReader(tt.obj))
		if err != nil || len(s.Workloads) != 1 {
			t.Fatalf("%s: %v, %d workloads", tt.obj, err, len(s.Workloads))
		}
		w := s.Workloads[0]
		if w.TemplatePath != tt.path || w.PodSpecAtTemplatePath() != tt.ok {
			t.Errorf("%s: template path %q, pod spec there %v; want %q, %v", w.Ref, w.TemplatePath, w.PodSpecAtTemplatePath(), tt.path, tt.ok)
		}
	}
}
