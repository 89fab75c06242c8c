package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/hack/hostguard"
	"github.com/mesosk3s/mesosk3s/internal/cgroupfs"
)

// waitNodes waits until the workload cluster's Nodes are exactly want, all Ready.
func waitNodes(t *testing.T, wl kubectl, want []string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	sort.Strings(want)
	var got string
	for time.Since(start) < timeout {
		out, err := wl.try("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err == nil {
			var names []string
			ready := true
			for _, line := range strings.Fields(out) {
				name, status, _ := strings.Cut(line, "=")
				names = append(names, name)
				ready = ready && status == "True"
			}
			sort.Strings(names)
			got = strings.Join(names, ",")
			if ready && got == strings.Join(want, ",") {
				t.Logf("nodes %v Ready after %.1fs", want, time.Since(start).Seconds())
				return
			}
		}
		time.Sleep(time.Second)
	}
	out, _ := wl.try("get", "nodes", "-o", "wide")
	t.Fatalf("nodes %q, want %v all Ready within %s:\n%s", got, want, timeout, out)
}

// checkDemo proves the demo workload works: its pods Running, an HTTP answer on the
// NodePort of every node, kubectl logs and exec through K3s's tunnel to the kubelets.
func checkDemo(t *testing.T, wl kubectl) {
	t.Helper()
	wl.run(t, "rollout", "status", "deployment/"+demoName, "--timeout=180s")
	addrs := strings.Fields(wl.run(t, "get", "nodes", "-o", `jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}`))
	if len(addrs) == 0 {
		t.Fatal("no node addresses")
	}
	for _, a := range addrs {
		url := fmt.Sprintf("http://%s:%d/", a, demoNodePort)
		var body string
		deadline := time.Now().Add(time.Minute)
		for {
			b, err := tryGet(url)
			if err == nil && strings.Contains(b, "hello from") {
				body = b
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not answer: %v %q", url, err, b)
			}
			time.Sleep(time.Second)
		}
		_ = body
	}
	if logs := wl.run(t, "logs", "deploy/"+demoName); !strings.Contains(logs, "response:200") {
		t.Errorf("kubectl logs shows no request served:\n%s", logs)
	}
	if out := wl.run(t, "exec", "deploy/"+demoName, "--", "cat", "/index.html"); !strings.Contains(out, "hello from") {
		t.Errorf("kubectl exec: %q", out)
	}
}

// noSecretsShown: no value of the cluster's CA and token Secrets appears on any process's
// command line (what `ps auxww` shows any local user), in the master's /state, the
// operator's or the emulator's log, an event or the cluster's status; and an agent's
// environment holds its agent token, never the servers' token.
func noSecretsShown(t *testing.T, mgmt kubectl, state, mesosURL string) {
	t.Helper()
	values := map[string]string{}
	for _, name := range []string{"playground-ca", "playground-token"} {
		var secret struct {
			Data map[string]string `json:"data"`
		}
		if err := json.Unmarshal([]byte(mgmt.run(t, "get", "secret", name, "-o", "json")), &secret); err != nil {
			t.Fatal(err)
		}
		for k, v := range secret.Data {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			values[name+"/"+k] = string(raw)
		}
	}
	if len(values) < 3 {
		t.Fatalf("too few secret values to look for: %v", len(values))
	}
	entries, _ := os.ReadDir("/proc")
	seen := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		seen++
		for key, v := range values {
			for _, line := range secretLines(v) {
				if strings.Contains(string(cmdline), line) {
					t.Errorf("process %s shows %s on its command line: %.120q", e.Name(), key, cmdline)
				}
			}
		}
	}
	// Nor anywhere else a person or a log collector looks: the master's /state, the
	// operator's and the emulator's logs, the events, the cluster's status.
	places := map[string]string{
		"the emulator's /state": httpGet(t, mesosURL+"/state"),
		"the events":            mgmt.run(t, "get", "events", "-A", "-o", "json"),
		"the K3sCluster":        mgmt.run(t, "get", "k3sc", "playground", "-o", "json"),
	}
	for _, log := range []string{"operator.log", "mesos.log"} {
		b, err := os.ReadFile(filepath.Join(state, log))
		if err != nil {
			t.Fatal(err)
		}
		places[log] = string(b)
	}
	for place, text := range places {
		for key, v := range values {
			for _, line := range secretLines(v) {
				if strings.Contains(text, line) {
					t.Errorf("%s shows %s", place, key)
				}
			}
		}
	}
	// The agent's own environment: its token is the agent token.
	pid := findProcess(t, state, "agent", "")
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	serverToken := values["playground-token/token"]
	if serverToken == "" {
		t.Fatalf("no server token among %v", slices.Sorted(maps.Keys(values)))
	}
	if strings.Contains(string(env), serverToken) {
		t.Errorf("the K3s agent's environment holds the servers' token")
	}
	if !strings.Contains(string(env), "K3S_TOKEN=") {
		t.Errorf("the K3s agent's environment has no K3S_TOKEN")
	}
	t.Logf("%d processes' command lines, /state, the logs, events and status hold none of the %d secret values", seen, len(values))
}

// secretLines are the parts of a secret worth looking for: PEM lines (a command line
// could carry a key's body without its armour), or the value itself.
func secretLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if len(l) >= 32 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	if len(out) == 0 && len(v) >= 8 {
		out = append(out, v)
	}
	return out
}

