package nodecheck

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// k3sOrSkip returns the K3s binary, or skips the test when it cannot run here: not root,
// or no binary. MESOSK3S_REQUIRE_K3S=1 turns the skip into a failure.
func k3sOrSkip(t *testing.T) string {
	t.Helper()
	if os.Getenv("NODECHECK") != "1" {
		// The recipe now lives in k3s/agent.go, run as the operator renders it by hack/dev's
		// end-to-end test; this lab changes the machine as that test does, so the two must
		// not run side by side (go test runs packages in parallel).
		t.Skip("the agent recipe's lab: NODECHECK=1 runs it (not with other tests that run K3s nodes)")
	}
	bin := os.Getenv("MESOSK3S_K3S")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), "bin", "k3s")
	}
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root (mounts, cgroups, network namespaces)"
	} else if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		reason = fmt.Sprintf("no executable K3s binary at %s (hack/build-k3s.sh builds it; MESOSK3S_K3S overrides the path)", bin)
	}
	if reason != "" {
		if os.Getenv("MESOSK3S_REQUIRE_K3S") == "1" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	return bin
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// flannelPluginVersion: Debian's CNI plugins (1.1.1) have no flannel plugin, which K3s's
// flannel setup calls; v0.9.1 of containernetworking/plugins is the last with one, and
// it speaks CNI <= 0.4.0 (hence flannelConflist).
const flannelPluginVersion = "v0.9.1"

const flannelConflist = `{
  "name": "cbr0",
  "cniVersion": "0.4.0",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "forceAddress": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// cniBinDir builds (once, cached in bin/nodecheck) the flannel CNI plugin and returns a
// directory with it and Debian's plugins: K3s takes its CNI bin dir from where host-local
// is on PATH.
func cniBinDir(t *testing.T, root, work string) string {
	t.Helper()
	cache := filepath.Join(root, "bin", "nodecheck", "flannel-"+flannelPluginVersion)
	if _, err := os.Stat(filepath.Join(cache, "flannel")); err != nil {
		cmd := exec.Command("go", "install", "github.com/containernetworking/plugins/plugins/meta/flannel@"+flannelPluginVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+cache, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the flannel CNI plugin: %v\n%s", err, out)
		}
	}
	dir := filepath.Join(work, "cni-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	plugins, _ := filepath.Glob("/usr/lib/cni/*")
	if len(plugins) == 0 {
		t.Fatal("no CNI plugins in /usr/lib/cni (containernetworking-plugins)")
	}
	for _, p := range append(plugins, filepath.Join(cache, "flannel")) {
		if err := os.Symlink(p, filepath.Join(dir, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// agentPorts are the ports an agent task asks of its offer, by env var name.
var agentPortNames = []string{
	"PORT_KUBELET", "PORT_KUBELET_HEALTHZ", "PORT_KUBEPROXY_METRICS", "PORT_KUBEPROXY_HEALTHZ",
	"PORT_LB", "PORT_CRI_STREAM",
}

// offer hands out ports like a Mesos agent's "ports" resource: unique per host.
type offer struct{ next map[string]int }

func (o *offer) ports(host *emuHost) map[string]int {
	if o.next == nil {
		o.next = map[string]int{}
	}
	if o.next[host.name] == 0 {
		o.next[host.name] = 31000
	}
	p := map[string]int{}
	for _, n := range agentPortNames {
		p[n] = o.next[host.name]
		o.next[host.name]++
	}
	return p
}

// agent is one K3s agent task (one run of it).
type agent struct {
	*task
	nodeName, dataDir string
	ports             map[string]int
	launched          time.Time
}

type env struct {
	t      *testing.T
	root   string
	work   string
	k3s    string
	cniBin string
	image  string
	srv    *server
	h      hierarchies
	runs   int
	offers offer
	// agentArgs are appended to the agent task's command line (shell words), for
	// experiments.
	agentArgs string
	// flannelConflist replaces flannelConflist for the next agents, for experiments.
	flannelConflist string
	summary         []string
}

func (e *env) logf(format string, args ...any) {
	e.t.Helper()
	s := fmt.Sprintf(format, args...)
	e.summary = append(e.summary, s)
	e.t.Log(s)
}

// launchAgent starts agent-task.sh as a Mesos task on host, the way the operator will:
// the script and the image archive in the sandbox (the fetcher's job), everything else
// in the environment.
// launchAgent starts an agent of the test cluster; ports nil means fresh ports from the
// host's offer.
func (e *env) launchAgent(host *emuHost, nodeName, dataDir string, ports map[string]int) *agent {
	e.t.Helper()
	return e.launchAgentOf(e.srv, host, nodeName, dataDir, ports)
}

// launchAgentOf starts an agent of the given server's cluster.
func (e *env) launchAgentOf(srv *server, host *emuHost, nodeName, dataDir string, ports map[string]int) *agent {
	t := e.t
	t.Helper()
	e.runs++
	id := fmt.Sprintf("%s.%d%s", nodeName, e.runs, randomHex(3))
	sandbox := filepath.Join(e.work, "hosts", host.name, "sandboxes", id)
	if err := os.MkdirAll(filepath.Join(sandbox, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(e.root, "hack", "nodecheck", "agent-task.sh"), filepath.Join(sandbox, "agent-task.sh"))
	copyFile(t, e.image, filepath.Join(sandbox, "images", "busybox.tar"))
	conflist := filepath.Join(sandbox, "flannel.conflist")
	cl := flannelConflist
	if e.flannelConflist != "" {
		cl = e.flannelConflist
	}
	if err := os.WriteFile(conflist, []byte(cl), 0o644); err != nil {
		t.Fatal(err)
	}
	if ports == nil {
		ports = e.offers.ports(host)
	}
	vars := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DATA_DIR=" + dataDir,
		"K3S=" + e.k3s,
		"K3S_URL=" + srv.url,
		"K3S_TOKEN=" + srv.agentToken,
		"K3S_NODE_NAME=" + nodeName,
		"NODE_IP=" + host.ip,
		"PAUSE_IMAGE=" + imageRef,
		"CNI_BIN_DIR=" + e.cniBin,
		"FLANNEL_CNI_CONF=" + conflist,
		// What a Mesos agent started by systemd leaks into its tasks: the script must
		// drop it, or K3s switches to the systemd cgroup driver.
		"INVOCATION_ID=" + randomHex(16),
	}
	for _, n := range agentPortNames {
		vars = append(vars, n+"="+strconv.Itoa(ports[n]))
	}
	a := &agent{nodeName: nodeName, dataDir: dataDir, ports: ports, launched: time.Now()}
	a.task = launch(t, e.h, host, id, nodeName, sandbox, `exec /bin/sh "$MESOS_SANDBOX/agent-task.sh"`+e.agentArgs, vars)
	return a
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(from)
	if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// alive fails once the task's leader has exited, with the end of its output.
func (a *agent) alive() error {
	select {
	case <-a.exited:
		return fmt.Errorf("agent task %s exited (%v):\n%s", a.id, a.err, tail(filepath.Join(a.sandbox, "stderr"), 40))
	default:
		return nil
	}
}

func (e *env) waitReady(a *agent) *node {
	e.t.Helper()
	n, err := e.srv.waitNodeReady(a.nodeName, a.launched, 3*time.Minute, a.alive)
	if err != nil {
		e.t.Fatalf("%v\nagent log:\n%s", err, tail(filepath.Join(a.sandbox, "stderr"), 40))
	}
	return n
}

// mntNS is the mount namespace of a process, as "mnt:[inode]".
func mntNS(pid int) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	return s
}

// traces lists, over every process on the machine, what still belongs to a killed
// task: processes in its cgroups or its mount namespace, and mounts of its paths.
func traces(cgroup, mntns string, paths []string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	seenMounts := map[string]bool{}
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if cg, err := os.ReadFile(p + "/cgroup"); err == nil {
			if s := string(cg); strings.Contains(s, cgroup+"/") || strings.Contains(s, cgroup+"\n") {
				found = append(found, fmt.Sprintf("process %d (%s) in cgroup %s", pid, comm(pid), cgroup))
			}
		}
		if mntns != "" && mntNS(pid) == mntns {
			found = append(found, fmt.Sprintf("process %d (%s) in the task's mount namespace %s", pid, comm(pid), mntns))
		}
		mi, err := os.ReadFile(p + "/mountinfo")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(mi), "\n") {
			for _, s := range paths {
				if strings.Contains(line, s) && !seenMounts[line] {
					seenMounts[line] = true
					found = append(found, fmt.Sprintf("mount seen by process %d: %s", pid, line))
				}
			}
		}
	}
	return found
}

// tracesAfterKill is traces once the killed processes' zombies are reaped (by PID 1, their
// parents being dead too): up to 10 s.
func tracesAfterKill(cgroup, mntns string, paths []string) []string {
	var left []string
	_ = waitFor(10*time.Second, func() error {
		if left = traces(cgroup, mntns, paths); len(left) > 0 {
			return fmt.Errorf("%d traces", len(left))
		}
		return nil
	})
	return left
}

// listeners lists "proto port" of every listening TCP socket and bound UDP socket in a
// network namespace.
func listeners(netns string) ([]string, error) {
	var out []string
	for _, tab := range []struct{ file, proto, state string }{
		{"/proc/net/tcp", "tcp", "0A"}, {"/proc/net/tcp6", "tcp6", "0A"},
		{"/proc/net/udp", "udp", "07"}, {"/proc/net/udp6", "udp6", "07"},
	} {
		text, err := inNetns(netns, "cat", tab.file)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(text, "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != tab.state {
				continue
			}
			local := f[1]
			i := strings.LastIndex(local, ":")
			port, _ := strconv.ParseInt(local[i+1:], 16, 32)
			out = append(out, fmt.Sprintf("%s %d", tab.proto, port))
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// newEnv prepares the machine for agents: prerequisites, the image, the CNI plugins, n
// emulated hosts and a K3s server; t.Cleanup puts the machine back as it was, pass or fail.
func newEnv(t *testing.T, n int) (*env, []*emuHost) {
	t.Helper()
	k3s := k3sOrSkip(t)
	e := &env{t: t, root: repoRoot(t), k3s: k3s}
	e.work = t.TempDir() // removed last: after every process and mount is gone
	t.Cleanup(func() { keepLogs(t, e.work) })
	if out, err := run(filepath.Join(e.root, "hack", "node-prereqs.sh")); err != nil {
		t.Fatalf("prerequisites: %v\n%s", err, out)
	}
	before := snapshot(t)
	t.Cleanup(func() { before.restoreAndCompare(t) })
	var err error
	if e.h, err = findHierarchies(); err != nil {
		t.Fatal(err)
	}
	sweepStale(t, e.h)
	e.image = filepath.Join(e.work, "busybox.tar")
	mustRun(t, filepath.Join(e.root, "hack", "mkimage.sh"), e.image, imageRef)
	e.cniBin = cniBinDir(t, e.root, e.work)
	hosts := setupNetwork(t, n)
	e.srv = startServer(t, k3s, filepath.Join(e.work, "server"), e.cniBin, testNet)
	e.watchdog(before, n)
	return e, hosts
}

// watchdog: go test's -timeout panics without running cleanups, which would leave agents,
// pods, network namespaces and changed sysctls behind. 30 s before the deadline it puts
// the machine back itself (the test then fails on its dead agents). The server and the
// task leaders die with the test binary anyway (Pdeathsig).
func (e *env) watchdog(before machineState, hosts int) {
	t := e.t
	d, ok := t.Deadline()
	if !ok {
		return
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(d) - 30*time.Second):
		}
		t.Errorf("30 s before the test's deadline: killing every task and restoring the machine")
		sweepStale(t, e.h)
		_ = syscall.Kill(-e.srv.cmd.Process.Pid, syscall.SIGKILL)
		teardownNetwork(t, hosts)
		before.restoreAndCompare(t)
		keepLogs(t, e.work)
		_ = os.RemoveAll(e.work)
	}()
}

func TestTwoAgentsOneHost(t *testing.T) {
	start := time.Now()
	e, hosts := newEnv(t, 2)
	defer func() {
		t.Logf("summary (%s in all):\n  %s", time.Since(start).Round(time.Second), strings.Join(e.summary, "\n  "))
	}()

	// --- two agents, each a task on its own emulated host ---------------------------
	dataDir := func(h *emuHost, node string) string {
		return filepath.Join(e.work, "hosts", h.name, "data", node)
	}
	a1 := e.launchAgent(hosts[0], "agent-1", dataDir(hosts[0], "agent-1"), nil)
	a2 := e.launchAgent(hosts[1], "agent-2", dataDir(hosts[1], "agent-2"), nil)
	agents := []*agent{a1, a2}
	nodes := map[string]*node{}
	for _, a := range agents {
		n := e.waitReady(a)
		nodes[a.nodeName] = n
		e.logf("node %s Ready %s after launch (podCIDR %s, kubelet port %d, %s)", a.nodeName,
			time.Since(a.launched).Round(100*time.Millisecond), n.Spec.PodCIDR,
			n.Status.DaemonEndpoints.KubeletEndpoint.Port, n.Status.NodeInfo.ContainerRuntimeVersion)
		if got, want := n.Status.DaemonEndpoints.KubeletEndpoint.Port, a.ports["PORT_KUBELET"]; got != want {
			t.Errorf("node %s: kubelet port %d, want the offered %d", a.nodeName, got, want)
		}
		for _, addr := range n.Status.Addresses {
			if addr.Type == "InternalIP" && addr.Address != a.host.ip {
				t.Errorf("node %s: InternalIP %s, want %s", a.nodeName, addr.Address, a.host.ip)
			}
		}
		// The host reaches the pods of a node through that node's host.
		mustRun(t, "ip", "route", "replace", n.Spec.PodCIDR, "via", a.host.ip, "dev", bridgeName)
	}

	// --- where the agents put things ------------------------------------------------
	for _, a := range agents {
		leader := a.cmd.Process.Pid
		if got := mntNS(leader); got == mntNS(os.Getpid()) || got == "" {
			t.Errorf("%s: agent runs in the host's mount namespace (%q)", a.nodeName, got)
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", leader)); !strings.Contains(string(b), "freezer:"+a.cgroup+"\n") {
			t.Errorf("%s: agent not in its task cgroup %s:\n%s", a.nodeName, a.cgroup, b)
		}
		ls, err := listeners(a.host.name)
		if err != nil {
			t.Fatal(err)
		}
		offered := map[string]bool{}
		for _, p := range a.ports {
			offered[strconv.Itoa(p)] = true
		}
		var others []string
		for _, l := range ls {
			if !offered[strings.Fields(l)[1]] {
				others = append(others, l)
			}
		}
		e.logf("%s listens on %v; not from the offer: %v", a.nodeName, ls, others)
		for _, o := range others {
			if !strings.HasPrefix(o, "udp 8472") { // flannel VXLAN: per cluster, not per task
				t.Errorf("%s: listener %q not from the offer", a.nodeName, o)
			}
		}
		if b, err := os.ReadFile(filepath.Join(a.dataDir, "rancher", "node", "password")); err != nil || len(b) < 16 {
			t.Errorf("%s: node password not on the data dir: %v", a.nodeName, err)
		}
		// INVOCATION_ID was in the task's environment: the script must have dropped it.
		if b, _ := os.ReadFile(filepath.Join(a.sandbox, "stderr")); !strings.Contains(string(b), "--cgroup-driver=cgroupfs") ||
			!strings.Contains(string(b), "--cgroup-root="+a.cgroup+" ") {
			t.Errorf("%s: kubelet not run with --cgroup-driver=cgroupfs --cgroup-root=%s", a.nodeName, a.cgroup)
		}
		// The kubelet makes its root directory a shared mount, inside the task's namespace.
		var kubeletMount string
		mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", leader))
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 6 && f[4] == "/var/lib/kubelet" {
				kubeletMount = strings.Join(f[6:slices.Index(f, "-")], " ")
			}
		}
		e.logf("%s: /var/lib/kubelet in the task's mount namespace: %q (optional fields)", a.nodeName, kubeletMount)
	}

	// While both agents run, the host's mount table has none of their mounts.
	for _, p := range []string{"/run/k3s", "/run/containerd", "/run/flannel", "/var/lib/cni",
		"/etc/rancher", "/var/lib/kubelet", "/var/log/pods", "/var/log/containers"} {
		if n := mountsMatching(p); n > 0 {
			t.Errorf("the host's mount namespace has %d mounts at or under %s", n, p)
		}
	}

	// --- a web pod on each node -----------------------------------------------------
	podStart := time.Now()
	for _, a := range agents {
		if _, err := e.srv.kubectlStdin(strings.NewReader(webPod("web-"+a.nodeName, a.nodeName)), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	pods := map[string]*pod{}
	for _, a := range agents {
		p, err := e.srv.waitPodReady("web-"+a.nodeName, "", 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		pods[a.nodeName] = p
		if p.Spec.NodeName != a.nodeName {
			t.Errorf("pod web-%s on node %s", a.nodeName, p.Spec.NodeName)
		}
	}
	e.logf("2 pods Running+Ready %s after apply (%s, %s)", time.Since(podStart).Round(100*time.Millisecond),
		pods["agent-1"].Status.PodIP, pods["agent-2"].Status.PodIP)

	for _, a := range agents {
		name, ip := "web-"+a.nodeName, pods[a.nodeName].Status.PodIP
		if body, err := httpGet("http://" + ip + ":8080/"); err != nil || body != name {
			t.Errorf("host -> %s (%s): %q, %v", name, ip, body, err)
		}
		for _, b := range agents {
			if b == a {
				continue
			}
			peer, peerIP := "web-"+b.nodeName, pods[b.nodeName].Status.PodIP
			// kubectl exec (apiserver -> agent tunnel -> kubelet -> CRI stream port), and
			// pod -> pod across the two hosts (flannel VXLAN).
			out, err := e.srv.kubectl("exec", name, "--", "wget", "-q", "-O", "-", "http://"+peerIP+":8080/")
			if err != nil || strings.TrimSpace(out) != peer {
				t.Errorf("exec %s: wget %s (%s): %q, %v", name, peer, peerIP, out, err)
			}
		}
	}
	for _, a := range agents {
		out, err := e.srv.kubectl("logs", "web-"+a.nodeName)
		if err != nil || !strings.Contains(out, "response:200") {
			t.Errorf("logs web-%s: %q, %v", a.nodeName, out, err)
		}
	}
	e.logf("host->pod curl, kubectl exec, pod->pod across hosts (wget both ways), kubectl logs: checked")

	for _, a := range agents {
		anon, all, procs := a.rss()
		usage, memRSS := a.memoryUsage()
		e.logf("%s task: %d processes %v; RssAnon %s, VmRSS %s (summed over the processes); memory cgroup: usage %s, total_rss %s",
			a.nodeName, len(a.pids()), procs, mib(anon), mib(all), mib(usage), mib(memRSS))
	}

	// --- kill agent-1 the Mesos way -------------------------------------------------
	a1ns := mntNS(a1.cmd.Process.Pid)
	a1Paths := []string{a1.dataDir, a1.sandbox, "mk3s-" + a1.nodeName + " "}
	h1LinksBefore := linkNames(hosts[0].name)
	rep, err := a1.kill()
	if err != nil {
		t.Fatalf("kill %s: %v", a1.id, err)
	}
	e.logf("killed task %s in %s: %d processes %v; removed %d cgroups; cgroup2 dirs (Mesos 1.12 would leave them): %v",
		a1.id, rep.took.Round(time.Millisecond), len(rep.killed), rep.processes, rep.cgroupsRemove, rep.unifiedLeft)
	if left := tracesAfterKill(a1.cgroup, a1ns, a1Paths); len(left) > 0 {
		t.Errorf("after the kill of %s:\n%s", a1.id, strings.Join(left, "\n"))
	}
	for _, mnt := range append(slices.Clone(e.h.v1), e.h.unified) {
		if _, err := os.Stat(filepath.Join(mnt, a1.cgroup)); err == nil {
			t.Errorf("cgroup %s%s left", mnt, a1.cgroup)
		}
	}
	h1Links := linkNames(hosts[0].name)
	var vethLeft []string
	for _, l := range h1Links {
		if strings.HasPrefix(l, "veth") {
			vethLeft = append(vethLeft, l)
		}
	}
	if len(vethLeft) > 0 {
		t.Errorf("pod veths left on %s after the kill: %v", hosts[0].name, vethLeft)
	}
	chains := chainNames(hosts[0].name)
	e.logf("left on %s after the kill: links %v (before the kill: %v); iptables chains: %d (%s)",
		hosts[0].name, h1Links, h1LinksBefore, len(chains), strings.Join(chains, " "))
	if body, err := httpGet("http://" + pods["agent-1"].Status.PodIP + ":8080/"); err == nil {
		t.Errorf("pod web-agent-1 still answers after its task was killed: %q", body)
	}

	// --- same node name, wiped data dir: the server refuses the new node password ---
	wiped := e.launchAgent(hosts[0], "agent-1", dataDir(hosts[0], "agent-1-wiped"), nil)
	if err := waitFor(90*time.Second, func() error {
		b, _ := os.ReadFile(filepath.Join(wiped.sandbox, "stderr"))
		if strings.Contains(string(b), "Node password rejected") {
			return nil
		}
		if err := wiped.alive(); err != nil {
			return err
		}
		return fmt.Errorf("no 'Node password rejected' in the log yet")
	}); err != nil {
		t.Errorf("agent-1 with a wiped data dir: %v", err)
	} else {
		e.logf("agent-1 relaunched with a wiped data dir (new /etc/rancher/node/password): refused by the server (Node password rejected)")
	}
	wns := mntNS(wiped.cmd.Process.Pid)
	if _, err := wiped.kill(); err != nil {
		t.Fatal(err)
	}
	if left := tracesAfterKill(wiped.cgroup, wns, []string{wiped.dataDir, wiped.sandbox}); len(left) > 0 {
		t.Errorf("after the kill of %s:\n%s", wiped.id, strings.Join(left, "\n"))
	}

	// --- relaunch with the same name and data dir (new task ID, new sandbox) and the
	// same kubelet port: K3s v1.25's agent reads the kubelet port for its tunnel
	// authorizer once, from the Node object, which still shows the previous kubelet's
	// port at that moment; with another port, exec and logs fail (EOF) until the agent
	// restarts. NODECHECK_RELAUNCH_NEW_PORTS=1 shows it.
	newPorts := os.Getenv("NODECHECK_RELAUNCH_NEW_PORTS") == "1"
	relaunchPorts := a1.ports
	if newPorts {
		relaunchPorts = nil
	}
	a1b := e.launchAgent(hosts[0], "agent-1", a1.dataDir, relaunchPorts)
	n := e.waitReady(a1b)
	e.logf("relaunched %s as %s: Ready %s after launch (podCIDR %s, kubelet port %d)", a1b.nodeName, a1b.id,
		time.Since(a1b.launched).Round(100*time.Millisecond), n.Spec.PodCIDR, n.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if n.Spec.PodCIDR != nodes["agent-1"].Spec.PodCIDR {
		t.Errorf("podCIDR changed across the relaunch: %s -> %s", nodes["agent-1"].Spec.PodCIDR, n.Spec.PodCIDR)
		mustRun(t, "ip", "route", "replace", n.Spec.PodCIDR, "via", hosts[0].ip, "dev", bridgeName)
	}
	back := time.Now()
	p, err := e.srv.waitPodReady("web-agent-1", pods["agent-1"].Status.ContainerStatuses[0].ContainerID, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.logf("pod web-agent-1 Running again %s after its node was Ready (new container, IP %s)", time.Since(back).Round(100*time.Millisecond), p.Status.PodIP)
	if body, err := httpGet("http://" + p.Status.PodIP + ":8080/"); err != nil || body != "web-agent-1" {
		t.Errorf("host -> web-agent-1 after the relaunch: %q, %v", body, err)
	}
	out, err := e.srv.kubectl("exec", "web-agent-2", "--", "wget", "-q", "-O", "-", "http://"+p.Status.PodIP+":8080/")
	if err != nil || strings.TrimSpace(out) != "web-agent-1" {
		t.Errorf("exec web-agent-2: wget web-agent-1 after the relaunch: %q, %v", out, err)
	}
	logs, lerr := e.srv.kubectl("logs", "web-agent-1")
	_, xerr := e.srv.kubectl("exec", "web-agent-1", "--", "hostname")
	switch {
	case newPorts:
		authz := "?"
		if b, err := os.ReadFile(filepath.Join(a1b.sandbox, "stderr")); err == nil {
			if i := strings.Index(string(b), "Tunnel authorizer set Kubelet Port "); i >= 0 {
				authz = strings.Fields(string(b[i+len("Tunnel authorizer set Kubelet Port "):]))[0]
			}
		}
		e.logf("relaunch with new ports: kubelet on %d, tunnel authorizer set to port %s; logs: %v; exec: %v",
			a1b.ports["PORT_KUBELET"], strings.Trim(authz, `"`), lerr, xerr)
	case lerr != nil || !strings.Contains(logs, "response:200"):
		t.Errorf("logs web-agent-1 after the relaunch: %q, %v", logs, lerr)
	case xerr != nil:
		t.Errorf("exec web-agent-1 after the relaunch: %v", xerr)
	default:
		e.logf("after the relaunch: host->pod, pod->pod, kubectl logs and exec on agent-1: checked")
	}

	for _, d := range []string{"log/pods", "log/containers", "kubelet/pods"} {
		entries, _ := os.ReadDir(filepath.Join(a2.dataDir, d))
		e.logf("%s: $DATA_DIR/%s has %d entries", a2.nodeName, d, len(entries))
	}
	// --- agent-2 removed for good: kill, clean its host, delete its Node ------------
	if _, err := a2.kill(); err != nil {
		t.Fatal(err)
	}
	if out, err := inNetns(hosts[1].name, "/bin/sh", filepath.Join(e.root, "hack", "nodecheck", "agent-cleanup.sh")); err != nil {
		t.Errorf("agent-cleanup.sh: %v\n%s", err, out)
	}
	if l := linkNames(hosts[1].name); !slices.Equal(l, []string{"eth0", "lo"}) {
		t.Errorf("links on %s after agent-cleanup.sh: %v", hosts[1].name, l)
	}
	if c := chainNames(hosts[1].name); len(c) > 0 {
		t.Errorf("iptables chains on %s after agent-cleanup.sh: %v", hosts[1].name, c)
	}
	if _, err := e.srv.kubectl("delete", "node", "agent-2", "--wait=true"); err != nil {
		t.Error(err)
	}
	if err := waitFor(30*time.Second, func() error {
		_, err := e.srv.kubectl("get", "secret", "-n", "kube-system", "agent-2.node-password.k3s")
		if err == nil {
			return fmt.Errorf("secret agent-2.node-password.k3s still there")
		}
		if !strings.Contains(err.Error(), "NotFound") {
			return err
		}
		return nil
	}); err != nil {
		t.Error(err)
	} else {
		e.logf("agent-2 removed: agent-cleanup.sh left %s with only lo and eth0 and no iptables chains; kubectl delete node made K3s delete agent-2.node-password.k3s", hosts[1].name)
	}
}

// chainNames lists the non-builtin iptables and ip6tables chains of a network namespace.
func chainNames(netns string) []string {
	var names []string
	for _, line := range strings.Split(iptablesRules(netns), "\n") {
		if strings.HasPrefix(line, ":") {
			f := strings.Fields(line[1:])
			if len(f) > 1 && f[1] == "-" {
				names = append(names, f[0])
			}
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// keepLogs copies the logs of the server and of every task run (and containerd's) out of
// the test's temporary directory when the test failed or NODECHECK_KEEP_LOGS=1.
func keepLogs(t *testing.T, work string) {
	if !t.Failed() && os.Getenv("NODECHECK_KEEP_LOGS") != "1" {
		return
	}
	dest := filepath.Join(os.TempDir(), "nodecheck-logs-"+time.Now().Format("20060102-150405"))
	_ = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		switch d.Name() {
		case "stdout", "stderr", "server.log", "containerd.log":
		default:
			return nil
		}
		rel, _ := filepath.Rel(work, p)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dest, rel)), 0o755); err == nil {
			if b, err := os.ReadFile(p); err == nil {
				_ = os.WriteFile(filepath.Join(dest, rel), b, 0o644)
			}
		}
		return nil
	})
	t.Logf("logs kept in %s", dest)
}
