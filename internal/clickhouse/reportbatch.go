package clickhouse

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
)

// reportInsertTimeout bounds one shared insert of reports. It does not
// depend on any one caller's context, since the insert serves several.
const reportInsertTimeout = 30 * time.Second

// maxReportBatch bounds the rows of one report insert.
const maxReportBatch = 500

// reportBatcher shares bug_reports inserts between concurrent SaveReport
// calls (group commit). One insert is in flight at a time; the rows that
// arrive meanwhile go together in the next one. A lone report is inserted at
// once, so there is no added wait when reports are few, and when many are
// triaged together (a burst, the reconciler's backlog) ClickHouse gets one
// insert per round trip instead of one per report: each insert makes a part
// (two files per column) that the server must write and later merge.
type reportBatcher struct {
	mu      sync.Mutex
	queue   []*pendingReport
	running bool // a goroutine is inserting the queue
}

type pendingReport struct {
	id   bugreport.UUID
	row  []any
	done chan error // buffered: the inserter never blocks on a caller gone
}

// save queues row and waits until it is inserted, or ctx ends (the row may
// still be inserted then: saving a version twice is harmless).
func (b *reportBatcher) save(ctx context.Context, db *DB, id bugreport.UUID, row []any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("clickhouse: insert report %s: %w", id, err)
	}
	p := &pendingReport{id: id, row: row, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.run(db)
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("clickhouse: insert report %s: %w", id, ctx.Err())
	}
}

// run inserts the queue until it is empty.
func (b *reportBatcher) run(db *DB) {
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxReportBatch)
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		if n == 0 {
			b.queue = nil
			b.running = false
		}
		b.mu.Unlock()
		if n == 0 {
			return
		}
		db.insertReports(batch)
	}
}

// insertReports inserts the rows of batch in one insert and tells each
// caller the outcome. A row the driver refuses fails alone.
func (db *DB) insertReports(batch []*pendingReport) {
	ctx, cancel := context.WithTimeout(context.Background(), reportInsertTimeout)
	defer cancel()
	for len(batch) > 0 {
		ins, err := db.conn.PrepareBatch(ctx, "INSERT INTO bug_reports ("+reportColumns+")")
		if err != nil {
			finish(batch, fmt.Errorf("clickhouse: prepare report insert: %w", err))
			return
		}
		bad := -1
		for i, p := range batch {
			if err := ins.Append(p.row...); err != nil {
				p.done <- fmt.Errorf("clickhouse: append report %s: %w", p.id, err)
				bad = i
				break
			}
		}
		if bad >= 0 {
			// The batch may hold part of the bad row: start again without it.
			_ = ins.Abort()
			batch = append(batch[:bad:bad], batch[bad+1:]...)
			continue
		}
		err = ins.Send()
		_ = ins.Abort()
		if err != nil {
			if len(batch) == 1 {
				err = fmt.Errorf("clickhouse: insert report %s: %w", batch[0].id, err)
			} else {
				err = fmt.Errorf("clickhouse: insert %d reports: %w", len(batch), err)
			}
		}
		finish(batch, err)
		return
	}
}

func finish(batch []*pendingReport, err error) {
	for _, p := range batch {
		p.done <- err
	}
}
