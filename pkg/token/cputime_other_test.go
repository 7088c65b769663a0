//go:build !unix

package token

// cpuTime is 0 where the process's CPU time is not read: benchmarks
// report no cpu-ns/op there.
func cpuTime() int64 { return 0 }
