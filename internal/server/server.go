// Package server assembles Arubug's HTTP routes: capture, health, readiness
// and metrics, with the request metrics and recovery every route shares.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/capture"
	"github.com/arubug/arubug/internal/httperr"
)

// Check is one readiness check; a nil error means ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configures the router.
type Options struct {
	Capture *capture.Handler
	// Mounts add more routes (the admin API).
	Mounts     []func(chi.Router)
	Checks     []Check
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	Logger     *slog.Logger
	Version    string
}

// New returns the service's HTTP handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arubug_http_requests_total",
		Help: "HTTP requests by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "arubug_http_request_seconds",
		Help:    "HTTP request duration by route pattern.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"route"})
	o.Registerer.MustRegister(requests, duration)

	r := chi.NewRouter()
	r.Use(recoverer(o.Logger))
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, req.ProtoMajor)
			next.ServeHTTP(ww, req)
			route := chi.RouteContext(req.Context()).RoutePattern()
			if route == "" {
				route = "unmatched"
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			requests.WithLabelValues(route, req.Method, strconv.Itoa(status)).Inc()
			duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		})
	})

	if o.Capture != nil {
		o.Capture.Mount(r)
	}
	for _, m := range o.Mounts {
		m(r)
	}
	r.Get("/_health", func(w http.ResponseWriter, _ *http.Request) {
		httperr.JSON(w, http.StatusOK, map[string]any{"status": "ok", "version": o.Version})
	})
	r.Get("/_ready", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
		defer cancel()
		status := http.StatusOK
		checks := map[string]string{}
		for _, c := range o.Checks {
			if err := c.Fn(ctx); err != nil {
				status = http.StatusServiceUnavailable
				checks[c.Name] = err.Error()
				continue
			}
			checks[c.Name] = "ok"
		}
		httperr.JSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": checks})
	})
	r.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		httperr.Write(w, bugreport.Errorf(bugreport.ENOTFOUND, "not_found", "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"type":"validation_error","code":"method_not_allowed","detail":"method not allowed on this endpoint"}`))
	})
	return r
}

// recoverer turns a panic into a logged 500 so one bad request cannot take
// the collector down; http.ErrAbortHandler passes through as net/http wants.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("panic serving request", "path", r.URL.Path, "panic", v)
					httperr.Write(w, &bugreport.Error{Code: bugreport.EINTERNAL, Reason: "internal", Message: "internal error"})
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
