//go:build unix && !linux

package localch

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// No Pdeathsig outside Linux: a crashed parent may leave the server
	// running there, and the next Start reports it via ErrDataDirInUse.
	return &syscall.SysProcAttr{Setpgid: true}
}
