package redistest

import "syscall"

// sysProcAttr makes the kernel kill a started server if the test binary dies without running
// its cleanups (a panic, or go test's -timeout), so that no redis-server outlives its test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
