// Package hostguard puts back what real K3s nodes change on the machine beyond what the
// Mesos emulator owns and removes itself (network namespaces, links, cgroups, mounts: see
// mesostest's hosts.go and cgroups.go), and lists what anything left behind. A kubelet sets
// host-wide sysctls (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops, ...: they are
// not per network namespace), and a K3s agent creates the mount points of its private
// mounts (/var/lib/kubelet, /run/flannel, ...) on the host's filesystem. `make dev` and the
// end-to-end tests take a Snapshot before they start nodes and Restore it when they stop,
// pass or fail.
package hostguard

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// sysctls a kubelet or kube-proxy may change outside its network namespace.
var sysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
}

// mountPoints a K3s agent's private mounts need (k3s/agent.go): created on the host.
var mountPoints = []string{
	"/etc/rancher", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers",
	"/run/k3s", "/run/containerd", "/run/flannel", "/var/lib/cni",
}

// Snapshot is the machine's state before nodes ran.
type Snapshot struct {
	sysctls map[string]string
	missing []string // mount points that did not exist
}

// Take records the machine's state.
func Take() Snapshot {
	s := Snapshot{sysctls: map[string]string{}}
	for _, k := range sysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			s.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range mountPoints {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			s.missing = append(s.missing, p)
		}
	}
	return s
}

// Restore puts the sysctls back and removes the mount points that were not there (when
// empty: anything inside is somebody's). It returns what it changed.
func (s Snapshot) Restore() []string {
	var changed []string
	for _, k := range slices.Sorted(maps.Keys(s.sysctls)) {
		p := filepath.Join("/proc/sys", k)
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) == s.sysctls[k] {
			continue
		}
		if err := os.WriteFile(p, []byte(s.sysctls[k]), 0o644); err == nil {
			changed = append(changed, fmt.Sprintf("sysctl %s %s -> %s", strings.ReplaceAll(k, "/", "."), strings.TrimSpace(string(b)), s.sysctls[k]))
		}
	}
	for _, p := range s.missing {
		// Only directories the nodes made: /etc/rancher holds node/ and k3s/ at most.
		for _, sub := range []string{"node", "k3s"} {
			_ = os.Remove(filepath.Join(p, sub))
		}
		if err := os.Remove(p); err == nil {
			changed = append(changed, "removed "+p)
		}
	}
	return changed
}

// Leftovers lists what the emulator instance (mesostest Server.Instance) and its nodes
// should have removed and did not: network namespaces and links of its hosts, cgroups of
// its containers, mounts under dir, processes running from dir. Empty means clean.
func Leftovers(instance, dir string) []string {
	var left []string
	for _, ns := range namespaces(instance) {
		left = append(left, "network namespace "+ns)
	}
	for _, l := range links(instance) {
		left = append(left, "link "+l)
	}
	for _, c := range cgroupRoots(instance) {
		left = append(left, "cgroup "+c)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && dir != "" {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
				left = append(left, "mount "+f[4])
			}
		}
	}
	return append(left, ProcessesUnder(dir)...)
}

// Sweep removes what a killed emulator instance left: it kills every process in its
// cgroups and removes them, its network namespaces and its links. It returns what it did.
func Sweep(instance string) []string {
	var done []string
	for _, root := range cgroupRoots(instance) {
		if strings.Contains(root, "/freezer/") {
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					_ = os.WriteFile(filepath.Join(p, "freezer.state"), []byte("THAWED"), 0o644)
					if b, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
						for _, pid := range strings.Fields(string(b)) {
							_ = exec.Command("kill", "-9", pid).Run()
						}
					}
				}
				return nil
			})
		}
	}
	for _, root := range cgroupRoots(instance) {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
		done = append(done, "removed cgroup "+root)
	}
	for _, ns := range namespaces(instance) {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		done = append(done, "removed network namespace "+ns)
	}
	for _, l := range links(instance) {
		_ = exec.Command("ip", "link", "del", l).Run()
		done = append(done, "removed link "+l)
	}
	return done
}

func namespaces(instance string) []string {
	var out []string
	if b, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "mt"+short(instance)+"-") {
				out = append(out, f[0])
			}
		}
	}
	return out
}

func links(instance string) []string {
	var out []string
	if b, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
			if name == "mtbr"+short(instance) || strings.HasPrefix(name, "mtv"+short(instance)) {
				out = append(out, name)
			}
		}
	}
	return out
}

func cgroupRoots(instance string) []string {
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/mesostest-" + instance)
	return matches
}

func short(instance string) string {
	if len(instance) > 4 {
		return instance[:4]
	}
	return instance
}

// Process is a process of the machine: its pid and its command line, words joined by spaces.
type Process struct {
	PID     int
	Cmdline string
}

// Processes lists the processes whose command line mentions dir or that run in it
// (a task's processes run from its sandbox), this one and kernel threads left out.
func Processes(dir string) []Process {
	if dir == "" {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, Process{PID: pid, Cmdline: line})
		}
	}
	return out
}

// ProcessesUnder is Processes as lines for a report.
func ProcessesUnder(dir string) []string {
	var out []string
	for _, p := range Processes(dir) {
		out = append(out, fmt.Sprintf("process %d: %s", p.PID, p.Cmdline))
	}
	return out
}
