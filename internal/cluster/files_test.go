package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/archfit/archfit/internal/platform"
)

// summary is a snapshot flattened to strings, so a table test shows every
// link the builder made in one readable diff.
type summary struct {
	Nodes     []string
	Workloads []string
	Pods      []string
	Errors    []string
}

func summarize(s *Snapshot, errs []error) summary {
	var out summary
	for _, n := range s.Nodes {
		out.Nodes = append(out.Nodes, fmt.Sprintf("%s %s from=%s runtime=%s%v pool=%s(%s) ready=%v",
			n.Name, platform.String(&n.Platform), n.PlatformFrom, n.Runtime.Name, n.Runtime.Matchers, n.Pool, n.PoolLabel, n.Ready))
	}
	for _, w := range s.Workloads {
		var cs []string
		for _, c := range w.Containers {
			x := fmt.Sprintf("%s:%s=%s", c.Role, c.Name, c.Image)
			if c.Injected {
				x += "(injected)"
			}
			cs = append(cs, x)
		}
		var pods []string
		for _, p := range w.Pods {
			pods = append(pods, p.Name)
		}
		line := fmt.Sprintf("%s at=%q containers=%v pods=%v", w.Ref, w.TemplatePath, cs, pods)
		if len(w.Intermediates) > 0 {
			line += fmt.Sprintf(" via=%v", w.Intermediates)
		}
		if w.Inferred != "" {
			line += " inferred: " + w.Inferred
		}
		if w.Original == nil {
			line += " (no object)"
		}
		if w.ManagedBy != nil {
			line += " managed-by=" + w.ManagedBy.String()
		}
		if w.TemplateFrom != nil {
			line += " template-from=" + w.TemplateFrom.String()
		}
		for _, e := range w.Events {
			line += " event=" + e.Reason
		}
		out.Workloads = append(out.Workloads, line)
	}
	for _, p := range s.Pods {
		node := "-"
		if p.Node != nil {
			node = p.Node.Name
		}
		line := fmt.Sprintf("%s/%s -> %s node=%s", p.Namespace, p.Name, p.Workload.Ref, node)
		if ok, c := p.Failing(); ok {
			line += " failing=" + c
		}
		if p.OwnerNote != "" {
			line += " note: " + p.OwnerNote
		}
		for _, e := range p.Events {
			line += " event=" + e.Reason
		}
		var logs []string
		for c, l := range p.Logs {
			if l.Previous != nil {
				logs = append(logs, c+".previous:"+strings.TrimSpace(l.Previous.Text))
			}
			if l.Current != nil {
				logs = append(logs, c+":"+strings.TrimSpace(l.Current.Text))
			}
		}
		sort.Strings(logs)
		for _, l := range logs {
			line += " log=" + l
		}
		out.Pods = append(out.Pods, line)
	}
	for _, e := range errs {
		out.Errors = append(out.Errors, e.Error())
	}
	return out
}

