package outbox

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestPutIsIdempotentAndSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, err := Open(path, Options{MaxItems: 3})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		item      Item
		wantAdded bool
		wantErr   error
	}{
		{Item{Key: "b", Due: t0.Add(2 * time.Second), Data: []byte("B")}, true, nil},
		{Item{Key: "a", Due: t0.Add(time.Second), Data: []byte("A")}, true, nil},
		{Item{Key: "a", Due: t0, Data: []byte("other")}, false, nil}, // already queued: unchanged
		{Item{Key: "c", Due: t0.Add(time.Hour), Data: []byte("C")}, true, nil},
		{Item{Key: "d", Due: t0, Data: []byte("D")}, false, ErrFull},
	} {
		added, err := ob.Put(tc.item)
		if added != tc.wantAdded || !errors.Is(err, tc.wantErr) {
			t.Fatalf("Put(%s) = %v, %v; want %v, %v", tc.item.Key, added, err, tc.wantAdded, tc.wantErr)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	ob, err = Open(path, Options{MaxItems: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if ob.Len() != 3 {
		t.Fatalf("after reopen Len = %d, want 3", ob.Len())
	}
	due, err := ob.Due(t0.Add(time.Minute), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0].Key != "a" || string(due[0].Data) != "A" || due[1].Key != "b" {
		t.Fatalf("Due = %+v, want a then b", due)
	}
	due, _ = ob.Due(t0.Add(time.Minute), 10, func(k string) bool { return k == "a" })
	if len(due) != 1 || due[0].Key != "b" {
		t.Fatalf("Due with skip = %+v, want only b", due)
	}
	if err := ob.Update(Item{Key: "a", Due: t0.Add(2 * time.Hour), Data: []byte("A2")}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if due, _ := ob.Due(t0.Add(time.Minute), 10, nil); len(due) != 0 {
		t.Fatalf("Due after update and delete = %+v, want none", due)
	}
	it, ok, err := ob.Get("a")
	if err != nil || !ok || string(it.Data) != "A2" || !it.Due.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("Get(a) = %+v %v %v", it, ok, err)
	}
	if next, ok := ob.Next(); !ok || !next.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Next = %v %v, want c's due time", next, ok)
	}
}
