//go:build !linux

package redisproc

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// Stop alone ends the server.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