// scaleDownDrains scales the agents from three to one and proves each leaving node was
// cordoned (the operator's NodeDraining event) before its task was killed (TasksKilled),
// then removed from the cluster.
func scaleDownDrains(t *testing.T, mgmt, wl kubectl) {
	t.Helper()
	mgmt.run(t, "scale", "k3scluster", "playground", "--replicas=1")
	deadline := time.Now().Add(4 * time.Minute)
	for {
		out, _ := wl.try("get", "nodes", "-o", `jsonpath={.items[*].metadata.name}`)
		if strings.TrimSpace(out) == "playground-agent-0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scale-down: nodes %q, want only playground-agent-0", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	events := mgmt.run(t, "get", "events.events.k8s.io", "--field-selector", "regarding.name=playground",
		"-o", `jsonpath={range .items[*]}{.eventTime}|{.reason}|{.note}{"\n"}{end}`)
	for _, task := range []string{"agent-1", "agent-2"} {
		drained := firstEvent(t, events, "NodeDraining", "Node playground-"+task+" cordoned")
		killed := firstEvent(t, events, "TasksKilled", task)
		switch {
		case drained.IsZero():
			t.Errorf("no NodeDraining event for playground-%s:\n%s", task, events)
		case killed.IsZero():
			t.Errorf("no TasksKilled event for %s:\n%s", task, events)
		case killed.Before(drained):
			t.Errorf("%s was killed at %s, before its node was cordoned at %s", task, killed, drained)
		}
	}
	waitJSONPath(t, mgmt, "{.status.agents.replicas}", "1", time.Minute)
}

// firstEvent is the time of the earliest event of reason whose note contains text, in
// lines of "eventTime|reason|note".
func firstEvent(t *testing.T, lines, reason, text string) time.Time {
	t.Helper()
	var first time.Time
	for _, line := range strings.Split(lines, "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 || parts[1] != reason || !strings.Contains(parts[2], text) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("event time %q: %v", parts[0], err)
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}

// killAgentAndRejoin SIGKILLs the K3s agent and waits until the same node is Ready again,
// checking that nothing of the old task is left: no process (pods included) of its
// container, no mount.
func killAgentAndRejoin(t *testing.T, mgmt, wl kubectl, state string) {
	t.Helper()
	pid := findProcess(t, state, "agent", "")
	sandbox, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	cgroup := freezerCgroup(t, pid)
	if !strings.Contains(cgroup, "mesostest-") {
		t.Fatalf("the K3s agent runs outside a container cgroup: %q", cgroup)
	}
	pods := cgroupProcs(cgroup)
	if len(pods) < 3 {
		t.Fatalf("the agent's container holds only %v: where are containerd and the pods?", pods)
	}
	before := mgmt.run(t, "get", "k3sc", "playground", "-o", `jsonpath={.status.tasks[?(@.name=="agent-0")].restarts}`)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(before))
	waitJSONPath(t, mgmt, `{.status.tasks[?(@.name=="agent-0")].restarts}`, strconv.Itoa(n+1), time.Minute)
	for _, p := range pods {
		if err := syscall.Kill(p, 0); err == nil && !zombie(p) {
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); len(cmd) > 0 {
				t.Errorf("process %d (%q) of the killed agent's container survives", p, strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/freezer", cgroup)); err == nil {
		t.Errorf("the killed agent's cgroup %s is still there", cgroup)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); sandbox != "" && strings.Contains(string(mi), sandbox) {
		t.Errorf("a mount of the killed agent's sandbox %s is left", sandbox)
	}
	waitNodes(t, wl, []string{"playground-agent-0"}, 3*time.Minute)
	mgmt.run(t, "wait", "--for=condition=Ready", "k3sc/playground", "--timeout=120s")
}

func freezerCgroup(t *testing.T, pid int) string {
	t.Helper()
	c, err := cgroupOf(pid, "freezer")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cgroupOf is a process's cgroup in one v1 hierarchy.
func cgroupOf(pid int, hierarchy string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && parts[1] == hierarchy {
			return parts[2], nil
		}
	}
	return "", nil
}

// processEnv is one variable of a process's environment.
func processEnv(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// cgroupProcs lists the processes of a container's freezer cgroup subtree.
func cgroupProcs(cgroup string) []int {
	return cgroupfs.Pids(filepath.Join("/sys/fs/cgroup/freezer", cgroup))
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

func tryGet(url string) (string, error) { return fetchBody(context.Background(), url) }

// logNodeMemory reports, for each K3s process of the playground, the resident memory of
// its Mesos container: the sum of VmRSS of every process in the container's cgroup (K3s,
// containerd, shims, pods), and the memory cgroup's usage (which adds the page cache).
// A measurement for docs/performance.md, not an assertion.
func logNodeMemory(t *testing.T, state string) {
	t.Helper()
	for _, p := range hostguard.Processes(filepath.Join(state, "sandboxes")) {
		line, pid := p.Cmdline, p.PID
		if !strings.HasPrefix(line, "k3s server") && !strings.HasPrefix(line, "k3s agent") {
			continue
		}
		cgroup := freezerCgroup(t, pid)
		var rss int64
		procs := cgroupProcs(cgroup)
		for _, q := range procs {
			rss += vmRSS(q)
		}
		// The memory cgroup is the executor's for a task of a group (share_cgroups), so the
		// usage is the container's and its executor's.
		memory, _ := cgroupOf(pid, "memory")
		usage, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", memory, "memory.usage_in_bytes"))
		used, _ := strconv.ParseInt(strings.TrimSpace(string(usage)), 10, 64)
		t.Logf("memory: %s on %s: %d processes, RSS %d MiB, memory cgroup usage %d MiB", strings.Fields(line)[1], processEnv(pid, "HOST"), len(procs), rss>>20, used>>20)
	}
}

// vmRSS is a process's resident set in bytes (0 if it is gone).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
