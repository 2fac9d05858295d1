package main

import (
	"context"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
	"github.com/arubug/arubug/internal/enrich"
	"github.com/arubug/arubug/internal/trends"
)

// The methods below let the triage worker and the API use the lazily
// connected store: each call connects (and migrates) first if needed.

func (s *store) PendingReportEvents(ctx context.Context, projects []string, now time.Time, lookback time.Duration, limit int) ([]bugreport.Event, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.PendingReportEvents(ctx, projects, now, lookback, limit)
}

func (s *store) SaveReport(ctx context.Context, r *bugreport.Report, source string) error {
	db, err := s.get(ctx)
	if err != nil {
		return err
	}
	return db.SaveReport(ctx, r, source)
}

func (s *store) SimilarCount(ctx context.Context, project, fingerprint string, since time.Time, exclude bugreport.UUID) (uint64, error) {
	db, err := s.get(ctx)
	if err != nil {
		return 0, err
	}
	return db.SimilarCount(ctx, project, fingerprint, since, exclude)
}

func (s *store) Report(ctx context.Context, id bugreport.UUID) (*bugreport.Report, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return db.Report(ctx, id)
}

func (s *store) Reports(ctx context.Context, f bugreport.ReportFilter) (bugreport.ReportPage, error) {
	db, err := s.get(ctx)
	if err != nil {
		return bugreport.ReportPage{}, unavailable(err)
	}
	return db.Reports(ctx, f)
}

func (s *store) TeamCounts(ctx context.Context, now time.Time) (map[string]bugreport.TeamStats, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return db.TeamCounts(ctx, now)
}

func (s *store) Screenshot(ctx context.Context, id bugreport.UUID) (string, []byte, error) {
	db, err := s.get(ctx)
	if err != nil {
		return "", nil, unavailable(err)
	}
	return db.Screenshot(ctx, id)
}

func (s *store) SessionStart(ctx context.Context, project, sessionID string) (time.Time, bool, error) {
	db, err := s.get(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	return enrich.NewQuerier(db.Conn(), s.queryLimit).SessionStart(ctx, project, sessionID)
}

func (s *store) Usage(ctx context.Context, project, distinctID, deviceID string, at time.Time) (*bugreport.Usage, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return enrich.NewQuerier(db.Conn(), s.queryLimit).Usage(ctx, project, distinctID, deviceID, at)
}

func unavailable(err error) error {
	return &bugreport.Error{Code: bugreport.EUNAVAILABLE, Reason: "clickhouse_unavailable", Message: "ClickHouse is not reachable; retry shortly", RetryAfter: 5 * time.Second, Err: err}
}

func (s *store) ReportsWithoutUsage(ctx context.Context, since time.Time, limit int) ([]*bugreport.Report, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.ReportsWithoutUsage(ctx, since, limit)
}

func (s *store) TicketLink(ctx context.Context, id bugreport.UUID) (*bugreport.TicketLink, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return db.TicketLink(ctx, id)
}

func (s *store) SaveTicketLink(ctx context.Context, l *bugreport.TicketLink) error {
	db, err := s.get(ctx)
	if err != nil {
		return unavailable(err)
	}
	return db.SaveTicketLink(ctx, l)
}

func (s *store) ReportsToTicket(ctx context.Context, now time.Time, grace, lookback time.Duration, limit int) ([]bugreport.UUID, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.ReportsToTicket(ctx, now, grace, lookback, limit)
}

func (s *store) ProblemTicket(ctx context.Context, project, fingerprint string, since time.Time, exclude bugreport.UUID) (int64, error) {
	db, err := s.get(ctx)
	if err != nil {
		return 0, err
	}
	return db.ProblemTicket(ctx, project, fingerprint, since, exclude)
}

func (s *store) OpenTicketLinks(ctx context.Context, since time.Time, limit int) ([]*bugreport.TicketLink, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.OpenTicketLinks(ctx, since, limit)
}

func (s *store) Thread(ctx context.Context, r *bugreport.Report) ([]bugreport.Message, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return db.Thread(ctx, r.Project, r.ID, r.ReportedAt)
}

func (s *store) SaveTicketStatus(ctx context.Context, l *bugreport.TicketLink, status string, at time.Time) error {
	db, err := s.get(ctx)
	if err != nil {
		return unavailable(err)
	}
	return db.SaveTicketStatus(ctx, l, status, at)
}

func (s *store) Trend(ctx context.Context, q trends.Query) (*trends.Result, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return trends.NewQuerier(db.Conn(), 10*time.Second).Trend(ctx, q)
}

func (s *store) Top(ctx context.Context, q trends.TopQuery) (map[string][]bugreport.Count, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return trends.NewQuerier(db.Conn(), 10*time.Second).Top(ctx, q)
}

func (s *store) TicketLinks(ctx context.Context, ids []bugreport.UUID) (map[bugreport.UUID]*bugreport.TicketLink, error) {
	db, err := s.get(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	return db.TicketLinks(ctx, ids)
}
