package mesostest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Emulated agents share one machine, but a real Mesos agent is a host of its own: its own
// address, ports nobody else binds, its own iptables and links. An agent with
// AgentConfig.OwnHost gets that from a network namespace joined by a veth pair to a bridge
// of the emulator's, with an address of its own that is also its host name in offers. The
// processes of its tasks run in that namespace, health checks included, so
// several agents can run programs that insist on fixed ports or rewrite iptables (a K3s
// agent's kube-proxy, flannel) side by side, and a test can cut a host off.

// hostNet is the emulator's bridge and the subnet its hosts live in.
type hostNet struct {
	id     string // short and unique: names the bridge, namespaces and veths
	bridge string
	prefix string // e.g. "10.231.17": hosts are prefix.2, prefix.3, ...
	hosts  []*host
}

// host is one agent's network namespace.
type host struct {
	netns string
	veth  string
	ip    string
}

// hostNetLocked is the emulator's bridge, created on first use.
func (s *Server) hostNetLocked() (*hostNet, error) {
	if s.hostNet != nil {
		return s.hostNet, nil
	}
	n := &hostNet{id: s.instance[:4]}
	// 10.200.0.0/13 holds the subnets; a random free one keeps emulators apart.
	for try := 0; ; try++ {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		n.prefix = fmt.Sprintf("10.%d.%d", 200+int(b[0]%8), b[1])
		out, err := exec.Command("ip", "-o", "route", "show", "to", "exact", n.prefix+".0/24").Output()
		if err == nil && len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if try == 20 {
			return nil, fmt.Errorf("no free subnet in 10.200.0.0/13 for the emulated hosts")
		}
	}
	n.bridge = "mtbr" + n.id
	if err := run("ip", "link", "add", n.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := firstErr(run("ip", "addr", "add", n.prefix+".1/24", "dev", n.bridge), run("ip", "link", "set", n.bridge, "up")); err != nil {
		_ = run("ip", "link", "del", n.bridge)
		return nil, err
	}
	s.hostNet = n
	return n, nil
}

// addHostLocked gives an agent a host of its own; it returns the host's address.
func (s *Server) addHostLocked(n int) (*host, error) {
	net, err := s.hostNetLocked()
	if err != nil {
		return nil, err
	}
	if len(net.hosts) > 250 {
		return nil, fmt.Errorf("at most 250 own hosts per emulator")
	}
	h := &host{
		netns: fmt.Sprintf("mt%s-%d", net.id, n),
		veth:  fmt.Sprintf("mtv%s%d", net.id, n),
		ip:    fmt.Sprintf("%s.%d", net.prefix, len(net.hosts)+2),
	}
	steps := [][]string{
		{"ip", "netns", "add", h.netns},
		{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
		{"ip", "link", "set", h.veth, "master", net.bridge, "up"},
		{"ip", "-n", h.netns, "addr", "add", h.ip + "/24", "dev", "eth0"},
		{"ip", "-n", h.netns, "link", "set", "eth0", "up"},
		{"ip", "-n", h.netns, "link", "set", "lo", "up"},
		{"ip", "-n", h.netns, "route", "add", "default", "via", net.prefix + ".1"},
	}
	for _, st := range steps {
		if err := run(st[0], st[1:]...); err != nil {
			h.remove()
			return nil, err
		}
	}
	net.hosts = append(net.hosts, h)
	return h, nil
}

// start starts cmd in the host's network namespace (in the emulator's own when h is nil).
// A child is forked from the calling thread and has that thread's namespaces: the fork runs
// on a thread locked into the host's namespace for the time being. The command's argv and
// pid are its own (nothing like nsenter in between).
func (h *host) start(cmd *exec.Cmd) error {
	if h == nil {
		return cmd.Start()
	}
	return h.inNamespace(cmd.Start)
}

// inNamespace runs f on a thread in the host's network namespace, then puts the thread
// back into the emulator's own namespace. The thread must not simply exit (as a locked
// thread does when its goroutine ends): a child forked earlier from that very thread with
// Pdeathsig (an operator the playground started, say) would be killed with it.
func (h *host) inNamespace(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer own.Close()
		ns, err := os.Open("/run/netns/" + h.netns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns %s: %v", h.netns, err)
			return
		}
		err = f()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // back home: the thread may serve anyone again
		} // else the thread stays locked and goes with the goroutine
		done <- err
	}()
	return <-done
}

// dial connects from inside the host's network namespace (from the emulator's own when h
// is nil), as mesos-tcp-connect does after entering the task's namespace: a socket stays
// in the namespace it was made in.
func (h *host) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if h == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	var conn net.Conn
	err := h.inNamespace(func() (err error) {
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}

func (h *host) remove() {
	_ = run("ip", "netns", "del", h.netns) // the veth pair and everything inside go with it
	_ = run("ip", "link", "del", h.veth)
}

// closeHostsLocked removes every host and the bridge.
func (s *Server) closeHostsLocked() {
	if s.hostNet == nil {
		return
	}
	for _, h := range s.hostNet.hosts {
		h.remove()
	}
	_ = run("ip", "link", "del", s.hostNet.bridge)
	s.hostNet = nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// canMakeHosts reports whether this process can create network namespaces.
func canMakeHosts() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("own hosts need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("own hosts need iproute2: %v", err)
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		return fmt.Errorf("own hosts need nsenter (util-linux): %v", err)
	}
	return nil
}
