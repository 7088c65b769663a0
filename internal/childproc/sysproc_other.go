//go:build !linux

package childproc

import "syscall"

// sysProcAttr: a child gets its own process group; only Linux can tie a
// child's life to its parent's, so elsewhere the parent's Stop alone ends it.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// Activity: only Linux has /proc to describe the process with.
func Activity(int) string { return "state unknown" }
