package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// OperatorKind says where an operator's custom resource names the images of
// the pods the operator makes from it, and where the operator reads the node
// affinity, node selector and tolerations it gives those pods. It is the one
// place both the audit (which images) and the patch (where to write) read.
//
// Paths are dot-separated field names from the object's root; a field
// followed by "[]" stands for every element of that list.
type OperatorKind struct {
	Group, Kind string
	// Resource is what kubectl calls it (plural.group).
	Resource string
	// Operator names the project, Checked the API version and CRD release
	// the paths were checked against.
	Operator, Checked string
	// Containers are paths to container objects (name, image, ...), each
	// path ending either at one container or at a list of them.
	Containers []ContainerPath
	// Images are containers whose image is a plain field of the resource,
	// or computed by the operator from other fields.
	Images []OperatorImage
	// Scheduling is where the operator reads the scheduling fields; nil when
	// the kind has no such place (Tekton Task: the TaskRun has it).
	Scheduling *Scheduling
	// Note is said with every remedy of the kind (a caveat of the
	// operator, or where the patch belongs instead).
	Note string
}

// ContainerPath is a path to container objects and the role they have
// (an operator's "sidecars" run beside the main containers: RoleMain).
type ContainerPath struct {
	Path string
	Role Role
}

// OperatorImage is a container whose image is one field of the resource,
// or derived by the operator from other fields when that field is unset.
type OperatorImage struct {
	Container string
	Path      string
	// Derive computes the image the operator runs when Path is unset; it
	// returns "" when the operator's own default (which depends on its
	// release or its flags) decides, and says how it got the image.
	Derive func(obj map[string]any) (image, how string)
	// Default says what the operator runs when neither Path nor Derive
	// gives an image ("" when the container is optional).
	Default string
}

// Scheduling holds the paths of the fields the patch writes. Affinity is
// the object that holds nodeAffinity (a corev1.Affinity); "" means the
// operator offers no such field.
type Scheduling struct {
	Affinity, NodeSelector, Tolerations string
}

// promImage derives a Prometheus Operator image the way the operator does
// (pkg/operator BuildImagePath): spec.image, else the base image (spec.baseImage,
// else the operator's default base) with spec.sha, spec.tag or spec.version.
func promImage(defaultBase, flag string) func(map[string]any) (string, string) {
	return func(obj map[string]any) (string, string) {
		base := str(obj, "spec.baseImage")
		from := "spec.baseImage"
		if base == "" {
			base, from = defaultBase, "the operator's default base image (--"+flag+")"
		}
		if strings.Contains(base[strings.LastIndex(base, "/")+1:], ":") || strings.Contains(base, "@") {
			return base, "from " + from
		}
		switch {
		case str(obj, "spec.sha") != "":
			return base + "@sha256:" + str(obj, "spec.sha"), "from " + from + " and spec.sha"
		case str(obj, "spec.tag") != "":
			return base + ":" + str(obj, "spec.tag"), "from " + from + " and spec.tag"
		case str(obj, "spec.version") != "":
			v := str(obj, "spec.version")
			return base + ":" + v, "from " + from + " and spec.version, as the operator builds it (an operator started with another --" + flag + " runs another image)"
		}
		return "", ""
	}
}

// versionImage derives ECK's images: spec.image, else REPO:spec.version
// under the operator's container registry (docker.elastic.co by default).
func versionImage(repo string) func(map[string]any) (string, string) {
	return func(obj map[string]any) (string, string) {
		v := str(obj, "spec.version")
		if v == "" {
			return "", ""
		}
		return repo + ":" + v, "from spec.version under ECK's default registry docker.elastic.co (an operator started with --container-registry runs another image)"
	}
}

var podSpecScheduling = func(at string) *Scheduling {
	return &Scheduling{Affinity: at + ".affinity", NodeSelector: at + ".nodeSelector", Tolerations: at + ".tolerations"}
}

// podTemplateContainers are the container lists of a pod spec at path at.
func podTemplateContainers(at string) []ContainerPath {
	return []ContainerPath{{at + ".initContainers[]", RoleInit}, {at + ".containers[]", RoleMain}}
}

