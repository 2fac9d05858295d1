package localch

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		// A process group of its own keeps the terminal's Ctrl-C away from the
		// server, so the parent can flush and stop it in order.
		Setpgid: true,
		// The kernel kills the server when the thread that started it dies,
		// so a crashed or kill -9'ed parent never leaves a server behind. The
		// starting goroutine stays locked to that thread while the server runs
		// (see startProcess), otherwise a Go runtime thread exit would fire it.
		Pdeathsig: syscall.SIGKILL,
	}
}
