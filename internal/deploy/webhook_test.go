package deploy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/archfit/archfit/internal/serve"
)

// TestChartWebhookIsServes holds the chart's MutatingWebhookConfiguration to
// the one `archfit serve --install` registers (serve.Webhook): the same
// webhook name, rules, policies, timeout and selectors, so the two ways of
// running archfit cannot drift apart. Only the client config (a Service
// here, a URL there) and what the chart adds for itself differ.
func TestChartWebhookIsServes(t *testing.T) {
	r := typed(t, decode(t, renderChart(t, releaseNS)))
	got := r.webhook
	if len(got.Webhooks) != 1 {
		t.Fatalf("the chart's webhook configuration has %d webhooks, want 1", len(got.Webhooks))
	}
	want := serve.Webhook(got.Name, releaseNS, nil, got.Webhooks[0].ClientConfig)
	g, w := got.Webhooks[0], want.Webhooks[0]
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("chart webhook differs from serve.Webhook (-serve +chart):\n%s", diff)
	}
	if g.ClientConfig.Service == nil || g.ClientConfig.Service.Path == nil || *g.ClientConfig.Service.Path != serve.WebhookPath {
		t.Errorf("the chart's webhook must call the Service at %s, got %+v", serve.WebhookPath, g.ClientConfig)
	}
}
