package render

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
)

func encodeRelease(t *testing.T, v any, compress bool) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if compress {
		b = gzipped(t, b)
	}
	return []byte(base64.StdEncoding.EncodeToString(b))
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A release record as Helm stores it decodes to its chart and values, and
// the chart written back renders as the chart directory does with those
// values.
func TestDecodeReleaseRendersLikeTheChart(t *testing.T) {
	chrt, err := loader.Load("testdata/chart/web")
	if err != nil {
		t.Fatal(err)
	}
	config := map[string]any{"replicas": 3}
	for _, compress := range []bool{true, false} {
		data := encodeRelease(t, release.Release{Name: "shop", Namespace: "prod", Version: 4, Chart: chrt, Config: config}, compress)
		rel, err := DecodeRelease(data)
		if err != nil {
			t.Fatal(err)
		}
		if rel.Name != "shop" || rel.Namespace != "prod" || rel.Revision != 4 || rel.Chart.Name() != "web" {
			t.Fatalf("release = %+v", rel)
		}
		tgz, err := rel.WriteChart(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		got, err := HelmChart(ctx, tgz, nil, nil, "shop", "prod", WithValues(rel.Config))
		if err != nil {
			t.Fatal(err)
		}
		want, err := HelmChart(ctx, "testdata/chart/web", nil, []string{"replicas=3"}, "shop", "prod")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("compress %v: the release's chart renders\n%s\nwant\n%s", compress, got, want)
		}
	}
}

func TestDecodeReleaseRefuses(t *testing.T) {
	bomb := gzipped(t, make([]byte, MaxReleaseBytes+1))
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"over the size bound once decompressed", []byte(base64.StdEncoding.EncodeToString(bomb)), ErrReleaseTooLarge},
		{"not base64", []byte("%%%"), nil},
		{"not JSON", []byte(base64.StdEncoding.EncodeToString(gzipped(t, []byte("{")))), nil},
		{"no chart", encodeRelease(t, release.Release{Name: "x"}, true), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := DecodeRelease(tc.data)
			if err == nil {
				t.Fatalf("decoded %+v", rel)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// A release record is the cluster's, not the user's: a chart name that
// would leave the directory is refused, a template name with .. stays an
// archive entry that Helm's loader does not take as a template, and
// nothing is written outside the directory given.
func TestReleaseChartStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*chart.Chart)
		wantErr bool
	}{
		{"chart name", func(c *chart.Chart) { c.Metadata.Name = "../evil" }, true},
		{"template name", func(c *chart.Chart) {
			c.Templates = append(c.Templates, &chart.File{Name: "templates/../../../evil.yaml", Data: []byte("kind: ConfigMap\nmetadata: {name: evil}\n")})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chrt, err := loader.Load("testdata/chart/web")
			if err != nil {
				t.Fatal(err)
			}
			tc.change(chrt)
			rel, err := DecodeRelease(encodeRelease(t, release.Release{Name: "shop", Chart: chrt}, true))
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			p, err := rel.WriteChart(filepath.Join(parent, "out"))
			var out []byte
			if err == nil {
				out, err = HelmChart(context.Background(), p, nil, nil, "shop", "prod")
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
			if bytes.Contains(out, []byte("evil")) {
				t.Errorf("the entry outside templates/ was rendered:\n%s", out)
			}
			entries, _ := os.ReadDir(parent)
			for _, e := range entries {
				if e.Name() != "out" {
					t.Errorf("%s written outside the directory", e.Name())
				}
			}
		})
	}
}
