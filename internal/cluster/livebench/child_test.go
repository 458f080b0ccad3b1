package livebench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"
)

type countingRT struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// runChild plays one client in a process of its own (so that its wall, CPU
// and RSS are its own) and prints its request count as archfit does.
//   - ideal-audit: lists, in pages of 500 (kubectl's default), each kind
//     audit reads, decoding each page and dropping it;
//   - ideal-diagnose: the same plus events, and one previous log per
//     (owner, container, node architecture, exit code);
//   - script: what a user's loop does in client-go: list the pods, then one
//     previous log per restarted container, one after another.
func runChild(mode, kubeconfig string) int {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.QPS, cfg.Burst = 50, 100
	var n atomic.Int64
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingRT{rt, &n} })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := child(ctx, mode, cs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: %d API request(s)\n", mode, n.Load())
	return 0
}

func each(ctx context.Context, list func(context.Context, metav1.ListOptions) (runtime.Object, error), fn func(runtime.Object) error) error {
	p := pager.New(pager.SimplePageFunc(func(o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }))
	p.PageSize = 500
	return p.EachListItem(ctx, metav1.ListOptions{}, fn)
}

func child(ctx context.Context, mode string, cs *kubernetes.Clientset) error {
	none := func(runtime.Object) error { return nil }
	type failing struct{ ns, pod, container string }
	var crashed []failing
	group := map[string]failing{}
	arch := map[string]string{}
	if mode != "script" {
		if err := each(ctx, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Nodes().List(ctx, o)
		}, func(o runtime.Object) error {
			n := o.(*corev1.Node)
			arch[n.Name] = n.Labels["kubernetes.io/arch"]
			return nil
		}); err != nil {
			return err
		}
		lists := []func(context.Context, metav1.ListOptions) (runtime.Object, error){
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.AppsV1().Deployments("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.AppsV1().ReplicaSets("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.AppsV1().StatefulSets("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.AppsV1().DaemonSets("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.BatchV1().Jobs("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.BatchV1().CronJobs("").List(ctx, o)
			},
		}
		if mode == "ideal-diagnose" {
			lists = append(lists, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Events("").List(ctx, o)
			})
		}
		for _, l := range lists {
			if err := each(ctx, l, none); err != nil {
				return err
			}
		}
	}
	if err := each(ctx, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().Pods("").List(ctx, o)
	}, func(o runtime.Object) error {
		p := o.(*corev1.Pod)
		owner := ""
		if r := metav1.GetControllerOf(p); r != nil {
			owner = string(r.UID)
		}
		for _, c := range p.Status.ContainerStatuses {
			t := c.LastTerminationState.Terminated
			if c.RestartCount == 0 || t == nil || t.ExitCode == 0 {
				continue
			}
			f := failing{p.Namespace, p.Name, c.Name}
			if mode == "script" {
				crashed = append(crashed, f)
				continue
			}
			key := fmt.Sprint(owner, c.Name, arch[p.Spec.NodeName], t.ExitCode)
			if _, ok := group[key]; !ok && owner != "" {
				group[key] = f
				crashed = append(crashed, f)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if mode == "ideal-audit" {
		return nil
	}
	limit, tail := int64(16384), int64(200)
	for _, f := range crashed {
		rc, err := cs.CoreV1().Pods(f.ns).GetLogs(f.pod, &corev1.PodLogOptions{Container: f.container, Previous: true, LimitBytes: &limit, TailLines: &tail}).Stream(ctx)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(strings.ToLower(string(b)), "exec format error") {
			return fmt.Errorf("log of %s/%s: %q", f.ns, f.pod, b)
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %d log(s)\n", mode, len(crashed))
	return nil
}
