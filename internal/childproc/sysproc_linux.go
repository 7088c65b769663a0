package childproc

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// sysProcAttr: a child gets its own process group, so that a Ctrl-C in the
// terminal reaches only the parent, which then stops it by PID; and the
// kernel kills it if the parent dies without doing so.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// Activity describes what a process is doing (its scheduler state, the
// kernel function it waits in, CPU ticks used), for the message of a start
// that timed out.
func Activity(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err.Error()
	}
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	// Fields after the command name: state is the 3rd, utime and stime the 14th and 15th.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return "stat: " + string(stat)
	}
	return fmt.Sprintf("state %s, waiting in %q, utime %s stime %s ticks", f[0], wchan, f[11], f[12])
}
