//go:build !unix

package spool

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// lockFile is a no-op where flock(2) does not exist: run one collector per
// data directory there.
func lockFile(*os.File) error { return nil }