func TestLoadFiles(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		opts  []FileOption
		want  summary
	}{
		{
			name:  "directory dump with logs, a malformed document in the middle",
			paths: []string{"testdata/dump"},
			want: summary{
				Nodes: []string{
					"bare-1 linux/amd64 from=status.nodeInfo.architecture runtime=containerd[containerd-local@pre-rc.5] pool=() ready=false",
					"ip-10-0-1-12.ec2.internal linux/amd64 from=kubernetes.io/arch runtime=containerd[containerd-local@pre-rc.5] pool=general-x86(eks.amazonaws.com/nodegroup) ready=true",
					"ip-10-0-2-40.ec2.internal linux/arm64/v8 from=kubernetes.io/arch runtime=containerd[containerd-transfer@pre-rc.5 containerd-local@pre-rc.5] pool=graviton(karpenter.sh/nodepool) ready=true",
					"old-arm-1 linux/arm64/v8 from=beta.kubernetes.io/arch runtime=cri-o[cri-o] pool=() ready=false",
				},
				Workloads: []string{
					`batch/CronJob/report at="spec.jobTemplate.spec.template" containers=[main:report=ghcr.io/example/report:2.0] pods=[report-29147520-7kq2p] via=[batch/Job/report-29147520]`,
					`batch/Pod/migrate-1 at="" containers=[main:migrate=example/migrate:1] pods=[migrate-1]`,
					`shop/Deployment/api at="spec.template" containers=[init:wait-db=busybox:1.28 sidecar:log-shipper=fluent/fluent-bit:3.2 main:api=registry.example.com/shop/api:1.4.2 main:istio-proxy=docker.io/istio/proxyv2:1.22.1(injected)] pods=[api-7d9f8c6b5-x2x4q] via=[shop/ReplicaSet/api-7d9f8c6b5] event=SuccessfulCreate`,
					`shop/StatefulSet/db at="spec.template" containers=[main:postgres=postgres:16.3] pods=[db-0]`,
				},
				Pods: []string{
					"batch/migrate-1 -> batch/Pod/migrate-1 node=ip-10-0-2-40.ec2.internal failing=migrate log=migrate:exec /usr/local/bin/migrate: exec format error",
					"batch/report-29147520-7kq2p -> batch/CronJob/report node=ip-10-0-2-40.ec2.internal failing=report event=Failed",
					"shop/api-7d9f8c6b5-x2x4q -> shop/Deployment/api node=ip-10-0-2-40.ec2.internal failing=api event=Scheduled event=Pulled event=BackOff log=api.previous:exec /app/api: exec format error",
					"shop/db-0 -> shop/StatefulSet/db node=ip-10-0-1-12.ec2.internal event=Started",
				},
				Errors: []string{"testdata/dump/cluster.yaml:316: invalid YAML: yaml: mapping values are not allowed in this context"},
			},
		},
		{
			name:  "recursive also reads subdirectories",
			paths: []string{"testdata/dump/nested"},
			opts:  []FileOption{Recursive(true)},
			want: summary{
				Workloads: []string{`shop/Pod/only-with-r at="" containers=[main:c=nginx:1.27] pods=[only-with-r]`},
				Pods:      []string{"shop/only-with-r -> shop/Pod/only-with-r node=-"},
			},
		},
		{
			name:  "owners missing from the dump are inferred and say so",
			paths: []string{"testdata/partial.yaml"},
			want: summary{
				Workloads: []string{
					`front/CronJob/nightly at="spec.jobTemplate.spec.template" containers=[main:nightly=example/nightly:1] pods=[nightly-29147520-zz9xq] via=[front/Job/nightly-29147520] inferred: Job nightly-29147520 is not in the source; CronJob nightly inferred from the job name's schedule suffix (no object)`,
					`front/Deployment/checkout-base at="spec.template" containers=[main:checkout=example/checkout:7] pods=[]`,
					`front/Deployment/found at="spec.template" containers=[main:app=example/found:1] pods=[found-7c9d8b6a5-k2j4h] via=[front/ReplicaSet/found-7c9d8b6a5]`,
					`front/Deployment/web at="spec.template" containers=[main:nginx=nginx:1.27] pods=[web-5c8f7d9b4-abcde] via=[front/ReplicaSet/web-5c8f7d9b4] inferred: ReplicaSet web-5c8f7d9b4 is not in the source; Deployment web inferred from its name and the pod-template-hash label (no object)`,
					// A date suffix is not a CronJob schedule: the Job stays the workload.
					`front/Job/migrate-20240101 at="spec.template" containers=[main:migrate=example/migrate:1] pods=[migrate-20240101-q1w2e] inferred: Job migrate-20240101 is not in the source (no object)`,
					`front/Pod/debug-me at="" containers=[main:app=example/app:1 ephemeral:debugger-x7k2p=busybox:1.36(injected)] pods=[debug-me]`,
					`front/PodTemplate/debug-template at="template" containers=[main:sh=busybox:1.36] pods=[]`,
					`front/Rollout/canary at="spec.template" containers=[main:app=example/canary:3] pods=[canary-6d7f8c9b5-fghij] via=[front/ReplicaSet/canary-6d7f8c9b5] inferred: ReplicaSet canary-6d7f8c9b5 is not in the source; Rollout canary inferred from its name and the rollouts-pod-template-hash label (no object)`,
					`front/Rollout/checkout at="" containers=[main:checkout=example/checkout:7] pods=[] template-from=front/Deployment/checkout-base`,
					`kube-system/Pod/kube-proxy-worker-1 at="" containers=[main:kube-proxy=registry.k8s.io/kube-proxy:v1.33.1] pods=[kube-proxy-worker-1]`,
					`monitoring/StatefulSet/prometheus-k8s at="spec.template" containers=[main:prometheus=quay.io/prometheus/prometheus:v2.53.0 main:config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0(injected)] pods=[prometheus-k8s-0] managed-by=monitoring/Prometheus/k8s`,
				},
				Pods: []string{
					"front/canary-6d7f8c9b5-fghij -> front/Rollout/canary node=- note: ReplicaSet canary-6d7f8c9b5 is not in the source; Rollout canary inferred from its name and the rollouts-pod-template-hash label",
					"front/debug-me -> front/Pod/debug-me node=-",
					"front/found-7c9d8b6a5-k2j4h -> front/Deployment/found node=- note: ReplicaSet found-7c9d8b6a5 is not in the source; Deployment found inferred from its name and the pod-template-hash label; Deployment found is in the source",
					"front/migrate-20240101-q1w2e -> front/Job/migrate-20240101 node=- note: Job migrate-20240101 is not in the source",
					"front/nightly-29147520-zz9xq -> front/CronJob/nightly node=- note: Job nightly-29147520 is not in the source; CronJob nightly inferred from the job name's schedule suffix",
					"front/web-5c8f7d9b4-abcde -> front/Deployment/web node=- note: ReplicaSet web-5c8f7d9b4 is not in the source; Deployment web inferred from its name and the pod-template-hash label",
					"kube-system/kube-proxy-worker-1 -> kube-system/Pod/kube-proxy-worker-1 node=-",
					"monitoring/prometheus-k8s-0 -> monitoring/StatefulSet/prometheus-k8s node=-",
				},
			},
		},
		{
			name:  "JSON stream resumes after a syntax error; typed lists; item lines",
			paths: []string{"testdata/stream.json"},
			want: summary{
				Workloads: []string{
					`default/Pod/s1 at="" containers=[main:a=nginx:1.27] pods=[s1]`,
					`default/Pod/s3 at="" containers=[main:a=nginx:1.27] pods=[s3]`,
					`default/Pod/s4 at="" containers=[main:a=nginx:1.27] pods=[s4]`,
				},
				Pods: []string{
					"default/s1 -> default/Pod/s1 node=-",
					"default/s3 -> default/Pod/s3 node=-",
					"default/s4 -> default/Pod/s4 node=-",
				},
				Errors: []string{
					"testdata/stream.json:2: invalid JSON: invalid character '}' looking for beginning of object key string",
					"testdata/stream.json:6: reading Pod s5: json: cannot unmarshal string into Go struct field ContainerStatus.status.containerStatuses.restartCount of type int32",
					"testdata/stream.json:8: object has no apiVersion or kind",
				},
			},
		},
		{
			name:  "a syntax error inside a List loses only that item",
			paths: []string{"testdata/brokenlist.yaml"},
			want: summary{
				Workloads: []string{
					`default/Pod/good-1 at="" containers=[main:web=nginx:1.27] pods=[good-1]`,
					`default/Pod/good-2 at="" containers=[main:web=nginx:1.27] pods=[good-2]`,
				},
				Pods: []string{
					"default/good-1 -> default/Pod/good-1 node=-",
					"default/good-2 -> default/Pod/good-2 node=-",
				},
				Errors: []string{"testdata/brokenlist.yaml:20: invalid YAML: yaml: found unexpected end of stream"},
			},
		},
		{
			name:  "byte-order mark and CRLF line ends",
			paths: []string{"testdata/bom-crlf.json", "testdata/bom-crlf.yaml"},
			want: summary{
				Workloads: []string{
					`default/Pod/second at="" containers=[main:a=nginx:1.27] pods=[second]`,
					`default/Pod/windows-edited at="" containers=[main:a=nginx:1.27] pods=[windows-edited]`,
					`default/Pod/windows-yaml at="" containers=[main:a=nginx:1.27] pods=[windows-yaml]`,
				},
				Pods: []string{
					"default/second -> default/Pod/second node=-",
					"default/windows-edited -> default/Pod/windows-edited node=-",
					"default/windows-yaml -> default/Pod/windows-yaml node=-",
				},
			},
		},
		{
			name:  "a type error in a List item names the item's line",
			paths: []string{"testdata/baditem.yaml"},
			want: summary{
				Workloads: []string{
					`default/Deployment/fine at="spec.template" containers=[main:web=nginx:1.27] pods=[]`,
					`default/Pod/ok at="" containers=[main:web=nginx:1.27] pods=[ok]`,
				},
				Pods:   []string{"default/ok -> default/Pod/ok node=-"},
				Errors: []string{"testdata/baditem.yaml:13: reading Pod wrong-type: json: cannot unmarshal string into Go struct field ContainerStatus.status.containerStatuses.restartCount of type int32"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, errs, err := LoadFiles(context.Background(), tt.paths, nil, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range errs {
				var de *DocumentError
				if !errors.As(e, &de) {
					t.Errorf("%v is not a *DocumentError", e)
				}
			}
			if diff := cmp.Diff(tt.want, summarize(s, errs)); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadFilesStdin(t *testing.T) {
	data, err := os.ReadFile("testdata/dump/batch.json")
	if err != nil {
		t.Fatal(err)
	}
	// "-" twice reads stdin once; a file's sibling logs/ dir is read.
	s, errs, err := LoadFiles(context.Background(), []string{"-", "-", "testdata/dump/events.yaml"}, strings.NewReader(string(data)))
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	got := summarize(s, nil).Pods
	want := []string{
		"batch/migrate-1 -> batch/Pod/migrate-1 node=- failing=migrate log=migrate:exec /usr/local/bin/migrate: exec format error",
		"batch/report-29147520-7kq2p -> batch/CronJob/report node=- failing=report event=Failed",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	if len(s.Events) != 7 {
		t.Errorf("got %d events, want 7 (also those about objects not in the snapshot)", len(s.Events))
	}
}

func TestLoadFilesErrors(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		stdin bool
		is    error
	}{
		{"missing file", []string{"testdata/nope.yaml"}, false, fs.ErrNotExist},
		{"missing directory", []string{"testdata/nope/"}, false, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := LoadFiles(context.Background(), tt.paths, nil)
			if !errors.Is(err, tt.is) {
				t.Errorf("got %v, want %v", err, tt.is)
			}
		})
	}
	t.Run("stdin without a reader", func(t *testing.T) {
		if _, _, err := LoadFiles(context.Background(), []string{"-"}, nil); err == nil {
			t.Error("want an error")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := LoadFiles(ctx, []string{"testdata/dump"}, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestLogs(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dump.yaml", `apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ns}
spec: {containers: [{name: app, image: x}], initContainers: [{name: init, image: busybox}]}
`)
	write("logs/ns/p/app.previous.log", strings.Repeat("x", 100)+"\nexec /app: exec format error\n")
	write("logs/ns/p/init.log", "ok\n")
	write("logs/ns/gone/app.log", "orphan\n")
	write("logs/bad.log", "no layout\n")

	s, errs, err := LoadFiles(context.Background(), []string{filepath.Join(dir, "dump.yaml")}, nil, LogLimitBytes(40))
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "bad.log") {
		t.Errorf("errors: %v, want one about bad.log", errs)
	}
	p := s.Pods[0]
	prev := p.PreviousLog("app")
	if prev == nil || !prev.Truncated || len(prev.Text) != 40 || !strings.HasSuffix(prev.Text, "exec /app: exec format error\n") {
		t.Errorf("previous log of app: %+v, want its last 40 bytes, truncated", prev)
	}
	if l := p.CurrentLog("init"); l == nil || l.Text != "ok\n" || l.Truncated {
		t.Errorf("current log of init: %+v", l)
	}
	if len(s.Logs) != 3 {
		t.Errorf("got %d logs, want 3 (the orphan kept)", len(s.Logs))
	}
}

func TestParseLogPath(t *testing.T) {
	tests := []struct {
		path string
		want *Log
	}{
		{"logs/shop/api-1/api.previous.log", &Log{Namespace: "shop", Pod: "api-1", Container: "api", Previous: true}},
		{"/x/logs/shop/api-1/api.log", &Log{Namespace: "shop", Pod: "api-1", Container: "api"}},
		{"dump/shop/api-1/my.app.log", &Log{Namespace: "shop", Pod: "api-1", Container: "my.app"}},
		{"logs/api-1/api.log", nil},
		{"logs/shop/api-1/.previous.log", nil},
		{"api.log", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := parseLogPath(tt.path)
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestOriginalKept(t *testing.T) {
	s, _, err := LoadFiles(context.Background(), []string{"testdata/dump"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref  Ref
		path []string
	}{
		{Ref{Kind: KindDeployment, Namespace: "shop", Name: "api"}, []string{"spec", "template", "spec", "initContainers"}},
		{Ref{Kind: KindCronJob, Namespace: "batch", Name: "report"}, []string{"spec", "jobTemplate", "spec", "template", "spec", "containers"}},
		{Ref{Kind: KindPod, Namespace: "batch", Name: "migrate-1"}, []string{"spec", "containers"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref.String(), func(t *testing.T) {
			w := s.Workload(tt.ref)
			if w == nil || w.Original == nil {
				t.Fatalf("no workload or original for %s", tt.ref)
			}
			if _, ok, err := unstructured.NestedSlice(w.Original.Object, tt.path...); !ok || err != nil {
				t.Errorf("original has no %v (%v)", tt.path, err)
			}
			if w.Original.GetKind() != tt.ref.Kind || w.Original.GetAPIVersion() != w.APIVersion {
				t.Errorf("original is %s %s, workload %s %s", w.Original.GetAPIVersion(), w.Original.GetKind(), w.APIVersion, tt.ref.Kind)
			}
		})
	}
}