// argoWorkflowContainers are the containers of an Argo Workflows spec at at.
func argoWorkflowContainers(at string) []ContainerPath {
	t := at + ".templates[]"
	return []ContainerPath{
		{t + ".initContainers[]", RoleInit},
		{t + ".container", RoleMain},
		{t + ".script", RoleMain},
		{t + ".containerSet.containers[]", RoleMain},
		{t + ".sidecars[]", RoleMain},
	}
}

const operatorDefaultNote = "the operator adds containers of its own (config reloaders, init containers) whose images its flags decide: archfit does not see them in the resource"

// operatorKinds are the custom resources archfit knows, picked by what
// clusters commonly run. Each entry's paths were checked against the
// operator's CRD or API types at the version in Checked.
var operatorKinds = []OperatorKind{
	// Prometheus Operator: CommonPrometheusFields / AlertmanagerSpec /
	// ThanosRulerSpec in pkg/apis/monitoring (v1, CRDs of v0.8x); images
	// built by pkg/operator BuildImagePath.
	{Group: "monitoring.coreos.com", Kind: "Prometheus", Resource: "prometheuses.monitoring.coreos.com", Operator: "Prometheus Operator", Checked: "monitoring.coreos.com/v1",
		Containers: []ContainerPath{{"spec.initContainers[]", RoleInit}, {"spec.containers[]", RoleMain}},
		Images: []OperatorImage{
			{Container: "prometheus", Path: "spec.image", Derive: promImage("quay.io/prometheus/prometheus", "prometheus-default-base-image"),
				Default: "the operator's default Prometheus version (it depends on the operator's release)"},
			{Container: "thanos-sidecar", Path: "spec.thanos.image"},
		},
		Scheduling: podSpecScheduling("spec"), Note: operatorDefaultNote},
	{Group: "monitoring.coreos.com", Kind: "PrometheusAgent", Resource: "prometheusagents.monitoring.coreos.com", Operator: "Prometheus Operator", Checked: "monitoring.coreos.com/v1alpha1",
		Containers: []ContainerPath{{"spec.initContainers[]", RoleInit}, {"spec.containers[]", RoleMain}},
		Images: []OperatorImage{{Container: "prometheus", Path: "spec.image", Derive: promImage("quay.io/prometheus/prometheus", "prometheus-default-base-image"),
			Default: "the operator's default Prometheus version (it depends on the operator's release)"}},
		Scheduling: podSpecScheduling("spec"), Note: operatorDefaultNote},
	{Group: "monitoring.coreos.com", Kind: "Alertmanager", Resource: "alertmanagers.monitoring.coreos.com", Operator: "Prometheus Operator", Checked: "monitoring.coreos.com/v1",
		Containers: []ContainerPath{{"spec.initContainers[]", RoleInit}, {"spec.containers[]", RoleMain}},
		Images: []OperatorImage{{Container: "alertmanager", Path: "spec.image", Derive: promImage("quay.io/prometheus/alertmanager", "alertmanager-default-base-image"),
			Default: "the operator's default Alertmanager version (it depends on the operator's release)"}},
		Scheduling: podSpecScheduling("spec"), Note: operatorDefaultNote},
	{Group: "monitoring.coreos.com", Kind: "ThanosRuler", Resource: "thanosrulers.monitoring.coreos.com", Operator: "Prometheus Operator", Checked: "monitoring.coreos.com/v1",
		Containers: []ContainerPath{{"spec.initContainers[]", RoleInit}, {"spec.containers[]", RoleMain}},
		Images: []OperatorImage{{Container: "thanos-ruler", Path: "spec.image", Derive: promImage("quay.io/thanos/thanos", "thanos-default-base-image"),
			Default: "the operator's default Thanos version (it depends on the operator's release)"}},
		Scheduling: podSpecScheduling("spec"), Note: operatorDefaultNote},

	// Argo Workflows: WorkflowSpec in pkg/apis/workflow/v1alpha1 (v3.x).
	// Workflow-level affinity/nodeSelector/tolerations apply to every
	// template that sets none of its own.
	{Group: "argoproj.io", Kind: "Workflow", Resource: "workflows.argoproj.io", Operator: "Argo Workflows", Checked: "argoproj.io/v1alpha1 (v3.x)",
		Containers: argoWorkflowContainers("spec"), Scheduling: podSpecScheduling("spec"),
		Note: "a template's own affinity, nodeSelector or tolerations replace the workflow's for that template"},
	{Group: "argoproj.io", Kind: "WorkflowTemplate", Resource: "workflowtemplates.argoproj.io", Operator: "Argo Workflows", Checked: "argoproj.io/v1alpha1 (v3.x)",
		Containers: argoWorkflowContainers("spec"), Scheduling: podSpecScheduling("spec"),
		Note: "a template's own affinity, nodeSelector or tolerations replace the workflow's for that template"},
	{Group: "argoproj.io", Kind: "ClusterWorkflowTemplate", Resource: "clusterworkflowtemplates.argoproj.io", Operator: "Argo Workflows", Checked: "argoproj.io/v1alpha1 (v3.x)",
		Containers: argoWorkflowContainers("spec"), Scheduling: podSpecScheduling("spec"),
		Note: "a template's own affinity, nodeSelector or tolerations replace the workflow's for that template"},
	{Group: "argoproj.io", Kind: "CronWorkflow", Resource: "cronworkflows.argoproj.io", Operator: "Argo Workflows", Checked: "argoproj.io/v1alpha1 (v3.x)",
		Containers: argoWorkflowContainers("spec.workflowSpec"), Scheduling: podSpecScheduling("spec.workflowSpec"),
		Note: "a template's own affinity, nodeSelector or tolerations replace the workflow's for that template"},

	// Knative Serving: serving.knative.dev/v1 Service and Configuration
	// (spec.template is a RevisionTemplateSpec).
	{Group: "serving.knative.dev", Kind: "Service", Resource: "services.serving.knative.dev", Operator: "Knative Serving", Checked: "serving.knative.dev/v1",
		Containers: podTemplateContainers("spec.template.spec"), Scheduling: podSpecScheduling("spec.template.spec"),
		Note: knativeNote},
	{Group: "serving.knative.dev", Kind: "Configuration", Resource: "configurations.serving.knative.dev", Operator: "Knative Serving", Checked: "serving.knative.dev/v1",
		Containers: podTemplateContainers("spec.template.spec"), Scheduling: podSpecScheduling("spec.template.spec"),
		Note: knativeNote},

	// KEDA: ScaledJob spec.jobTargetRef is a batch/v1 JobSpec (keda.sh/v1alpha1, v2.x).
	{Group: "keda.sh", Kind: "ScaledJob", Resource: "scaledjobs.keda.sh", Operator: "KEDA", Checked: "keda.sh/v1alpha1 (v2.x)",
		Containers: podTemplateContainers("spec.jobTargetRef.template.spec"), Scheduling: podSpecScheduling("spec.jobTargetRef.template.spec")},

	// Tekton Pipelines v1 (tekton.dev/v1): steps and sidecars are
	// containers; the pod template (pod.Template) is on the runs.
	{Group: "tekton.dev", Kind: "Task", Resource: "tasks.tekton.dev", Operator: "Tekton Pipelines", Checked: "tekton.dev/v1",
		Containers: []ContainerPath{{"spec.steps[]", RoleMain}, {"spec.sidecars[]", RoleMain}},
		Note:       "a Task has no pod template: set spec.podTemplate on its TaskRuns, or spec.taskRunTemplate.podTemplate on the PipelineRuns that run it"},
	{Group: "tekton.dev", Kind: "TaskRun", Resource: "taskruns.tekton.dev", Operator: "Tekton Pipelines", Checked: "tekton.dev/v1",
		Containers: []ContainerPath{{"spec.taskSpec.steps[]", RoleMain}, {"spec.taskSpec.sidecars[]", RoleMain}},
		Scheduling: podSpecScheduling("spec.podTemplate"),
		Note:       "a TaskRun that references a Task (spec.taskRef) runs that Task's steps: audit the Task too"},
	{Group: "tekton.dev", Kind: "PipelineRun", Resource: "pipelineruns.tekton.dev", Operator: "Tekton Pipelines", Checked: "tekton.dev/v1",
		Containers: []ContainerPath{{"spec.pipelineSpec.tasks[].taskSpec.steps[]", RoleMain}, {"spec.pipelineSpec.tasks[].taskSpec.sidecars[]", RoleMain}},
		Scheduling: podSpecScheduling("spec.taskRunTemplate.podTemplate"),
		Note:       "spec.taskRunSpecs[].podTemplate, when set for a task, is merged over spec.taskRunTemplate.podTemplate"},

	// CloudNativePG: Cluster (postgresql.cnpg.io/v1, CRD of controller-gen
	// v0.21.0): spec.imageName, spec.affinity is an AffinityConfiguration
	// holding nodeAffinity, nodeSelector and tolerations. Pooler's
	// spec.template is a PodTemplateSpec.
	{Group: "postgresql.cnpg.io", Kind: "Cluster", Resource: "clusters.postgresql.cnpg.io", Operator: "CloudNativePG", Checked: "postgresql.cnpg.io/v1 (CRD of release 1.2x)",
		Images: []OperatorImage{{Container: "postgres", Path: "spec.imageName",
			Default: "the operator's default PostgreSQL image (it depends on the operator's release and its POSTGRES_IMAGE_NAME), or the image catalog in spec.imageCatalogRef"}},
		Scheduling: &Scheduling{Affinity: "spec.affinity", NodeSelector: "spec.affinity.nodeSelector", Tolerations: "spec.affinity.tolerations"},
		Note:       "the operator runs its own binary in every instance pod (the bootstrap init container): its image must run on the same architectures"},
	{Group: "postgresql.cnpg.io", Kind: "Pooler", Resource: "poolers.postgresql.cnpg.io", Operator: "CloudNativePG", Checked: "postgresql.cnpg.io/v1",
		Containers: podTemplateContainers("spec.template.spec"), Scheduling: podSpecScheduling("spec.template.spec"),
		Note: "without spec.template containers, the operator runs its default PgBouncer image"},

	// Strimzi (kafka.strimzi.io/v1beta2): images default to the operator's
	// STRIMZI_*_IMAGES environment; PodTemplate has affinity and
	// tolerations, no nodeSelector.
	{Group: "kafka.strimzi.io", Kind: "Kafka", Resource: "kafkas.kafka.strimzi.io", Operator: "Strimzi", Checked: "kafka.strimzi.io/v1beta2",
		Images: []OperatorImage{
			{Container: "kafka", Path: "spec.kafka.image", Default: "the operator's Kafka image for spec.kafka.version (its STRIMZI_KAFKA_IMAGES)"},
			{Container: "zookeeper", Path: "spec.zookeeper.image"},
			{Container: "topic-operator", Path: "spec.entityOperator.topicOperator.image"},
			{Container: "user-operator", Path: "spec.entityOperator.userOperator.image"},
			{Container: "cruise-control", Path: "spec.cruiseControl.image"},
			{Container: "kafka-exporter", Path: "spec.kafkaExporter.image"},
		},
		Scheduling: &Scheduling{Affinity: "spec.kafka.template.pod.affinity", Tolerations: "spec.kafka.template.pod.tolerations"},
		Note:       "archfit patches the Kafka broker pods (spec.kafka.template.pod); ZooKeeper, the entity operator, Cruise Control and KafkaNodePools each have their own template.pod"},
	{Group: "kafka.strimzi.io", Kind: "KafkaConnect", Resource: "kafkaconnects.kafka.strimzi.io", Operator: "Strimzi", Checked: "kafka.strimzi.io/v1beta2",
		Images:     []OperatorImage{{Container: "connect", Path: "spec.image", Default: "the operator's Kafka Connect image for spec.version (its STRIMZI_KAFKA_CONNECT_IMAGES)"}},
		Scheduling: &Scheduling{Affinity: "spec.template.pod.affinity", Tolerations: "spec.template.pod.tolerations"}},

	// ECK (elastic/cloud-on-k8s): elasticsearch.k8s.elastic.co/v1 and
	// kibana.k8s.elastic.co/v1; podTemplate is a PodTemplateSpec.
	{Group: "elasticsearch.k8s.elastic.co", Kind: "Elasticsearch", Resource: "elasticsearches.elasticsearch.k8s.elastic.co", Operator: "ECK", Checked: "elasticsearch.k8s.elastic.co/v1",
		Containers: podTemplateContainers("spec.nodeSets[].podTemplate.spec"),
		Images: []OperatorImage{{Container: "elasticsearch", Path: "spec.image", Derive: versionImage("docker.elastic.co/elasticsearch/elasticsearch"),
			Default: "nothing: spec.version is required"}},
		Scheduling: podSpecScheduling("spec.nodeSets[].podTemplate.spec")},
	{Group: "kibana.k8s.elastic.co", Kind: "Kibana", Resource: "kibanas.kibana.k8s.elastic.co", Operator: "ECK", Checked: "kibana.k8s.elastic.co/v1",
		Containers: podTemplateContainers("spec.podTemplate.spec"),
		Images: []OperatorImage{{Container: "kibana", Path: "spec.image", Derive: versionImage("docker.elastic.co/kibana/kibana"),
			Default: "nothing: spec.version is required"}},
		Scheduling: podSpecScheduling("spec.podTemplate.spec")},
}

