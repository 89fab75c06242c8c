package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// Simulated hosts: loopback addresses nothing else uses (hack/soak and the controllers
// tests use 127.0.0.x), ports in a range nothing on this machine listens on (below the
// ephemeral range; the tests use 31000-32199 and 32400-32499). The operator's own /readyz
// probe of a simulated server gets "connection refused", so readiness is the Mesos health
// checks', as in hack/soak.
const (
	portBegin, portEnd = 32600, 32699
	// blackholeHostRE matches the hosts whose servers can be made unreachable: the servers
	// of the -unreachable clusters are constrained to them, every other task away from them.
	blackholeHostRE = `127\.254\.0\.[0-9]+`
	// serverHostRE matches the hosts the other clusters' servers go to, agentHostRE the
	// hosts of every agent: the bridge takes the first offer that fits and the emulator
	// offers its hosts in order, so servers pile up on the first hosts they may use (a
	// first run had 40 on 127.10.0.1, which left no room for that host's agent).
	serverHostRE = `127\.20\.0\.[0-9]+`
	agentHostRE  = `127\.10\.[0-9]+\.[0-9]+`
	// serversPerHost: 0.2 CPU and 2 ports each with the executor's share, of 8 CPUs and 100 ports.
	serversPerHost = 20
)

func hostName(i int) string { return fmt.Sprintf("127.10.%d.%d", i/250, i%250+1) }

func blackholeHost(i int) string { return fmt.Sprintf("127.254.0.%d", i+1) }

func serverHost(i int) string { return fmt.Sprintf("127.20.0.%d", i+1) }

func serverHostsFor(servers int) int { return (servers+serversPerHost-1)/serversPerHost + 1 }

// agentConfigs are n hosts for agents, s for the servers that stay reachable and b for
// those that go unreachable.
func agentConfigs(n, s, b int) []mesostest.AgentConfig {
	var out []mesostest.AgentConfig
	cfg := func(host string) mesostest.AgentConfig {
		return mesostest.AgentConfig{Hostname: host, CPUs: 8, MemMiB: 8192, DiskMiB: 65536,
			Ports: []mesostest.PortRange{{Begin: portBegin, End: portEnd}}}
	}
	for i := range n {
		out = append(out, cfg(hostName(i)))
	}
	for i := range s {
		out = append(out, cfg(serverHost(i)))
	}
	for i := range b {
		out = append(out, cfg(blackholeHost(i)))
	}
	return out
}

// callCounter is the emulator's Logger: it counts the scheduler calls the emulator logs
// (at V(1), "call" with the call's type) and writes every other message to a file.
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int64
	out    *bufio.Writer
	file   io.Closer
}

func newCallCounter(path string) (*callCounter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &callCounter{counts: map[string]int64{}, out: bufio.NewWriterSize(f, 1<<16), file: f}, nil
}

func (c *callCounter) logger() logr.Logger { return logr.New(&callSink{c: c}) }

// snapshot copies the counts so far.
func (c *callCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *callCounter) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.out.Flush()
	_ = c.file.Close()
}

type callSink struct {
	c      *callCounter
	name   string
	values []any
}

func (s *callSink) Init(logr.RuntimeInfo)  {}
func (s *callSink) Enabled(level int) bool { return level <= 1 }
func (s *callSink) Info(level int, msg string, kv ...any) {
	if msg == "call" {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "type" {
				t, _ := kv[i+1].(string)
				s.c.mu.Lock()
				s.c.counts[t]++
				s.c.mu.Unlock()
				return
			}
		}
		return
	}
	if level > 0 {
		return
	}
	s.write("", msg, kv)
}
func (s *callSink) Error(err error, msg string, kv ...any) {
	s.write("ERROR ", msg+": "+err.Error(), kv)
}
func (s *callSink) write(prefix, msg string, kv []any) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s%s", time.Now().Format("15:04:05.000"), prefix, s.name, msg)
	for _, list := range [][]any{s.values, kv} {
		for i := 0; i+1 < len(list); i += 2 {
			fmt.Fprintf(&b, " %v=%v", list[i], list[i+1])
		}
	}
	b.WriteByte('\n')
	s.c.mu.Lock()
	_, _ = s.c.out.WriteString(b.String())
	s.c.mu.Unlock()
}
func (s *callSink) WithValues(kv ...any) logr.LogSink {
	return &callSink{c: s.c, name: s.name, values: append(append([]any{}, s.values...), kv...)}
}
func (s *callSink) WithName(name string) logr.LogSink {
	return &callSink{c: s.c, name: s.name + name + ": ", values: s.values}
}

// callsBetween is the calls made between two snapshots, by type, and their total.
func callsBetween(a, b map[string]int64) (map[string]int64, int64) {
	out := map[string]int64{}
	var total int64
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = d
			total += d
		}
	}
	return out, total
}

func formatCalls(m map[string]int64, minutes float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, float64(m[k])/minutes))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// blackhole makes the servers on the blackhole hosts unreachable the way a hung host or
// a dropped route looks to a client: TCP connections to every port of those hosts are
// accepted and then never answered, so the operator's probe (TLS handshake, then
// /readyz) waits for its timeout. Before it starts, and after it stops, those ports
// refuse connections like every other simulated host's.
type blackhole struct {
	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]bool
	accepted  int
	wg        sync.WaitGroup
}

func startBlackhole(hosts int) (*blackhole, error) {
	b := &blackhole{conns: map[net.Conn]bool{}}
	for i := range hosts {
		for p := portBegin; p <= portEnd; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", blackholeHost(i), p))
			if err != nil {
				b.stop()
				return nil, err
			}
			b.listeners = append(b.listeners, l)
			b.wg.Add(1)
			go b.serve(l)
		}
	}
	return b, nil
}

func (b *blackhole) serve(l net.Listener) {
	defer b.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = true
		b.accepted++
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_, _ = io.Copy(io.Discard, c) // read, never answer, until the client gives up
			c.Close()
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
		}()
	}
}

func (b *blackhole) count() (accepted, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted, len(b.conns)
}

func (b *blackhole) stop() {
	if b == nil {
		return
	}
	for _, l := range b.listeners {
		l.Close()
	}
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// synDrop makes the servers on the blackhole hosts unreachable the way a dropped route
// does: sockets listen on every port of those hosts with a backlog of 0 and never accept,
// so once one connection sits in the accept queue the kernel drops every further SYN and
// the operator's dial waits for its timeout. (The first connection to each port is
// completed by the kernel and then never answered, as with blackhole.)
type synDrop struct{ fds []int }

func startSynDrop(hosts int) (*synDrop, error) {
	s := &synDrop{}
	for i := range hosts {
		ip := net.ParseIP(blackholeHost(i)).To4()
		for p := portBegin; p <= portEnd; p++ {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				s.stop()
				return nil, err
			}
			s.fds = append(s.fds, fd)
			_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			sa := &syscall.SockaddrInet4{Port: p}
			copy(sa.Addr[:], ip)
			if err := syscall.Bind(fd, sa); err != nil {
				s.stop()
				return nil, fmt.Errorf("bind %s:%d: %w", ip, p, err)
			}
			if err := syscall.Listen(fd, 0); err != nil {
				s.stop()
				return nil, err
			}
		}
	}
	return s, nil
}

func (s *synDrop) stop() {
	if s == nil {
		return
	}
	for _, fd := range s.fds {
		_ = syscall.Close(fd)
	}
	s.fds = nil
}
