package e2e

import "syscall"

// sysProcAttr makes the kernel kill a started process if the test binary dies without
// running its cleanups (a panic, or go test's -timeout), so that none outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