const knativeNote = "Knative rejects affinity, nodeSelector and tolerations unless the config-features ConfigMap (namespace knative-serving) enables kubernetes.podspec-affinity, kubernetes.podspec-nodeselector and kubernetes.podspec-tolerations"

var operatorIndex = func() map[schema.GroupKind]*OperatorKind {
	m := map[schema.GroupKind]*OperatorKind{}
	for i := range operatorKinds {
		k := &operatorKinds[i]
		m[schema.GroupKind{Group: k.Group, Kind: k.Kind}] = k
	}
	return m
}()

// LookupOperatorKind returns what archfit knows of a custom resource kind,
// or nil.
func LookupOperatorKind(group, kind string) *OperatorKind {
	return operatorIndex[schema.GroupKind{Group: group, Kind: kind}]
}

// OperatorKinds lists the known kinds, in table order.
func OperatorKinds() []OperatorKind { return operatorKinds }

func str(obj map[string]any, path string) string {
	v, _ := lookup(obj, strings.Split(path, "."))
	s, _ := v.(string)
	return s
}

func lookup(obj map[string]any, fields []string) (any, bool) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[f]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Limits of a walk through a custom resource: a hostile object may nest
// deeply or list millions of entries.
const (
	maxWalkDepth      = 24
	maxWalkNodes      = 100_000
	maxCRContainers   = 256
	maxPathExpansions = 4096
)

