//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// the harness's own stop is the only one.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
