//go:build !linux

package e2e

import "syscall"

// sysProcAttr: only Linux can have a child killed when its parent dies; elsewhere the
// cleanups alone stop the processes.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}

// killBrowser: elsewhere the browser is left to Playwright, which closes it when the script
// exits.
func killBrowser(int) {}