// Expand resolves a path with "[]" segments against obj into concrete
// paths (list indexes as decimal fields), for the elements that exist.
// At most maxPathExpansions paths are returned.
func Expand(obj map[string]any, path string) [][]string {
	var out [][]string
	var walk func(cur any, prefix []string, rest []string)
	walk = func(cur any, prefix []string, rest []string) {
		if len(out) >= maxPathExpansions {
			return
		}
		if len(rest) == 0 {
			out = append(out, prefix)
			return
		}
		f, list := strings.CutSuffix(rest[0], "[]")
		m, ok := cur.(map[string]any)
		if !ok {
			return
		}
		next, ok := m[f]
		if !ok {
			return
		}
		p := append(append([]string(nil), prefix...), f)
		if !list {
			walk(next, p, rest[1:])
			return
		}
		items, ok := next.([]any)
		if !ok {
			return
		}
		for i, it := range items {
			walk(it, append(append([]string(nil), p...), strconv.Itoa(i)), rest[1:])
		}
	}
	walk(obj, nil, strings.Split(path, "."))
	return out
}

// Get returns the value at a concrete path (as Expand makes them).
func Get(obj map[string]any, path []string) (any, bool) {
	var cur any = obj
	for _, f := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[f]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(f)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// crContainer is a container found in a custom resource.
type crContainer struct {
	Container
	path string
}

// operatorContainers lists the containers of a known kind: its container
// paths, then its image fields; notes say what was derived or not modelled.
func operatorContainers(k *OperatorKind, obj map[string]any) (out []crContainer, notes []string) {
	seen := map[string]bool{}
	add := func(c crContainer) {
		if len(out) >= maxCRContainers || c.Image == "" {
			return
		}
		key := c.Name + "\x00" + c.Image
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, c)
	}
	for _, cp := range k.Containers {
		for _, p := range Expand(obj, cp.Path) {
			v, _ := Get(obj, p)
			switch t := v.(type) {
			case map[string]any:
				add(containerAt(obj, p, t, cp.Role))
			case []any:
				for i, it := range t {
					if m, ok := it.(map[string]any); ok {
						add(containerAt(obj, append(append([]string(nil), p...), strconv.Itoa(i)), m, cp.Role))
					}
				}
			}
		}
	}
	for _, im := range k.Images {
		img := str(obj, im.Path)
		how := ""
		if img == "" && im.Derive != nil {
			img, how = im.Derive(obj)
		}
		switch {
		case img != "" && how != "":
			notes = append(notes, fmt.Sprintf("container %s: image %s derived %s", im.Container, img, how))
		case img == "" && im.Default != "":
			notes = append(notes, fmt.Sprintf("container %s: %s is unset, so the operator runs %s: archfit cannot name that image, and does not audit it", im.Container, im.Path, im.Default))
		}
		// A container list entry of the same name only overrides fields
		// of the operator's container (Prometheus's spec.containers).
		for i := range out {
			if out[i].Name == im.Container {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		add(crContainer{Container: Container{Name: im.Container, Role: RoleMain, Image: img}, path: im.Path})
	}
	return out, notes
}

// containerAt reads a container object; one without a name (an Argo
// Workflows template's container or script) is named after the nearest
// enclosing object below the root that has one, else after its path.
func containerAt(obj map[string]any, path []string, m map[string]any, role Role) crContainer {
	img, _ := m["image"].(string)
	name, _ := m["name"].(string)
	if name == "" {
		for i := len(path) - 1; i > 0 && name == ""; i-- {
			if parent, ok := Get(obj, path[:i]); ok {
				if pm, ok := parent.(map[string]any); ok {
					if n, _ := pm["name"].(string); n != "" {
						name = n + "/" + strings.Join(path[i:], ".")
					}
				}
			}
		}
	}
	if name == "" {
		name = strings.Join(path, ".")
	}
	return crContainer{Container: Container{Name: name, Role: role, Image: img}, path: strings.Join(path, ".")}
}

// genericContainers walks an unknown object's spec for container-shaped
// objects: a string image beside a string name, or any object with an
// image in a containers/initContainers list. The walk is bounded in depth,
// nodes visited and containers found.
func genericContainers(obj map[string]any) []crContainer {
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		return nil
	}
	var out []crContainer
	visited := 0
	var walk func(v any, path []string, inList string)
	walk = func(v any, path []string, inList string) {
		visited++
		if visited > maxWalkNodes || len(path) > maxWalkDepth || len(out) >= maxCRContainers {
			return
		}
		switch t := v.(type) {
		case map[string]any:
			img, _ := t["image"].(string)
			name, _ := t["name"].(string)
			if img != "" && (name != "" || inList == "containers" || inList == "initContainers") {
				role := RoleMain
				if inList == "initContainers" {
					role = RoleInit
				}
				c := containerAt(obj, path, t, role)
				out = append(out, c)
				return
			}
			for k, child := range t {
				walk(child, append(append([]string(nil), path...), k), "")
			}
		case []any:
			key := ""
			if len(path) > 0 {
				key = path[len(path)-1]
			}
			for i, child := range t {
				walk(child, append(append([]string(nil), path...), strconv.Itoa(i)), key)
			}
		}
	}
	walk(spec, []string{"spec"}, "")
	sortContainers(out)
	return out
}

// sortContainers orders by path, so that map iteration order does not
// show in the output.
func sortContainers(cs []crContainer) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].path < cs[j].path })
}
