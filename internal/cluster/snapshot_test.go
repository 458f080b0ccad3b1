package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/archfit/archfit/internal/platform"
)

func TestNewNode(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		info   corev1.NodeSystemInfo
		want   string // platform from=... pool=label:value
	}{
		{"stable labels win", map[string]string{"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"},
			corev1.NodeSystemInfo{Architecture: "amd64"}, "linux/arm64/v8 from=kubernetes.io/arch pool=:"},
		{"beta labels", map[string]string{"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux"},
			corev1.NodeSystemInfo{}, "linux/amd64 from=beta.kubernetes.io/arch pool=:"},
		{"node info last", nil, corev1.NodeSystemInfo{Architecture: "arm64", OperatingSystem: "linux"}, "linux/arm64/v8 from=status.nodeInfo.architecture pool=:"},
		{"nothing", nil, corev1.NodeSystemInfo{}, " from= pool=:"},
		{"karpenter before instance type", map[string]string{"node.kubernetes.io/instance-type": "m7g.large", "karpenter.sh/nodepool": "arm"},
			corev1.NodeSystemInfo{}, " from= pool=karpenter.sh/nodepool:arm"},
		{"gke", map[string]string{"cloud.google.com/gke-nodepool": "t2a-pool", "node.kubernetes.io/instance-type": "t2a-standard-4"},
			corev1.NodeSystemInfo{}, " from= pool=cloud.google.com/gke-nodepool:t2a-pool"},
		{"aks old label", map[string]string{"agentpool": "armpool"}, corev1.NodeSystemInfo{}, " from= pool=agentpool:armpool"},
		{"aks new label first", map[string]string{"agentpool": "a", "kubernetes.azure.com/agentpool": "b"}, corev1.NodeSystemInfo{}, " from= pool=kubernetes.azure.com/agentpool:b"},
		{"instance type only", map[string]string{"node.kubernetes.io/instance-type": "m6i.large"}, corev1.NodeSystemInfo{}, " from= pool=node.kubernetes.io/instance-type:m6i.large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: tt.labels}, Status: corev1.NodeStatus{NodeInfo: tt.info}})
			got := fmt.Sprintf("%s from=%s pool=%s:%s", platform.String(&n.Platform), n.PlatformFrom, n.PoolLabel, n.Pool)
			if tt.want[0] == ' ' {
				got = fmt.Sprintf(" from=%s pool=%s:%s", n.PlatformFrom, n.PoolLabel, n.Pool)
				if n.Platform.Architecture != "" {
					got = "unexpected platform " + platform.String(&n.Platform)
				}
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPools(t *testing.T) {
	node := func(name, arch, pool, runtime string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", "karpenter.sh/nodepool": pool}},
			Spec:       corev1.NodeSpec{Taints: taints},
			Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: runtime}},
		}
	}
	armTaint := corev1.Taint{Key: "kubernetes.io/arch", Value: "arm64", Effect: corev1.TaintEffectNoSchedule}
	other := corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}
	s := build(&input{nodes: []*corev1.Node{
		node("a1", "arm64", "mixed", "containerd://2.1.4", armTaint, other),
		node("a2", "arm64", "mixed", "containerd://1.7.27", armTaint),
		node("x1", "amd64", "mixed", "containerd://2.1.4"),
		node("x2", "amd64", "base", "cri-o://1.31.0"),
	}})
	var got []string
	for _, p := range s.Pools() {
		var nodes, rts []string
		for _, n := range p.Nodes {
			nodes = append(nodes, n.Name)
		}
		for _, r := range p.Runtimes {
			rts = append(rts, r.Name+"/"+r.Version)
		}
		got = append(got, fmt.Sprintf("%s nodes=%v runtimes=%v taints=%d", p, nodes, rts, len(p.Taints)))
	}
	want := []string{
		"base (linux/amd64) nodes=[x2] runtimes=[cri-o/1.31.0] taints=0",
		"mixed (linux/amd64) nodes=[x1] runtimes=[containerd/2.1.4] taints=0",
		"mixed (linux/arm64/v8) nodes=[a1 a2] runtimes=[containerd/2.1.4 containerd/1.7.27] taints=1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	if s.Node("a2") == nil || s.Node("zz") != nil {
		t.Error("Node lookup")
	}
}

