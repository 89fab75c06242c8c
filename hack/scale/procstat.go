package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clkTck = 100

// procSample is what /proc says about one process at one moment.
type procSample struct {
	at       time.Time
	cpuTicks uint64 // utime + stime
	rssKiB   uint64 // VmRSS
	threads  int
	fds      int
	sockets  int
}

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name is in parentheses and may hold spaces: fields start after ")".
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	s.cpuTicks = ut + st
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			s.rssKiB, _ = strconv.ParseUint(strings.Fields(v)[0], 10, 64)
		case "Threads":
			s.threads, _ = strconv.Atoi(v)
		}
	}
	inodes, n, err := socketInodes(pid)
	if err != nil {
		return s, err
	}
	s.fds, s.sockets = n, len(inodes)
	return s, nil
}

// socketInodes are the inodes of the process's socket file descriptors, and how many
// descriptors it has.
func socketInodes(pid int) (map[string]bool, int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	out := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if strings.HasPrefix(l, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	return out, len(ents), nil
}

// tcpConn is one line of /proc/net/tcp{,6}.
type tcpConn struct {
	localPort, remotePort int
	remoteIP              string
	state                 string
}

var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
	"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

// tcpConnsOf are the TCP sockets the process holds, read from its network namespace's
// /proc/<pid>/net/tcp and tcp6 and matched by inode.
func tcpConnsOf(pid int) ([]tcpConn, error) {
	inodes, _, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var out []tcpConn
	for _, file := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			c := tcpConn{state: tcpStates[fs[3]]}
			c.localPort = hexPort(fs[1])
			c.remotePort = hexPort(fs[2])
			c.remoteIP = hexIP(fs[2])
			out = append(out, c)
		}
		f.Close()
	}
	return out, nil
}

func hexPort(addr string) int {
	_, p, _ := strings.Cut(addr, ":")
	n, _ := strconv.ParseUint(p, 16, 32)
	return int(n)
}

// hexIP decodes an IPv4 address (or an IPv4-mapped IPv6 one) of /proc/net/tcp.
func hexIP(addr string) string {
	h, _, _ := strings.Cut(addr, ":")
	if len(h) == 32 {
		h = h[24:]
	}
	if len(h) != 8 {
		return h
	}
	var b [4]uint64
	for i := range 4 {
		b[3-i], _ = strconv.ParseUint(h[2*i:2*i+2], 16, 8)
	}
	return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}
