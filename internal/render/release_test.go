package render

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

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
