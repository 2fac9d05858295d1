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

func TestParseUUID(t *testing.T) {
	want := UUID{0x01, 0x93, 0x5f, 0x2c, 0x7a, 0x00, 0x7b, 0x12, 0x8a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"01935f2c-7a00-7b12-8abc-def012345678", false},
		{"01935F2C-7A00-7B12-8ABC-DEF012345678", false},
		{"01935f2c7a007b128abcdef012345678", true},
		{"01935f2c-7a00-7b12-8abc-def01234567g", true},
		{"01935f2c-7a00-7b12-8abc_def012345678", true},
		{"", true},
	} {
		got, err := ParseUUID(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseUUID(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && got != want {
			t.Errorf("ParseUUID(%q) = %s", tc.in, got)
		}
	}
	b, _ := want.MarshalText()
	var back UUID
	if err := back.UnmarshalText(b); err != nil || back != want {
		t.Fatalf("text round trip: %s, %v", back, err)
	}
}
