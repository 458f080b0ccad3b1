package serve

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

// reviewCounter is a fake API server for token and access reviews (the
// real one is used by TestReportNeedsAuthorization): it counts the reviews
// 3,000 made-up tokens cost, which is slow to drive through a real one.
// Token "good" is allowed; any other is not authenticated.
func reviewCounter() (*fake.Clientset, *atomic.Int64) {
	var n atomic.Int64
	cs := fake.NewSimpleClientset()
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if tr.Spec.Token == "good" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "scraper"}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = sar.Spec.User == "scraper"
		return true, sar, nil
	})
	return cs, &n
}

func get(h http.HandlerFunc, token string) int {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, ReportPath, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	h(w, r)
	return w.Code
}

// A flood of made-up tokens neither pushes an allowed scraper's verdict out
// of the cache (it would cost two reviews per GET again) nor is more than
// authMax verdicts.
func TestReportAuthCacheKeepsAllowedUnderFlood(t *testing.T) {
	cs, reviews := reviewCounter()
	s := &Server{cs: cs, cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	h := s.authorized(ReportPath, func(w http.ResponseWriter, r *http.Request) {})
	if code := get(h, "good"); code != http.StatusOK {
		t.Fatalf("good token: %d", code)
	}
	for i := 0; i < 3*authMax; i++ {
		if code := get(h, "bad"+strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("made-up token: %d", code)
		}
	}
	before := reviews.Load()
	if code := get(h, "good"); code != http.StatusOK {
		t.Fatalf("good token after the flood: %d", code)
	}
	if reviews.Load() != before {
		t.Errorf("the allowed token was reviewed again after %d made-up ones: its verdict was evicted", 3*authMax)
	}
	if n := len(s.auth.entries); n > authMax {
		t.Errorf("%d verdicts cached, bound %d", n, authMax)
	}
}

// While authInFlight reviews are under way, more tokens are answered 429
// at once instead of queueing reviews on the API server. The API server
// here is a stand-in that holds every token review until released, which a
// real one cannot be made to do on cue.
func TestReportAuthBoundsReviewsInFlight(t *testing.T) {
	hold := make(chan struct{})
	var reviews atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/tokenreviews") {
			http.NotFound(w, r)
			return
		}
		reviews.Add(1)
		<-hold
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":false}}`)
	}))
	defer api.Close()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json"}, QPS: 1000, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cs: cs, cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	h := s.authorized(ReportPath, func(w http.ResponseWriter, r *http.Request) {})
	var wg sync.WaitGroup
	for i := 0; i < authInFlight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := get(h, "held"+strconv.Itoa(i)); code != http.StatusUnauthorized {
				t.Errorf("held token %d: %d, want 401", i, code)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for reviews.Load() < authInFlight && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 2*authInFlight; i++ {
		if code := get(h, "more"+strconv.Itoa(i)); code != http.StatusTooManyRequests {
			t.Errorf("token %d while %d reviews are under way: %d, want 429", i, authInFlight, code)
		}
	}
	close(hold)
	wg.Wait()
	if n := reviews.Load(); n != authInFlight {
		t.Errorf("%d token reviews, want %d", n, authInFlight)
	}
}
