package remedy

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func readObject(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return u
}

func opsJSON(t *testing.T, ops []Operation) string {
	t.Helper()
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const armReq = `{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}}`

// TestPatchOperatorKinds: the patch of an operator's custom resource goes
// where the operator reads the scheduling fields.
func TestPatchOperatorKinds(t *testing.T) {
	kubePrometheus := func(f string) string {
		b, err := os.ReadFile("../cluster/testdata/operators/kube-prometheus/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	armTaint := corev1.Taint{Key: "arch", Value: "arm64", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name     string
		obj      string
		opts     []Option
		ops      string
		merge    string
		podSpec  string
		noteLike string
	}{{
		name:    "kube-prometheus Prometheus",
		obj:     kubePrometheus("prometheus-prometheus.yaml"),
		ops:     `[{"op":"add","path":"/spec/affinity","value":` + armReq + `}]`,
		merge:   `{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}}}}`,
		podSpec: "/spec",
	}, {
		name:    "kube-prometheus Alertmanager, tainted arm64 pool",
		obj:     kubePrometheus("alertmanager-alertmanager.yaml"),
		opts:    []Option{WithTaints("arm64", armTaint)},
		ops:     `[{"op":"add","path":"/spec/affinity","value":` + armReq + `},{"op":"add","path":"/spec/tolerations","value":[{"key":"arch","operator":"Equal","value":"arm64","effect":"NoSchedule"}]}]`,
		merge:   `{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}},"tolerations":[{"effect":"NoSchedule","key":"arch","operator":"Equal","value":"arm64"}]}}`,
		podSpec: "/spec",
	}, {
		name: "CloudNativePG: spec.affinity is an AffinityConfiguration",
		obj: `{"apiVersion":"postgresql.cnpg.io/v1","kind":"Cluster","metadata":{"name":"pg"},"spec":{"imageName":"ghcr.io/cloudnative-pg/postgresql:17",
			"affinity":{"enablePodAntiAffinity":true,"topologyKey":"topology.kubernetes.io/zone","nodeSelector":{"disk":"ssd"}}}}`,
		opts:    []Option{WithTaints("arm64", armTaint)},
		ops:     `[{"op":"test","path":"/spec/affinity","value":{"enablePodAntiAffinity":true,"nodeSelector":{"disk":"ssd"},"topologyKey":"topology.kubernetes.io/zone"}},{"op":"add","path":"/spec/affinity/nodeAffinity","value":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}},{"op":"add","path":"/spec/affinity/tolerations","value":[{"key":"arch","operator":"Equal","value":"arm64","effect":"NoSchedule"}]}]`,
		merge:   `{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}},"tolerations":[{"effect":"NoSchedule","key":"arch","operator":"Equal","value":"arm64"}]}}}`,
		podSpec: "/spec",
	}, {
		name: "CloudNativePG: a nodeSelector pinning arm64 is enough",
		obj:  `{"apiVersion":"postgresql.cnpg.io/v1","kind":"Cluster","metadata":{"name":"pg"},"spec":{"affinity":{"nodeSelector":{"kubernetes.io/arch":"arm64"}}}}`,
		ops:  `[]`, merge: `{}`, podSpec: "/spec",
	}, {
		name:     "Strimzi Kafka without template: the parents are created",
		obj:      `{"apiVersion":"kafka.strimzi.io/v1beta2","kind":"Kafka","metadata":{"name":"k"},"spec":{"kafka":{"version":"3.8.0"}}}`,
		opts:     []Option{WithTaints("arm64", armTaint)},
		ops:      `[{"op":"add","path":"/spec/kafka/template","value":{}},{"op":"add","path":"/spec/kafka/template/pod","value":{}},{"op":"add","path":"/spec/kafka/template/pod/affinity","value":` + armReq + `},{"op":"add","path":"/spec/kafka/template/pod/tolerations","value":[{"key":"arch","operator":"Equal","value":"arm64","effect":"NoSchedule"}]}]`,
		merge:    `{"spec":{"kafka":{"template":{"pod":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}},"tolerations":[{"effect":"NoSchedule","key":"arch","operator":"Equal","value":"arm64"}]}}}}}`,
		podSpec:  "/spec/kafka/template/pod",
		noteLike: "ZooKeeper",
	}, {
		name: "ECK Elasticsearch: every nodeSet, the merge patch carries the list whole",
		obj: `{"apiVersion":"elasticsearch.k8s.elastic.co/v1","kind":"Elasticsearch","metadata":{"name":"es"},"spec":{"version":"8.15.0","nodeSets":[
			{"name":"hot","count":1,"podTemplate":{"spec":{"nodeSelector":{"tier":"hot"}}}},{"name":"cold","count":1}]}}`,
		ops:     `[{"op":"add","path":"/spec/nodeSets/0/podTemplate/spec/affinity","value":` + armReq + `},{"op":"add","path":"/spec/nodeSets/1/podTemplate","value":{}},{"op":"add","path":"/spec/nodeSets/1/podTemplate/spec","value":{}},{"op":"add","path":"/spec/nodeSets/1/podTemplate/spec/affinity","value":` + armReq + `}]`,
		merge:   `{"spec":{"nodeSets":[{"count":1,"name":"hot","podTemplate":{"spec":{"affinity":` + armReq + `,"nodeSelector":{"tier":"hot"}}}},{"count":1,"name":"cold","podTemplate":{"spec":{"affinity":` + armReq + `}}}]}}`,
		podSpec: "/spec/nodeSets/0/podTemplate/spec",
	}, {
		name:     "Knative Service: the feature flags are said",
		obj:      `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello"},"spec":{"template":{"spec":{"containers":[{"image":"ghcr.io/knative/helloworld-go"}]}}}}`,
		ops:      `[{"op":"add","path":"/spec/template/spec/affinity","value":` + armReq + `}]`,
		merge:    `{"spec":{"template":{"spec":{"affinity":` + armReq + `}}}}`,
		podSpec:  "/spec/template/spec",
		noteLike: "kubernetes.podspec-affinity",
	}, {
		name:    "Argo CronWorkflow",
		obj:     `{"apiVersion":"argoproj.io/v1alpha1","kind":"CronWorkflow","metadata":{"name":"nightly"},"spec":{"schedule":"0 1 * * *","workflowSpec":{"entrypoint":"m","templates":[{"name":"m","container":{"image":"alpine:3.23"}}]}}}`,
		ops:     `[{"op":"add","path":"/spec/workflowSpec/affinity","value":` + armReq + `}]`,
		merge:   `{"spec":{"workflowSpec":{"affinity":` + armReq + `}}}`,
		podSpec: "/spec/workflowSpec",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := readObject(t, tt.obj)
			res, err := Patch(obj, []string{"arm64"}, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.ops, opsJSON(t, res.Ops)); diff != "" {
				t.Errorf("json patch (-want +got):\n%s", diff)
			}
			m, err := json.Marshal(res.MergePatch())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.merge, string(m)); diff != "" {
				t.Errorf("merge patch (-want +got):\n%s", diff)
			}
			if res.PodSpecPath != tt.podSpec {
				t.Errorf("podSpecPath %s, want %s", res.PodSpecPath, tt.podSpec)
			}
			if res.MergePatchType() != "merge" {
				t.Errorf("merge patch type %s: a custom resource takes no strategic merge patch", res.MergePatchType())
			}
			if tt.noteLike != "" && !strings.Contains(strings.Join(res.Notes, "\n"), tt.noteLike) {
				t.Errorf("notes %q do not mention %q", res.Notes, tt.noteLike)
			}
			// The JSON patch applies to the object as read (the test ops hold).
			if _, err := applyOps(obj, res.Ops); err != nil {
				t.Errorf("the patch does not apply: %v", err)
			}
		})
	}
}

func TestPatchOperatorKindRefused(t *testing.T) {
	tests := []struct {
		name, obj, msg string
	}{{
		name: "unknown kind: the location is unknown, no guess",
		obj:  `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"containers":[{"name":"a","image":"example.com/a:1"}]}}`,
		msg:  "example.com/v1 Widget: unsupported kind: where its operator reads node affinity is unknown to archfit",
	}, {
		name: "Tekton Task: the runs hold the pod template",
		obj:  `{"apiVersion":"tekton.dev/v1","kind":"Task","metadata":{"name":"build"},"spec":{"steps":[{"name":"s","image":"golang:1.23"}]}}`,
		msg:  "tekton.dev/v1 Task: unsupported kind: a Task has no pod template: set spec.podTemplate on its TaskRuns",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Patch(readObject(t, tt.obj), []string{"arm64"})
			if !errors.Is(err, ErrUnsupportedKind) {
				t.Fatalf("err = %v, want ErrUnsupportedKind", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want it to say %q", err, tt.msg)
			}
		})
	}
}
