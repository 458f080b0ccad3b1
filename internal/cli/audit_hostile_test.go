package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// A kustomization with a remote resource is refused before anything is
// fetched, unless --allow-remote-resources.
func TestAuditRemoteKustomization(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: remote\nspec:\n  containers:\n  - name: c\n    image: example.com/shop/api:1.4\n"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources:\n- "+srv.URL+"/pod.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runArchfit(t, "", append([]string{"audit", "-k", dir}, renderImageArgs...)...)
	if code != ExitFailure || !strings.Contains(errOut, srv.URL+"/pod.yaml") || !strings.Contains(errOut, "--allow-remote-resources") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d request(s) without --allow-remote-resources", n)
	}
	_, errOut, code = runArchfit(t, "", append([]string{"audit", "-k", dir, "--allow-remote-resources", "--fail-on", "never"}, renderImageArgs...)...)
	if code != ExitOK || requests.Load() != 1 {
		t.Errorf("with --allow-remote-resources: exit %d, %d request(s), stderr:\n%s", code, requests.Load(), errOut)
	}
}

// Cancelling the command (Ctrl-C) stops a chart whose template loops.
func TestAuditLoopingChartCanceled(t *testing.T) {
	chart := t.TempDir()
	for name, data := range map[string]string{
		"Chart.yaml":          "apiVersion: v2\nname: loop\nversion: 0.1.0\n",
		"templates/loop.yaml": "{{- range until 3000 }}{{- range until 10000 }}{{- end }}{{- end }}\n",
	} {
		os.MkdirAll(filepath.Join(chart, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(chart, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	var out, stderr bytes.Buffer
	cmd := NewCmdRoot(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &stderr})
	cmd.SetArgs(append([]string{"audit", "--helm-chart", chart}, renderImageArgs...))
	if err := cmd.ExecuteContext(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}
