package nodecheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// run runs a command and returns its combined output; the error names the command.
func run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// inNetns runs a command in a named network namespace (only the network namespace:
// `ip netns exec` would also remount /sys and lose the cgroup mounts below it).
func inNetns(netns, name string, args ...string) (string, error) {
	return run("nsenter", append([]string{"--net=/run/netns/" + netns, "--", name}, args...)...)
}

// waitFor polls f every 250 ms until it succeeds or the timeout passes.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// --- what the machine looked like before the test, and putting it back -------------

// hostPaths are host-global paths that agents (or iproute2) create if missing: the
// mount points of the agent task's private mounts and the iptables lock.
var hostPaths = []string{
	"/run/k3s", "/run/containerd", "/run/netns", "/run/flannel", "/var/lib/cni",
	"/etc/rancher", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers",
	"/run/xtables.lock",
}

// globalSysctls are written by the kubelet (setupKernelTunables, without
// --protect-kernel-defaults) and are NOT per network namespace; hostNetSysctls are the
// host network namespace's that K3s, kube-proxy or flannel would set if run there.
var (
	globalSysctls = []string{
		"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	}
	hostNetSysctls = []string{
		"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
		"net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables",
		"net/bridge/bridge-nf-call-ip6tables", "net/netfilter/nf_conntrack_max",
	}
)

type machineState struct {
	netns      []string
	links      []string
	paths      map[string]bool
	netnsMount bool // /run/netns is a mount point (ip netns add makes it one)
	sysctls    map[string]string
	iptables   string
	cgroupDirs []string // /sys/fs/cgroup/*/<cgroupsRoot>
}

func snapshot(t *testing.T) machineState {
	t.Helper()
	s := machineState{paths: map[string]bool{}, sysctls: map[string]string{}}
	s.netns = netnsNames()
	s.links = linkNames("")
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		s.paths[p] = err == nil
	}
	s.netnsMount = isMountPoint("/run/netns")
	for _, k := range append(slices.Clone(globalSysctls), hostNetSysctls...) {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			s.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	s.iptables = iptablesRules("")
	s.cgroupDirs, _ = filepath.Glob("/sys/fs/cgroup/*/" + cgroupsRoot)
	return s
}

func netnsNames() []string {
	entries, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// linkNames lists the interface names of a network namespace ("" = the host's).
func linkNames(netns string) []string {
	var out string
	var err error
	if netns == "" {
		out, err = run("ip", "-o", "link", "show")
	} else {
		out, err = inNetns(netns, "ip", "-o", "link", "show")
	}
	if err != nil {
		return []string{"ERROR: " + err.Error()}
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	sort.Strings(names)
	return names
}

// iptablesRules is iptables-save (IPv4 and IPv6) without counters and comments.
func iptablesRules(netns string) string {
	var b strings.Builder
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		var out string
		var err error
		if netns == "" {
			out, err = run(cmd)
		} else {
			out, err = inNetns(netns, cmd)
		}
		if err != nil {
			b.WriteString("ERROR: " + err.Error() + "\n")
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, ":") { // ":CHAIN POLICY [pkts:bytes]"
				if i := strings.LastIndex(line, " ["); i > 0 {
					line = line[:i]
				}
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func isMountPoint(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// restoreAndCompare puts back what the test changed (sysctls, mount-point directories
// and the iptables lock it created, the /run/netns mount) and reports every difference
// from the state before the test as an error.
func (before machineState) restoreAndCompare(t *testing.T) {
	t.Helper()
	for k, v := range before.sysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil && strings.TrimSpace(string(b)) != v {
			t.Logf("restoring sysctl %s: %s -> %s", strings.ReplaceAll(k, "/", "."), strings.TrimSpace(string(b)), v)
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				t.Errorf("restore sysctl %s: %v", k, err)
			}
		}
	}
	if !before.netnsMount && isMountPoint("/run/netns") && len(netnsNames()) == 0 {
		if _, err := run("umount", "/run/netns"); err != nil {
			t.Error(err)
		}
	}
	// Reverse order: children before parents (none here, but cheap to be safe).
	for i := len(hostPaths) - 1; i >= 0; i-- {
		p := hostPaths[i]
		if before.paths[p] {
			continue
		}
		if fi, err := os.Lstat(p); err == nil {
			if fi.IsDir() {
				// Only empty directories: anything inside would be a leak to report.
				if err := os.Remove(p); err != nil {
					t.Errorf("%s appeared during the test and is not empty (a leak of the test, or another user of the machine): %v", p, err)
				}
			} else if err := os.Remove(p); err != nil {
				t.Error(err)
			}
		}
	}

	// A deleted network namespace goes (with its veth, whose host end is listed here)
	// when the kernel's cleanup work runs, a moment after its last reference.
	var after machineState
	_ = waitFor(10*time.Second, func() error {
		after = snapshot(t)
		if !slices.Equal(after.links, before.links) {
			return fmt.Errorf("links differ")
		}
		return nil
	})
	if !slices.Equal(after.netns, before.netns) {
		t.Errorf("network namespaces: before %v, after %v", before.netns, after.netns)
	}
	if !slices.Equal(after.links, before.links) {
		t.Errorf("host links: before %v, after %v", before.links, after.links)
	}
	for _, p := range hostPaths {
		if after.paths[p] != before.paths[p] {
			t.Errorf("%s: existed before: %v, after: %v (a leak of the test, or another user of the machine)", p, before.paths[p], after.paths[p])
		}
	}
	for k, v := range before.sysctls {
		if after.sysctls[k] != v {
			t.Errorf("sysctl %s: before %s, after %s", k, v, after.sysctls[k])
		}
	}
	if after.iptables != before.iptables {
		t.Errorf("host iptables rules changed:\nbefore:\n%s\nafter:\n%s", before.iptables, after.iptables)
	}
	if !slices.Equal(after.cgroupDirs, before.cgroupDirs) {
		t.Errorf("cgroups %s: before %v, after %v", cgroupsRoot, before.cgroupDirs, after.cgroupDirs)
	}
	if n := mountsMatching("/run/k3s"); n != 0 {
		t.Errorf("%d mounts under /run/k3s left in the host's mount namespace", n)
	}
}

// mountsMatching counts the host mount namespace's mounts whose mount point or root
// contains s.
func mountsMatching(s string) int {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (strings.Contains(f[3], s) || strings.Contains(f[4], s)) {
			n++
		}
	}
	return n
}

// --- emulated Mesos hosts: one network namespace each, on a host bridge -------------

const (
	bridgeName = "nc-br0"
	bridgeIP   = "10.77.0.1"
	netPrefix  = "10.77.0."
	netBits    = "/24"
)

type emuHost struct {
	name string // network namespace name, e.g. nc-h1
	ip   string // its address on the bridge, the node IP of its agents
	veth string // host side of its veth pair
}

// setupNetwork creates the bridge and one network namespace per host, each with a veth
// into the bridge ("eth0" inside, the host's address) and a default route via the bridge.
// Everything is removed by t.Cleanup, also when the test fails.
func setupNetwork(t *testing.T, n int) []*emuHost {
	t.Helper()
	t.Cleanup(func() { teardownNetwork(t, n) })
	teardownNetwork(t, n) // a previous run killed by a timeout
	mustRun(t, "ip", "link", "add", bridgeName, "type", "bridge")
	mustRun(t, "ip", "addr", "add", bridgeIP+netBits, "dev", bridgeName)
	mustRun(t, "ip", "link", "set", bridgeName, "up")
	var hosts []*emuHost
	for i := 1; i <= n; i++ {
		h := &emuHost{name: fmt.Sprintf("nc-h%d", i), ip: fmt.Sprintf("%s%d", netPrefix, i+1), veth: fmt.Sprintf("nc-h%d-v", i)}
		mustRun(t, "ip", "netns", "add", h.name)
		mustRun(t, "ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.name)
		mustRun(t, "ip", "link", "set", h.veth, "master", bridgeName, "up")
		mustRun(t, "ip", "-n", h.name, "addr", "add", h.ip+netBits, "dev", "eth0")
		mustRun(t, "ip", "-n", h.name, "link", "set", "lo", "up")
		mustRun(t, "ip", "-n", h.name, "link", "set", "eth0", "up")
		mustRun(t, "ip", "-n", h.name, "route", "add", "default", "via", bridgeIP)
		hosts = append(hosts, h)
	}
	return hosts
}

// teardownNetwork deletes the namespaces (with them their veths, and whatever the agents
// left inside: cni0, flannel.1, iptables rules, per-netns sysctls) and the bridge (with
// it the routes through it).
func teardownNetwork(t *testing.T, n int) {
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("nc-h%d", i)
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			if _, err := run("ip", "netns", "del", ns); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := run("ip", "link", "show", bridgeName); err == nil {
		if _, err := run("ip", "link", "del", bridgeName); err != nil {
			t.Error(err)
		}
	}
}
