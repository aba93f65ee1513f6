package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU accounting for the compare and kill scenarios. This kernel counts
// CPU time by ticks (CONFIG_TICK_CPU_ACCOUNTING, no IRQ time accounting):
// softirq work is charged to whichever task was running when it ran. With
// veth pairs that is mostly the sender: the client's connect() and write()
// run the bridge and all three nodes' receive paths (netfilter included) in
// softirq on their way out, and nginx's writes run the client's. So a
// filter's cost shows up in the client's and nginx's system time, not in
// the agents'; the honest per-request figure is the sum over every process
// of the lab plus ksoftirqd, and the whole machine's busy time next to it.

// userHZ is the unit of /proc/PID/stat and /proc/stat times.
const userHZ = 100

// procTimes returns a process's user and system CPU time in seconds (all
// its threads, from /proc/PID/stat); ok is false if it is gone.
func procTimes(pid int) (user, sys float64, ok bool) {
	f, ok := procStatFields(pid)
	if !ok || len(f) < 13 {
		return 0, 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return u / userHZ, s / userHZ, true
}

// procStatFields returns the fields of /proc/PID/stat after the command
// name: f[0] is the state (field 3), f[1] the parent PID.
func procStatFields(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// procStartTicks is field 22 of /proc/PID/stat: when the process started,
// which tells it from a later process with the same PID.
func procStartTicks(pid int) (uint64, bool) {
	f, ok := procStatFields(pid)
	if !ok || len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// childrenOf lists the PIDs whose parent is pid (nginx's workers).
func childrenOf(pid int) []int {
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		if err != nil {
			continue
		}
		f, ok := procStatFields(n)
		if ok && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// ksoftirqdPIDs lists the ksoftirqd/N kernel threads: softirq work the
// kernel deferred to them is nobody else's time.
func ksoftirqdPIDs() []int {
	ents, _ := filepath.Glob("/proc/[0-9]*/comm")
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil || !strings.HasPrefix(string(b), "ksoftirqd/") {
			continue
		}
		if n, err := strconv.Atoi(filepath.Base(filepath.Dir(e))); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// machineCPU is the first line of /proc/stat in seconds: busy is every
// non-idle, non-iowait column; softirq is the ticks spent in softirq.
type machineCPU struct {
	Busy, Softirq, Total float64
}

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}
	}
	var v [8]float64
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i+1], 64)
		v[i] /= userHZ
	}
	// user nice system idle iowait irq softirq steal
	m := machineCPU{Busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7], Softirq: v[6]}
	for _, x := range v {
		m.Total += x
	}
	return m
}

func (m machineCPU) sub(o machineCPU) machineCPU {
	return machineCPU{Busy: m.Busy - o.Busy, Softirq: m.Softirq - o.Softirq, Total: m.Total - o.Total}
}

// cpuSample is the CPU time (user, sys) of named processes at one moment.
type cpuSample map[string][2]float64

// add reads pid's times under name (summed if the name repeats).
func (s cpuSample) add(name string, pid int) {
	if pid <= 0 {
		return
	}
	u, sy, ok := procTimes(pid)
	if !ok {
		return
	}
	v := s[name]
	s[name] = [2]float64{v[0] + u, v[1] + sy}
}

// delta returns after - before per name, for names present in both.
func (s cpuSample) delta(before cpuSample) cpuSample {
	out := cpuSample{}
	for k, a := range s {
		b, ok := before[k]
		if !ok {
			continue
		}
		out[k] = [2]float64{max(0, a[0]-b[0]), max(0, a[1]-b[1])}
	}
	return out
}

// sum adds user+sys of the names with prefix ("" for all).
func (s cpuSample) sum(prefix string) float64 {
	var t float64
	for k, v := range s {
		if strings.HasPrefix(k, prefix) {
			t += v[0] + v[1]
		}
	}
	return t
}
