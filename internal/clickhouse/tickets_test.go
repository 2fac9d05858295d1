package clickhouse

import (
	"testing"
	"time"

	"github.com/arubug/arubug/internal/bugreport"
)

func TestTicketLinksLatestVersionWithStatus(t *testing.T) {
	db, ctx := migrated(t)
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	a, b, none := bugreport.UUID{0xa}, bugreport.UUID{0xb}, bugreport.UUID{0xc}
	la := &bugreport.TicketLink{ReportID: a, Project: "p", ReportedAt: at, TicketID: 1, State: bugreport.SyncTicketed}
	lb := &bugreport.TicketLink{ReportID: b, Project: "p", ReportedAt: at, State: bugreport.SyncFailed, Error: "group missing"}
	if err := db.SaveTicketLinks(ctx, []*bugreport.TicketLink{la, lb}); err != nil {
		t.Fatal(err)
	}
	la2 := *la
	la2.State = bugreport.SyncSynced
	if err := db.SaveTicketLink(ctx, &la2); err != nil {
		t.Fatal(err)
	}
	// A late delivery of an older status must not win.
	if err := db.SaveTicketStatuses(ctx, []bugreport.TicketStatus{{Link: la, Status: "solved", At: at.Add(2 * time.Hour)}, {Link: la, Status: "open", At: at.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.TicketLinks(ctx, []bugreport.UUID{a, b, none})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a] == nil || got[b] == nil {
		t.Fatalf("links %v, want a and b", got)
	}
	if got[a].State != bugreport.SyncSynced || got[a].Status != "solved" || got[a].TicketID != 1 {
		t.Errorf("a = %+v, want synced, solved, ticket 1", got[a])
	}
	if got[b].State != bugreport.SyncFailed || got[b].Error != "group missing" || got[b].Status != "" {
		t.Errorf("b = %+v", got[b])
	}
	one, err := db.TicketLink(ctx, a)
	if err != nil || one.Status != "solved" || one.State != bugreport.SyncSynced {
		t.Errorf("TicketLink(a) = %+v, %v", one, err)
	}
	if _, err := db.TicketLink(ctx, none); bugreport.ErrorCode(err) != bugreport.ENOTFOUND {
		t.Errorf("TicketLink(none) error %v, want not found", err)
	}
}
