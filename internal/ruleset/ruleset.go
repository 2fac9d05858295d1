// Package ruleset keeps the routing rules in force and reloads them: on a
// file change, on SIGHUP and on request. An invalid file is rejected with a
// logged reason and a metric, and the running rules stay.
package ruleset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/routing"
)

// Set is the rules in force.
type Set struct {
	path    string
	opts    routing.Options
	log     *slog.Logger
	current atomic.Pointer[routing.Rules]
	mu      sync.Mutex // serialises reloads
	last    atomic.Pointer[Status]
	reloads *prometheus.CounterVec
	success prometheus.Gauge
}

// Status is the outcome of the last reload.
type Status struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	Hash  string    `json:"hash"`
}

// Load reads the rules at path; an invalid file is an error at start.
func Load(path string, opts routing.Options, log *slog.Logger, reg prometheus.Registerer) (*Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r, err := routing.Load(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Set{
		path: path, opts: opts, log: log,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arubug_rules_reloads_total", Help: "Routing rules reloads, by result.",
		}, []string{"result"}),
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arubug_rules_last_reload_successful", Help: "1 if the last routing rules reload succeeded.",
		}),
	}
	reg.MustRegister(s.reloads, s.success)
	s.current.Store(r)
	s.success.Set(1)
	s.last.Store(&Status{At: time.Now().UTC(), OK: true, Hash: r.Hash()})
	return s, nil
}

// Rules returns the rules in force.
func (s *Set) Rules() *routing.Rules { return s.current.Load() }

// Router returns the rules in force as a router.
func (s *Set) Router() interface {
	Route(*bugreport.Report) bugreport.RouteDecision
} {
	return s.current.Load()
}

// Last returns the outcome of the last reload.
func (s *Set) Last() Status { return *s.last.Load() }

// Reload reads the file again. On error the rules in force stay.
func (s *Set) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := routing.Load(s.path, s.opts)
	if err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.success.Set(0)
		s.last.Store(&Status{At: time.Now().UTC(), OK: false, Error: err.Error(), Hash: s.current.Load().Hash()})
		s.log.Error("routing rules reload rejected; the previous rules stay in force", "path", s.path, "err", err)
		return err
	}
	old := s.current.Swap(r)
	s.reloads.WithLabelValues("ok").Inc()
	s.success.Set(1)
	s.last.Store(&Status{At: time.Now().UTC(), OK: true, Hash: r.Hash()})
	if old.Hash() != r.Hash() {
		s.log.Info("routing rules reloaded", "path", s.path, "hash", r.Hash())
	}
	return nil
}

// Watch reloads when the file's content changes, checking every interval.
func (s *Set) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := fileHash(s.path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h := fileHash(s.path)
			if h == "" || h == last {
				continue
			}
			last = h
			_ = s.Reload()
		}
	}
}

func fileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ProductAreas returns the rules' product areas in the domain form.
func (s *Set) ProductAreas() []bugreport.ProductArea {
	var out []bugreport.ProductArea
	for _, p := range s.Rules().ProductAreas() {
		out = append(out, bugreport.ProductArea{ID: p.ID, Label: p.Label})
	}
	return out
}

// Teams returns the rules' teams.
func (s *Set) Teams() []bugreport.Team { return s.Rules().Teams() }

// String describes the set for logs.
func (s *Set) String() string { return fmt.Sprintf("rules %s (%s)", s.path, s.Rules().Hash()) }