func TestFailing(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "i"}, {Name: "side", Image: "s", RestartPolicy: &always}},
		Containers:     []corev1.Container{{Name: "app", Image: "a"}},
	}
	waiting := func(reason string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	tests := []struct {
		name   string
		status corev1.PodStatus
		want   string // "" when not failing, else the container or "pod"
	}{
		{"running", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}, ""},
		{"creating is normal", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: waiting("ContainerCreating")}}}, ""},
		{"crash loop", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: waiting("CrashLoopBackOff")}}}, "app"},
		{"init pull", corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", State: waiting("ImagePullBackOff")}}}, "init"},
		{"sidecar create error", corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: "side", State: waiting("CreateContainerError")}}}, "side"},
		{"terminated non-zero (Job, restartPolicy Never)", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 255}}}}}, "app"},
		{"completed", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}}}, ""},
		{"between two crashes", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 3,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}}}, "app"},
		{"unschedulable", corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}}, "pod"},
		{"failed pod (evicted)", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}, "pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Pod{Pod: &corev1.Pod{Spec: spec, Status: tt.status}}
			ok, c := p.Failing()
			got := ""
			if ok {
				got = c
				if c == "" {
					got = "pod"
				}
			}
			if got != tt.want {
				t.Errorf("Failing() = %v %q, want %q", ok, c, tt.want)
			}
		})
	}
}

