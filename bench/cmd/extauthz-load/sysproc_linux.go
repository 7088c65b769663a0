package main

import "syscall"

// sysProcAttr: a server gets its own process group, so a Ctrl-C reaches
// only the harness, which then stops it by PID; and the kernel kills it if
// the harness dies without doing so.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
