//go:build !linux

package oidctest

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere the cleanup alone
// stops the server.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// procState: only Linux has /proc to describe the process with.
func procState(int) string { return "state unknown" }
