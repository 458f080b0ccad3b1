package cluster

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLogsNeededOncePerCrashShape: the pods of one workload whose container
// ran the same image on nodes of one architecture and ended with the same
// exit code get one log read between them; any difference (architecture,
// exit code, image, no workload, unknown node) gets its own read.
func TestLogsNeededOncePerCrashShape(t *testing.T) {
	arm := &Node{Name: "arm-1", Platform: specs.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}
	arm2 := &Node{Name: "arm-2", Platform: specs.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}
	amd := &Node{Name: "amd-1", Platform: specs.Platform{OS: "linux", Architecture: "amd64"}}
	api := &Workload{Ref: Ref{Kind: KindDeployment, Namespace: "shop", Name: "api"}}
	web := &Workload{Ref: Ref{Kind: KindDeployment, Namespace: "shop", Name: "web"}}
	pod := func(name string, w *Workload, n *Node, imageID string, exit int32) *Pod {
		return &Pod{Workload: w, Node: n, Pod: &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
				Name: "app", ImageID: imageID, RestartCount: 3,
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: "Error"}},
			}}},
		}}
	}
	// Caught between a crash and the back-off: Terminated now, and a
	// previous instance that crashed. Only the previous log is read (what
	// diagnose reads first), in the group of its shape.
	between := pod("api-8", api, arm, "sha256:a", 255)
	between.Status.ContainerStatuses[0].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 255, Reason: "Error"}
	// A Job's pod that was never restarted: the current log.
	job := pod("job-1", web, arm, "sha256:a", 0)
	job.Status.ContainerStatuses[0].RestartCount = 0
	job.Status.ContainerStatuses[0].LastTerminationState.Terminated = nil
	job.Status.ContainerStatuses[0].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}
	// Restarted after a clean exit, crashed now: the current log.
	clean := pod("web-2", web, amd, "sha256:a", 0)
	clean.Status.ContainerStatuses[0].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
	pods := []*Pod{
		pod("api-1", api, arm, "sha256:a", 255),
		pod("api-2", api, arm2, "sha256:a", 255), // same shape, other node of the arch
		pod("api-3", api, arm, "sha256:a", 255),
		pod("api-4", api, amd, "sha256:a", 255), // other architecture
		pod("api-5", api, arm, "sha256:a", 1),   // other exit code
		pod("api-6", api, arm, "sha256:b", 255), // other image (a rollout in flight)
		pod("web-1", web, arm, "sha256:a", 255), // other workload
		pod("bare-1", nil, arm, "sha256:a", 255),
		pod("bare-2", nil, arm, "sha256:a", 255), // no workload: read on its own
		pod("api-7", api, nil, "sha256:a", 255),  // node unknown: read on its own
		between, job, clean,
	}
	var got []string
	for _, r := range logsNeeded(pods) {
		line := fmt.Sprintf("%s/%s previous=%v", r.pod.Name, r.container, r.previous)
		for _, s := range r.siblings {
			line += " +" + s.Name
		}
		got = append(got, line)
	}
	want := []string{
		"api-1/app previous=true +api-2 +api-3 +api-8",
		"api-4/app previous=true",
		"api-5/app previous=true",
		"api-6/app previous=true",
		"web-1/app previous=true",
		"bare-1/app previous=true",
		"bare-2/app previous=true",
		"api-7/app previous=true",
		"job-1/app previous=false",
		"web-2/app previous=false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log reads (-want +got):\n%s", diff)
	}
}
