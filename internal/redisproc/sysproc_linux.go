package redisproc

import "syscall"

// sysProcAttr: the kernel kills the server if its parent dies without
// stopping it (SIGKILL, a crash), and a Ctrl-C in the terminal reaches only
// the parent, which then stops the server itself.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
