package e2e

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// sysProcAttr makes the kernel kill a started process if the test binary dies without
// running its cleanups (a panic, or go test's -timeout), so that none outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// killBrowser kills the browser browser.mjs launched, with its process group (Playwright
// starts it as a group leader), if it is still running: only when the script died without
// closing it. The PID is checked to still be a Chromium first.
func killBrowser(pid int) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte("chromium")) {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
