package twin

import (
	"context"
	"fmt"
	"log"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// NodeSpec describes one fake node: what its kubelet reports and how its
// runtime behaves.
type NodeSpec struct {
	Name string
	// Arch and OS as the kubelet reports them (GOARCH/GOOS): amd64, arm64.
	Arch string
	OS   string // default linux
	// Runtime is status.nodeInfo.containerRuntimeVersion, e.g.
	// "containerd://2.1.4", "containerd://1.7.27", "cri-o://1.32.9".
	Runtime string
	// LocalPull makes containerd >= 2.1 use its local pull path
	// (use_local_image_pull = true) instead of the transfer service.
	LocalPull bool
	// OCIRuntime is runc (default for containerd) or crun (default for CRI-O):
	// it decides how a failed exec reads in the log and its exit code.
	OCIRuntime string
	// X86Level is the x86-64 microarchitecture level of an amd64 node's CPU
	// (default 3; 2 models CPUs without AVX2).
	X86Level int
	// Arm32 lets an arm64 node execute 32-bit arm binaries (AArch32 EL0);
	// Graviton 3 and later cannot, so the default is false.
	Arm32 bool
	// InstanceType is node.kubernetes.io/instance-type.
	InstanceType string
	// Labels are added to the standard ones (pool labels such as
	// eks.amazonaws.com/nodegroup or karpenter.sh/nodepool).
	Labels map[string]string
	Taints []corev1.Taint
	// Pods is the allocatable pod count (default 110).
	Pods int
}

func (s NodeSpec) withDefaults() NodeSpec {
	if s.OS == "" {
		s.OS = "linux"
	}
	if s.Runtime == "" {
		s.Runtime = "containerd://2.1.4"
	}
	if s.OCIRuntime == "" {
		s.OCIRuntime = "runc"
		if s.runtimeName() == "cri-o" {
			s.OCIRuntime = "crun"
		}
	}
	if s.X86Level == 0 {
		s.X86Level = 3
	}
	if s.Pods == 0 {
		s.Pods = 110
	}
	return s
}

func (s NodeSpec) runtimeName() string {
	name, _, _ := strings.Cut(s.Runtime, "://")
	return name
}

// runtimeVersion returns major and minor of the runtime version.
func (s NodeSpec) runtimeVersion() (int, int) {
	_, v, _ := strings.Cut(s.Runtime, "://")
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return major, minor
}

// DefaultPool is a six-node mixed cluster as EKS with Karpenter builds it:
// three amd64 and three arm64 nodes, containerd 2.1 (transfer service),
// containerd 1.7 and CRI-O in each architecture.
func DefaultPool() []NodeSpec {
	ng := func(v string) map[string]string { return map[string]string{"eks.amazonaws.com/nodegroup": v} }
	kp := func(v string) map[string]string { return map[string]string{"karpenter.sh/nodepool": v} }
	return []NodeSpec{
		{Name: "amd64-containerd21", Arch: "amd64", Runtime: "containerd://2.1.4", InstanceType: "m6i.large", Labels: ng("general-amd64")},
		{Name: "amd64-containerd17", Arch: "amd64", Runtime: "containerd://1.7.27", InstanceType: "m6i.large", Labels: ng("general-amd64")},
		{Name: "amd64-crio", Arch: "amd64", Runtime: "cri-o://1.32.9", InstanceType: "c6i.large", Labels: kp("default")},
		{Name: "arm64-containerd21", Arch: "arm64", Runtime: "containerd://2.1.4", InstanceType: "m7g.large", Labels: ng("general-arm64")},
		{Name: "arm64-containerd17", Arch: "arm64", Runtime: "containerd://1.7.27", InstanceType: "m7g.large", Labels: ng("general-arm64")},
		{Name: "arm64-crio", Arch: "arm64", Runtime: "cri-o://1.32.9", InstanceType: "c7g.large", Labels: kp("arm")},
	}
}

const kubeletVersion = "v1.37.2"

func (t *Twin) register(ctx context.Context, n *node) error {
	s := n.spec
	labels := map[string]string{
		"kubernetes.io/arch":               s.Arch,
		"kubernetes.io/os":                 s.OS,
		"beta.kubernetes.io/arch":          s.Arch,
		"beta.kubernetes.io/os":            s.OS,
		"kubernetes.io/hostname":           s.Name,
		"node.kubernetes.io/instance-type": s.InstanceType,
	}
	if s.InstanceType == "" {
		delete(labels, "node.kubernetes.io/instance-type")
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: s.Taints},
	}
	nodes := t.cs.CoreV1().Nodes()
	cur, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, err = nodes.Get(ctx, s.Name, metav1.GetOptions{})
		if err == nil {
			cur.Labels = labels
			cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", s.Name, err)
	}
	if err := t.postStatus(ctx, n); err != nil {
		return fmt.Errorf("writing status of node %s: %w", s.Name, err)
	}
	return t.renewLease(ctx, n, cur)
}

// postStatus writes the node's status, re-reading the node on conflicts
// (the node lifecycle controller edits fresh nodes).
func (t *Twin) postStatus(ctx context.Context, n *node) error {
	nodes := t.cs.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := nodes.Get(ctx, n.spec.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status = t.nodeStatus(n)
		_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (t *Twin) nodeStatus(n *node) corev1.NodeStatus {
	s := n.spec
	now := metav1.Now()
	res := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("2"),
		corev1.ResourceMemory:           resource.MustParse("8Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("80Gi"),
		corev1.ResourcePods:             *resource.NewQuantity(int64(s.Pods), resource.DecimalSI),
	}
	cond := func(typ corev1.NodeConditionType, st corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: st, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: s.Name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.port)}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               s.Name,
			SystemUUID:              s.Name,
			BootID:                  s.Name,
			KernelVersion:           "6.1.0-archfit",
			OSImage:                 "Debian GNU/Linux 12 (bookworm)",
			ContainerRuntimeVersion: s.Runtime,
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         s.OS,
			Architecture:            s.Arch,
		},
	}
}

func (t *Twin) renewLease(ctx context.Context, n *node, owner *corev1.Node) error {
	leases := t.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, n.spec.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.spec.Name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.spec.Name),
				LeaseDurationSeconds: ptr.To[int32](40),
				RenewTime:            &now,
			},
		}
		if owner != nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: owner.Name, UID: owner.UID}}
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	l.Spec.HolderIdentity = ptr.To(n.spec.Name)
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// heartbeat renews every node's lease every 10s (the kubelet's default) and
// re-posts the Ready condition every minute, so the node lifecycle
// controller keeps the nodes Ready and untainted.
func (t *Twin) heartbeat() {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		nodes := make([]*node, 0, len(t.nodes))
		for _, n := range t.nodes {
			nodes = append(nodes, n)
		}
		t.mu.Unlock()
		for _, n := range nodes {
			if err := t.renewLease(t.ctx, n, nil); err != nil && t.ctx.Err() == nil {
				t.logf("renewing lease of %s: %v", n.spec.Name, err)
			}
			if i%6 != 0 {
				continue
			}
			if err := t.postStatus(t.ctx, n); err != nil && t.ctx.Err() == nil {
				t.logf("posting status of %s: %v", n.spec.Name, err)
			}
		}
	}
}

func discardLogger() *log.Logger { return log.New(discard{}, "", 0) }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
