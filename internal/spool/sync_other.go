//go:build !linux

package spool

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func freeBytes(string) (int64, bool) { return 0, false }