func TestPodContainers(t *testing.T) {
	s, _, err := LoadFiles(context.Background(), []string{"testdata/dump"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pod *Pod
	for _, p := range s.FailingPods() {
		if p.Name == "api-7d9f8c6b5-x2x4q" {
			pod = p
		}
	}
	if pod == nil {
		t.Fatal("api pod is not failing")
	}
	if s.WorkloadFor(pod).Ref != (Ref{Kind: KindDeployment, Namespace: "shop", Name: "api"}) {
		t.Errorf("workload %v", s.WorkloadFor(pod).Ref)
	}
	var got []string
	for _, c := range pod.Containers() {
		line := fmt.Sprintf("%s %s restarts=%d", c.Role, c.Name, c.RestartCount)
		if c.Waiting != nil {
			line += " waiting=" + c.Waiting.Reason
		}
		if c.Terminated != nil {
			line += fmt.Sprintf(" terminated=%s/%d", c.Terminated.Reason, c.Terminated.ExitCode)
		}
		if c.LastTerminated != nil {
			line += fmt.Sprintf(" last=%s/%d", c.LastTerminated.Reason, c.LastTerminated.ExitCode)
		}
		got = append(got, line)
	}
	want := []string{
		"init wait-db restarts=0 terminated=Completed/0",
		"sidecar log-shipper restarts=0",
		"main api restarts=7 waiting=CrashLoopBackOff last=Error/255",
		"main istio-proxy restarts=0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	var reasons []string
	for _, e := range pod.ContainerEvents("api") {
		reasons = append(reasons, e.Reason)
	}
	if diff := cmp.Diff([]string{"Pulled", "BackOff"}, reasons); diff != "" {
		t.Errorf("events of container api (-want +got):\n%s", diff)
	}
	if l := pod.PreviousLog("api"); l == nil || l.Text != "exec /app/api: exec format error\n" {
		t.Errorf("previous log %+v", l)
	}
	if _, ok := pod.Container("nope"); ok {
		t.Error("Container(nope) found")
	}
	// What a live load would read for these pods.
	var need []string
	for _, r := range logsNeeded(s.Pods) {
		need = append(need, fmt.Sprintf("%s/%s previous=%v", r.pod.Name, r.container, r.previous))
	}
	if diff := cmp.Diff([]string{"migrate-1/migrate previous=false", "api-7d9f8c6b5-x2x4q/api previous=true"}, need); diff != "" {
		t.Errorf("logs needed (-want +got):\n%s", diff)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		err  error
	}{
		{"deployment/api", Target{Kind: KindDeployment, Name: "api"}, nil},
		{"deploy/api", Target{Kind: KindDeployment, Name: "api"}, nil},
		{"Deployments/api", Target{Kind: KindDeployment, Name: "api"}, nil},
		{"deployment.apps/api", Target{Kind: KindDeployment, Name: "api"}, nil},
		{"sts/db", Target{Kind: KindStatefulSet, Name: "db"}, nil},
		{"ds/agent", Target{Kind: KindDaemonSet, Name: "agent"}, nil},
		{"cj/report", Target{Kind: KindCronJob, Name: "report"}, nil},
		{"job/report-29147520", Target{Kind: KindJob, Name: "report-29147520"}, nil},
		{"rs/api-7d9f8c6b5", Target{Kind: KindReplicaSet, Name: "api-7d9f8c6b5"}, nil},
		{"po/api-7d9f8c6b5-x2x4q", Target{Kind: KindPod, Name: "api-7d9f8c6b5-x2x4q"}, nil},
		{"rollout/checkout", Target{Kind: KindRollout, Name: "checkout"}, nil},
		{"prometheus/k8s", Target{Kind: "Prometheus", Group: "monitoring.coreos.com", Name: "k8s"}, nil},
		{"alertmanagers.monitoring.coreos.com/main", Target{Kind: "Alertmanager", Group: "monitoring.coreos.com", Name: "main"}, nil},
		{"ksvc/hello", Target{Kind: "Service", Group: "serving.knative.dev", Name: "hello"}, nil},
		{"widgets.example.com/w", Target{Kind: "widgets", Group: "example.com", Loose: true, Name: "w"}, nil},
		{"api", Target{}, ErrBadTarget},
		{"svc/api", Target{}, ErrBadTarget},
		{"deployment/", Target{}, ErrBadTarget},
		{"deployment/a/b", Target{}, ErrBadTarget},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	s, _, err := LoadFiles(context.Background(), []string{"testdata/dump"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ns     string
		target string
		want   []string // workloads, then pods
		err    error
	}{
		{"", "", []string{"batch/CronJob/report", "batch/Pod/migrate-1", "shop/Deployment/api", "shop/StatefulSet/db", "migrate-1", "report-29147520-7kq2p", "api-7d9f8c6b5-x2x4q", "db-0"}, nil},
		{"shop", "", []string{"shop/Deployment/api", "shop/StatefulSet/db", "api-7d9f8c6b5-x2x4q", "db-0"}, nil},
		{"shop", "deploy/api", []string{"shop/Deployment/api", "api-7d9f8c6b5-x2x4q"}, nil},
		{"shop", "rs/api-7d9f8c6b5", []string{"shop/Deployment/api", "api-7d9f8c6b5-x2x4q"}, nil},
		{"", "job/report-29147520", []string{"batch/CronJob/report", "report-29147520-7kq2p"}, nil},
		{"batch", "pod/migrate-1", []string{"batch/Pod/migrate-1", "migrate-1"}, nil},
		{"shop", "pod/db-0", []string{"shop/StatefulSet/db", "db-0"}, nil},
		{"batch", "deploy/api", nil, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.ns+" "+tt.target, func(t *testing.T) {
			var target *Target
			if tt.target != "" {
				tg, err := ParseTarget(tt.target)
				if err != nil {
					t.Fatal(err)
				}
				target = &tg
			}
			got, err := s.Select(tt.ns, target)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			var names []string
			for _, w := range got.Workloads {
				names = append(names, w.Ref.String())
			}
			for _, p := range got.Pods {
				names = append(names, p.Name)
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if target != nil && target.Kind == KindPod && (len(got.Workloads) != 1 || len(got.Workloads[0].Pods) != 1) {
				t.Errorf("a pod target's workload lists %d pods, want 1", len(got.Workloads[0].Pods))
			}
			if len(got.Nodes) != len(s.Nodes) {
				t.Errorf("nodes narrowed to %d", len(got.Nodes))
			}
		})
	}
}
