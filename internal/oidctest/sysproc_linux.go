package oidctest

import "syscall"

// sysProcAttr makes the kernel kill the authorization server if the test binary dies without
// running its cleanups (a panic, or go test's -timeout), so that no node process outlives the
// test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
