//go:build unix

package token

import "syscall"

// cpuTime is the process's CPU time so far (user and system, every
// thread), in nanoseconds; 0 where it cannot be read.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
