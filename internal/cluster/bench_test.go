package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// syntheticDump writes `kubectl get deployments,replicasets,pods -A -o
// FORMAT` for workloads Deployments of podsEach crash-looping pods.
func syntheticDump(b *testing.B, format string, workloads, podsEach int) string {
	b.Helper()
	list := map[string]any{"apiVersion": "v1", "kind": "List"}
	var items []any
	for w := range workloads {
		ns, name := fmt.Sprintf("ns-%d", w%20), fmt.Sprintf("app-%d", w)
		labels := map[string]string{"app": name}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1.28"}},
			Containers:     []corev1.Container{{Name: "app", Image: fmt.Sprintf("registry.example.com/app-%d:1", w%300)}},
		}}
		d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID("d-" + name)},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(podsEach)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
		rs := &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-5c8f7d9b4", UID: k8stypes.UID("rs-" + name),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: d.UID, Controller: ptr.To(true)}}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}
		items = append(items, d, rs)
		for p := range podsEach {
			pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-5c8f7d9b4-%05d", name, p), Labels: labels,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
				Spec: tmpl.Spec,
				Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 5,
					State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
					LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 255, Reason: "Error"}}}}}}
			items = append(items, pod)
		}
	}
	list["items"] = items
	var data []byte
	var err error
	if format == "json" {
		data, err = json.MarshalIndent(list, "", "    ")
	} else {
		data, err = yaml.Marshal(list)
	}
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "dump."+format)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkLoadFiles reads a 5,000-pod, 1,000-workload dump.
func BenchmarkLoadFiles(b *testing.B) {
	for _, format := range []string{"yaml", "json"} {
		b.Run(format, func(b *testing.B) {
			p := syntheticDump(b, format, 1000, 5)
			fi, _ := os.Stat(p)
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for b.Loop() {
				s, errs, err := LoadFiles(context.Background(), []string{p}, nil)
				if err != nil || len(errs) > 0 || len(s.Pods) != 5000 || len(s.Workloads) != 1000 {
					b.Fatalf("%v %v %d pods %d workloads", err, errs, len(s.Pods), len(s.Workloads))
				}
			}
		})
	}
}
