package bugreport

import (
	"errors"
	"fmt"
	"testing"
)

func TestUUIDString(t *testing.T) {
	u := UUID{0x01, 0x90, 0xa6, 0xb2, 0x7c, 0x3e, 0x7d, 0x4f, 0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x6a, 0x7b}
	if got := u.String(); got != "0190a6b2-7c3e-7d4f-9a1b-2c3d4e5f6a7b" {
		t.Errorf("String() = %s", got)
	}
	if u.IsZero() || !(UUID{}).IsZero() {
		t.Error("IsZero")
	}
}

func TestErrorCode(t *testing.T) {
	e := Errorf(EINVALID, "bad_thing", "thing %d is bad", 3)
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{e, EINVALID},
		{fmt.Errorf("wrapped: %w", e), EINVALID},
		{errors.New("plain"), EINTERNAL},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if e.Error() != "bad_thing: thing 3 is bad" {
		t.Errorf("Error() = %q", e.Error())
	}
}
