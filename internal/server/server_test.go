package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthReadyMetrics(t *testing.T) {
	ready := errors.New("clickhouse unreachable")
	reg := prometheus.NewRegistry()
	h := New(Options{
		Checks:     []Check{{Name: "clickhouse", Fn: func(context.Context) error { return ready }}, {Name: "spool", Fn: func(context.Context) error { return nil }}},
		Registerer: reg, Gatherer: reg, Version: "v-test",
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/_health"); code != 200 || !strings.Contains(body, "v-test") {
		t.Errorf("health %d %s", code, body)
	}
	code, body := get("/_ready")
	var r struct {
		Ready  bool
		Checks map[string]string
	}
	_ = json.Unmarshal([]byte(body), &r)
	if code != 503 || r.Ready || r.Checks["clickhouse"] != "clickhouse unreachable" || r.Checks["spool"] != "ok" {
		t.Errorf("ready while down: %d %s", code, body)
	}
	ready = nil
	if code, _ := get("/_ready"); code != 200 {
		t.Errorf("ready when up: %d", code)
	}
	if code, body := get("/nope"); code != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("404: %d %s", code, body)
	}
	code, body = get("/metrics")
	if code != 200 || !strings.Contains(body, `arubug_http_requests_total{code="404",method="GET",route="unmatched"} 1`) ||
		!strings.Contains(body, `arubug_http_requests_total{code="503",method="GET",route="/_ready"} 1`) {
		t.Errorf("metrics do not count requests by route and code:\n%s", body)
	}
}

func TestPanicsBecome500(t *testing.T) {
	r := chi.NewRouter()
	r.Use(recoverer(nil))
	r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("secret internal detail") })
	w := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != nil {
			t.Fatalf("panic escaped: %v", v)
		}
	}()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
}
