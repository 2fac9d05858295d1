package clickhouse

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
)

func TestSaveReportSharesInsertsBetweenConcurrentCalls(t *testing.T) {
	db, ctx := migrated(t)
	const n = 60
	now := time.Now().UTC().Truncate(time.Second)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r := &bugreport.Report{ID: bugreport.UUID{0xab, byte(i)}, Project: "shop", ReportedAt: now, ReceivedAt: now,
				Title: "t", Fingerprint: "fp", SimilarCount: uint64(i), Route: bugreport.RouteDecision{Team: "platform"}}
			errs[i] = db.SaveReport(ctx, r, "rules")
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Every call returned after its row was stored.
	var rows, unique uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count(), uniqExact(report_id) FROM bug_reports WHERE project = 'shop'").Scan(&rows, &unique); err != nil {
		t.Fatal(err)
	}
	if rows != n || unique != n {
		t.Errorf("stored %d rows of %d reports, want %d", rows, unique, n)
	}
	got, err := db.Report(ctx, bugreport.UUID{0xab, 7})
	if err != nil || got.SimilarCount != 7 || got.RouteSource != "rules" {
		t.Errorf("report 7: %+v, %v", got, err)
	}
	// The batcher is idle again, and a later lone save still works.
	if err := db.SaveReport(ctx, &bugreport.Report{ID: bugreport.UUID{0xab, 0xff}, Project: "shop", ReportedAt: now, ReceivedAt: now}, "manual"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Report(ctx, bugreport.UUID{0xab, 0xff}); err != nil || got.RouteSource != "manual" {
		t.Errorf("lone save: %+v, %v", got, err)
	}
}

func TestSaveReportReturnsWhenTheCallerGivesUp(t *testing.T) {
	db := open(t)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := db.SaveReport(ctx, &bugreport.Report{ID: bugreport.UUID{0xac}, Project: "shop", ReportedAt: time.Now(), ReceivedAt: time.Now()}, "rules")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("SaveReport with a cancelled context: %v, want context.Canceled", err)
	}
}
