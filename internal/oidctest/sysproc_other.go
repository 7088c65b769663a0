//go:build !linux

package oidctest

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere the cleanup alone
// stops the server.
func sysProcAttr() *syscall.SysProcAttr { return nil }
