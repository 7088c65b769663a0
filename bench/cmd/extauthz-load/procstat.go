package main

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// procTimes is a process's CPU time so far (utime+stime, every thread), in
// clock ticks, from /proc/PID/stat.
func procTimes(pid int) (uint64, error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, err
	}
	// Fields after the command: state is f[0]; utime is field 14 of the
	// whole line, f[11] here; stime is f[12].
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ut + st, nil
}

// procStartTime is field 22 (starttime), which tells a process from a later
// one that reuses its PID.
func procStartTime(pid int) (uint64, error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// procStatFields returns the fields of /proc/PID/stat after "(comm)", which
// may itself contain spaces and parentheses.
func procStatFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// procMemory returns VmHWM (peak RSS) and VmRSS in bytes.
func procMemory(pid int) (peak, cur int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM":
			peak = parseKB(v)
		case "VmRSS":
			cur = parseKB(v)
		}
	}
	if peak == 0 && cur == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmHWM/VmRSS", pid)
	}
	return peak, cur, sc.Err()
}

func parseKB(v string) int64 {
	fs := strings.Fields(v)
	if len(fs) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(fs[0], 10, 64)
	return n * 1024
}

// pidGone reports whether the process started as pid (with that starttime)
// no longer exists: no /proc entry, a zombie already reaped, or another
// process that has since taken the PID.
func pidGone(pid int, start uint64) bool {
	st, err := procStartTime(pid)
	if err != nil {
		return true
	}
	return st != start
}

// clockTicks is the kernel's USER_HZ, read from the auxiliary vector
// (AT_CLKTCK) as sysconf(_SC_CLK_TCK) does; 100 when it cannot be read.
func clockTicks() int64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil || strconv.IntSize != 64 {
		return 100
	}
	for i := 0; i+16 <= len(b); i += 16 {
		k := binary.NativeEndian.Uint64(b[i:])
		v := binary.NativeEndian.Uint64(b[i+8:])
		if k == 0 {
			break
		}
		if k == atClkTck && v > 0 {
			return int64(v)
		}
	}
	return 100
}

// Machine describes where the figures were measured.
type Machine struct {
	CPU       string
	Cores     int // logical CPUs the kernel lists
	Usable    int // CPUs this process may run on (affinity, cgroup limits aside)
	Memory    int64
	GoVersion string // the harness's
	ServerGo  string // the benchmarked binary's, "" if unknown
	Kernel    string
	ClockTick int64
	LoadStart string
	LoadEnd   string
	Redis     string
}

func machineInfo(serverPath string) Machine {
	m := Machine{GoVersion: runtime.Version(), Usable: runtime.NumCPU(), ClockTick: clockTicks()}
	var family, model string
	var cpuFlags []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPU == "" {
					m.CPU = strings.TrimSpace(v)
				}
			case "cpu family":
				if family == "" {
					family = strings.TrimSpace(v)
				}
			case "model":
				if model == "" {
					model = strings.TrimSpace(v)
				}
			case "flags":
				if cpuFlags == nil {
					// The ones that decide how fast signatures and hashes are.
					for _, f := range strings.Fields(v) {
						switch f {
						case "sha_ni", "aes", "vaes", "avx2", "avx512f", "adx", "bmi2":
							cpuFlags = append(cpuFlags, f)
						}
					}
				}
			case "processor":
				m.Cores++
			}
		}
	}
	if m.CPU == "" {
		m.CPU = runtime.GOARCH
	}
	if family != "" {
		m.CPU += fmt.Sprintf(" (family %s, model %s", family, model)
		if len(cpuFlags) > 0 {
			m.CPU += "; " + strings.Join(cpuFlags, " ")
		}
		m.CPU += ")"
	}
	if m.Cores == 0 {
		m.Cores = runtime.NumCPU()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				m.Memory = parseKB(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = runtime.GOOS + " " + strings.TrimSpace(string(b))
	} else {
		m.Kernel = runtime.GOOS
	}
	if serverPath != "" {
		if bi, err := buildinfo.ReadFile(serverPath); err == nil {
			m.ServerGo = bi.GoVersion
		}
	}
	m.LoadStart = loadAvg()
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// pidListening finds the process listening on a loopback TCP port, for
// reading an external server's CPU and memory. It needs permission to read
// that process's file descriptors; 0 when not found.
func pidListening(addr string) int {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, portHex, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(portHex, 16, 16); err == nil && int(p) == tcp.Port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, d := range dirs {
		fds, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(d, fd.Name())); err == nil && inodes[l] {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				if pid != os.Getpid() {
					return pid
				}
			}
		}
	}
	return 0
}

// machineIdle is the whole machine's idle time so far (idle and iowait)
// and its steal time (time a hypervisor gave to another guest), in clock
// ticks, from the first line of /proc/stat.
func machineIdle() (idle, steal uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	v := make([]uint64, 8)
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, err
		}
	}
	// user nice system idle iowait irq softirq steal
	return v[3] + v[4], v[7], nil
}

// procSample is every process's CPU time at one moment, by PID, with its
// start time to tell a reused PID apart.
type procSample map[int][2]uint64 // starttime, ticks

func sampleProcs() procSample {
	out := procSample{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStatFields(pid)
		if err != nil || len(f) < 20 {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		start, _ := strconv.ParseUint(f[19], 10, 64)
		out[pid] = [2]uint64{start, ut + st}
	}
	return out
}

// otherTicks is the CPU that processes other than the excluded ones used
// between two samples. A process that started in between counts in full; one
// that ended in between is missed, so this is a lower bound.
func otherTicks(before, after procSample, exclude ...int) uint64 {
	var sum uint64
	for pid, a := range after {
		if slices.Contains(exclude, pid) {
			continue
		}
		if b, ok := before[pid]; ok && b[0] == a[0] {
			if a[1] > b[1] {
				sum += a[1] - b[1]
			}
		} else {
			sum += a[1]
		}
	}
	return sum
}
