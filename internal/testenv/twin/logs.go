package twin

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubeletHandler serves the part of the kubelet API the API server proxies
// to: /containerLogs/{namespace}/{pod}/{container} (kubectl logs) and /healthz.
func (t *Twin) kubeletHandler(n *node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
		q := r.URL.Query()
		previous, _ := strconv.ParseBool(q.Get("previous"))
		st, ok := t.containerStatus(n, ns, pod, container)
		if !ok {
			kubeletError(w, fmt.Errorf("container %q in pod %q is not available", container, pod))
			return
		}
		id, err := logContainerID(st, pod, previous)
		if err != nil {
			kubeletError(w, err)
			return
		}
		text := t.log(id)
		lines := strings.SplitAfter(text, "\n")
		if len(lines) > 0 && lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if v := q.Get("tailLines"); v != "" {
			if k, err := strconv.Atoi(v); err == nil && k >= 0 && k < len(lines) {
				lines = lines[len(lines)-k:]
			}
		}
		if ts, _ := strconv.ParseBool(q.Get("timestamps")); ts {
			at := time.Now().UTC().Format(time.RFC3339Nano)
			for i := range lines {
				lines[i] = at + " " + lines[i]
			}
		}
		out := strings.Join(lines, "")
		if v := q.Get("limitBytes"); v != "" {
			if k, err := strconv.Atoi(v); err == nil && k >= 0 && k < len(out) {
				out = out[:k]
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, out)
	})
	return mux
}

// kubeletError answers as the kubelet's log handler does: 400 and the bare
// error text, which the API server turns into a BadRequest Status.
func kubeletError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, err.Error())
}

func (t *Twin) containerStatus(n *node, ns, pod, container string) (corev1.ContainerStatus, bool) {
	t.mu.Lock()
	var found *podWorker
	for _, w := range t.pods {
		if w.node == n && w.pod.Namespace == ns && w.pod.Name == pod {
			found = w
		}
	}
	t.mu.Unlock()
	if found == nil {
		return corev1.ContainerStatus{}, false
	}
	found.mu.Lock()
	defer found.mu.Unlock()
	for _, m := range []map[string]*corev1.ContainerStatus{found.main, found.init} {
		if s, ok := m[container]; ok {
			return *s.DeepCopy(), true
		}
	}
	return corev1.ContainerStatus{}, false
}

// logContainerID chooses the container whose log is asked for, with the
// kubelet's error texts (validateContainerLogStatus).
func logContainerID(s corev1.ContainerStatus, pod string, previous bool) (string, error) {
	last := s.LastTerminationState.Terminated
	switch {
	case previous:
		if last == nil || last.ContainerID == "" {
			return "", fmt.Errorf("previous terminated container %q in pod %q not found", s.Name, pod)
		}
		return last.ContainerID, nil
	case s.State.Running != nil:
		return s.ContainerID, nil
	case s.State.Terminated != nil:
		if s.State.Terminated.ContainerID != "" {
			return s.State.Terminated.ContainerID, nil
		}
		if last != nil && last.ContainerID != "" {
			return last.ContainerID, nil
		}
		return "", fmt.Errorf("container %q in pod %q is terminated", s.Name, pod)
	case last != nil:
		if last.ContainerID == "" {
			return "", fmt.Errorf("container %q in pod %q is terminated", s.Name, pod)
		}
		return last.ContainerID, nil
	case s.State.Waiting != nil:
		switch s.State.Waiting.Reason {
		case "ErrImagePull":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: image can't be pulled", s.Name, pod)
		case "ImagePullBackOff":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: trying and failing to pull image", s.Name, pod)
		default:
			return "", fmt.Errorf("container %q in pod %q is waiting to start: %v", s.Name, pod, s.State.Waiting.Reason)
		}
	}
	return "", fmt.Errorf("container %q in pod %q is waiting to start - no logs yet", s.Name, pod)
}
