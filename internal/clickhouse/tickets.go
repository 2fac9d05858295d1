package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/arubug/arubug/internal/bugreport"
)

const linkColumns = "report_id, version, project, reported_at, ticket_id, problem_id, team, state, error, attempts, updated_at"

// SaveTicketLink stores a new version of a report's ticket link.
func (db *DB) SaveTicketLink(ctx context.Context, l *bugreport.TicketLink) error {
	return db.SaveTicketLinks(ctx, []*bugreport.TicketLink{l})
}

// SaveTicketLinks stores new versions of several links in one insert.
func (db *DB) SaveTicketLinks(ctx context.Context, links []*bugreport.TicketLink) error {
	if len(links) == 0 {
		return nil
	}
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO ticket_links ("+linkColumns+")")
	if err != nil {
		return fmt.Errorf("clickhouse: prepare ticket link insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	now := time.Now().UTC()
	for _, l := range links {
		if l.UpdatedAt.IsZero() {
			l.UpdatedAt = now
		}
		if err := batch.Append(uuid.UUID(l.ReportID), uint64(now.UnixNano()), l.Project, l.ReportedAt.UTC(), l.TicketID, l.ProblemID,
			l.Team, l.State, l.Error, l.Attempts, l.UpdatedAt.UTC()); err != nil {
			return fmt.Errorf("clickhouse: append ticket link %s: %w", l.ReportID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d ticket links: %w", len(links), err)
	}
	return nil
}

func scanLink(rows interface{ Scan(...any) error }) (*bugreport.TicketLink, error) {
	var l bugreport.TicketLink
	var id uuid.UUID
	var version uint64
	if err := rows.Scan(&id, &version, &l.Project, &l.ReportedAt, &l.TicketID, &l.ProblemID, &l.Team, &l.State, &l.Error, &l.Attempts, &l.UpdatedAt); err != nil {
		return nil, err
	}
	l.ReportID = bugreport.UUID(id)
	l.ReportedAt = l.ReportedAt.UTC()
	l.UpdatedAt = l.UpdatedAt.UTC()
	return &l, nil
}

// SaveTicketStatus records the ticket's Zendesk status as of at (Zendesk's
// updated_at); an older status never replaces a newer one.
func (db *DB) SaveTicketStatus(ctx context.Context, l *bugreport.TicketLink, status string, at time.Time) error {
	return db.SaveTicketStatuses(ctx, []bugreport.TicketStatus{{Link: l, Status: status, At: at}})
}

// SaveTicketStatuses records several statuses in one insert.
func (db *DB) SaveTicketStatuses(ctx context.Context, ss []bugreport.TicketStatus) error {
	if len(ss) == 0 {
		return nil
	}
	batch, err := db.conn.PrepareBatch(ctx, "INSERT INTO ticket_status (report_id, version, project, reported_at, ticket_id, status, updated_at)")
	if err != nil {
		return fmt.Errorf("clickhouse: prepare ticket status insert: %w", err)
	}
	defer func() { _ = batch.Abort() }()
	for _, s := range ss {
		l := s.Link
		if err := batch.Append(uuid.UUID(l.ReportID), uint64(s.At.UnixNano()), l.Project, l.ReportedAt.UTC(), l.TicketID, s.Status, s.At.UTC()); err != nil {
			return fmt.Errorf("clickhouse: append ticket status %s: %w", l.ReportID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d ticket statuses: %w", len(ss), err)
	}
	return nil
}

// TicketLink returns the latest link of a report, with its ticket's
// status, or ErrNotFound.
func (db *DB) TicketLink(ctx context.Context, id bugreport.UUID) (*bugreport.TicketLink, error) {
	links, err := db.queryLinks(ctx, "ticket link", "SELECT "+linkColumns+" FROM ticket_links FINAL PREWHERE report_id = ? LIMIT 1", uuid.UUID(id))
	if err != nil {
		return nil, err
	}
	if len(links) == 0 {
		return nil, ErrNotFound
	}
	if err := db.fillStatus(ctx, links); err != nil {
		return nil, err
	}
	return links[0], nil
}

// TicketLinks returns the latest links of several reports, with their
// tickets' status, in one query; reports without a link are absent.
func (db *DB) TicketLinks(ctx context.Context, ids []bugreport.UUID) (map[bugreport.UUID]*bugreport.TicketLink, error) {
	out := map[bugreport.UUID]*bugreport.TicketLink{}
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = id.String()
	}
	links, err := db.queryLinks(ctx, "ticket links", "SELECT "+linkColumns+" FROM ticket_links FINAL PREWHERE has(?, toString(report_id))", keys)
	if err != nil {
		return nil, err
	}
	if err := db.fillStatus(ctx, links); err != nil {
		return nil, err
	}
	for _, l := range links {
		out[l.ReportID] = l
	}
	return out, nil
}

// fillStatus sets the Status of each link from ticket_status.
func (db *DB) fillStatus(ctx context.Context, links []*bugreport.TicketLink) error {
	if len(links) == 0 {
		return nil
	}
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.ReportID.String()
	}
	// The driver binds a slice as an array literal, which 18.16's IN
	// refuses; has() takes it.
	rows, err := db.conn.Query(ctx, "SELECT report_id, status FROM ticket_status FINAL PREWHERE has(?, toString(report_id))", ids)
	if err != nil {
		return fmt.Errorf("clickhouse: ticket status: %w", err)
	}
	defer rows.Close()
	status := map[bugreport.UUID]string{}
	for rows.Next() {
		var id uuid.UUID
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			return fmt.Errorf("clickhouse: ticket status: %w", err)
		}
		status[bugreport.UUID(id)] = s
	}
	for _, l := range links {
		l.Status = status[l.ReportID]
	}
	return rows.Err()
}

func (db *DB) queryLinks(ctx context.Context, what, query string, args ...any) ([]*bugreport.TicketLink, error) {
	rows, err := db.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*bugreport.TicketLink
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %s: %w", what, err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ReportsToTicket returns reports that should have a ticket by now and do
// not: routed, not spam, received between lookback and grace ago, with no
// link at all, or a link stuck in "ticketed" (the note is missing) for
// longer than grace. This is the work any instance's reconciler may take.
func (db *DB) ReportsToTicket(ctx context.Context, now time.Time, grace, lookback time.Duration, limit int) ([]bugreport.UUID, error) {
	from, to := now.Add(-lookback).UTC(), now.Add(-grace).UTC()
	var out []bugreport.UUID
	seen := map[bugreport.UUID]bool{}
	collect := func(what, query string, args ...any) error {
		rows, err := db.conn.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("clickhouse: %s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			if u := bugreport.UUID(id); !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
		return rows.Err()
	}
	if err := collect("reports without ticket", `SELECT report_id FROM bug_reports FINAL
WHERE received_at >= ? AND received_at < ? AND spam = 0 AND team != ''
  AND report_id NOT IN (SELECT report_id FROM ticket_links WHERE reported_at >= ?)
ORDER BY received_at LIMIT ?`, from, to, from.Add(-24*time.Hour), limit); err != nil {
		return nil, err
	}
	if err := collect("unfinished ticket links", `SELECT report_id FROM ticket_links FINAL
WHERE reported_at >= ? AND state = ? AND updated_at < ?
ORDER BY updated_at LIMIT ?`, from.Add(-24*time.Hour), bugreport.SyncTicketed, to, limit); err != nil {
		return nil, err
	}
	return out, nil
}

// ProblemTicket returns the ticket of the earliest other report of the same
// project and fingerprint since the given time that has a ticket of its own
// (not an incident of another), or 0.
func (db *DB) ProblemTicket(ctx context.Context, project, fingerprint string, since time.Time, exclude bugreport.UUID) (int64, error) {
	if fingerprint == "" {
		return 0, nil
	}
	links, err := db.queryLinks(ctx, "problem ticket", "SELECT "+linkColumns+` FROM ticket_links FINAL
WHERE project = ? AND reported_at >= ? AND ticket_id > 0 AND problem_id = 0 AND report_id != ?
  AND report_id IN (SELECT report_id FROM bug_reports WHERE project = ? AND fingerprint = ? AND reported_at >= ?)
ORDER BY reported_at, ticket_id LIMIT 1`, project, since.UTC(), uuid.UUID(exclude), project, fingerprint, since.UTC())
	if err != nil || len(links) == 0 {
		return 0, err
	}
	return links[0].TicketID, nil
}

// OpenTicketLinks returns links of reports since the given time whose
// ticket is not closed, newest reports first, with their status.
func (db *DB) OpenTicketLinks(ctx context.Context, since time.Time, limit int) ([]*bugreport.TicketLink, error) {
	links, err := db.queryLinks(ctx, "open tickets", "SELECT "+linkColumns+` FROM ticket_links FINAL
WHERE reported_at >= ? AND ticket_id > 0 AND state IN (?, ?)
  AND report_id NOT IN (SELECT report_id FROM ticket_status FINAL WHERE reported_at >= ? AND status = 'closed')
ORDER BY reported_at DESC LIMIT ?`, since.UTC(), bugreport.SyncTicketed, bugreport.SyncSynced, since.UTC(), limit)
	if err != nil {
		return nil, err
	}
	return links, db.fillStatus(ctx, links)
}

// Thread returns a report's conversation, oldest first: each message and
// status change once, however often it was stored.
func (db *DB) Thread(ctx context.Context, project string, id bugreport.UUID, reportedAt time.Time) ([]bugreport.Message, error) {
	rows, err := db.conn.Query(ctx, `SELECT uuid, properties FROM events
WHERE project = ? AND event IN (?, ?) AND timestamp >= ? AND visitParamExtractString(properties, 'report_id') = ?
LIMIT 10000`, project, bugreport.EventBugReportMessage, bugreport.EventBugReportStatus, reportedAt.Add(-time.Hour).UTC(), id.String())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: thread: %w", err)
	}
	defer rows.Close()
	seen := map[uuid.UUID]bool{}
	var out []bugreport.Message
	for rows.Next() {
		var u uuid.UUID
		var props string
		if err := rows.Scan(&u, &props); err != nil {
			return nil, fmt.Errorf("clickhouse: thread: %w", err)
		}
		if seen[u] {
			continue
		}
		seen[u] = true
		var m bugreport.Message
		if json.Unmarshal([]byte(props), &m) != nil {
			continue
		}
		out = append(out, m)
	}
	// Zendesk times have whole seconds: within one, comments come in id
	// order and a status change after the comment that caused it.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if (a.Kind == "status") != (b.Kind == "status") {
			return b.Kind == "status"
		}
		return a.CommentID < b.CommentID
	})
	return out, rows.Err()
}
