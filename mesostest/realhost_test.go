package mesostest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// realHostAgent is a process agent with a host of its own and cgroups, or a skip where the
// machine cannot give them.
func realHostAgents(t *testing.T, s *Server, n int) []string {
	t.Helper()
	if err := canMakeHosts(); err != nil {
		t.Skip(err)
	}
	if _, err := findCgroupHierarchies(); err != nil {
		t.Skip(err)
	}
	var ids []string
	for i := 0; i < n; i++ {
		cfg := processAgent("")
		cfg.OwnHost, cfg.Cgroups = true, true
		id, err := s.TryAddAgent(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// linux_launcher.cpp, cgroups.cpp, linux/cgroups.cpp: a container runs in cgroups of its own
// (nested ones for a task group's tasks) with its resources as limits, and its destroy
// takes every process it started, a setsid'd one included, and its cgroups; an agent with
// its own host runs its tasks and their health checks in its network namespace, at the
// address that is its hostname; Close removes the namespaces and the bridge.
func TestOwnHostAgentsRunContainersInCgroupsAndNamespaces(t *testing.T) {
	opts := testOptions()
	opts.SandboxRoot = t.TempDir()
	s := newTestServer(t, opts)
	agents := realHostAgents(t, s, 2)
	hosts := map[string]string{}
	for _, a := range s.State().Slaves {
		hosts[a.ID] = a.Hostname
		if !strings.HasPrefix(a.Hostname, "10.") {
			t.Fatalf("agent %s hostname %q, want its own host's address", a.ID, a.Hostname)
		}
	}
	if hosts[agents[0]] == hosts[agents[1]] {
		t.Fatalf("two agents share the address %s", hosts[agents[0]])
	}

	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("realhost"))
	const script = `ip -4 -o addr show eth0 > addr; cat /proc/self/cgroup > cg; (setsid env -i sleep 300 > /dev/null 2>&1 & echo $! > orphan) & exec sleep 300`
	checked := func(info mesos.TaskInfo, hostIP string) mesos.TaskInfo {
		info.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND,
			Command:      &mesos.CommandInfo{Value: proto.String("ip -4 -o addr show eth0 | grep -q 'inet " + hostIP + "/'")},
			DelaySeconds: proto.Float64(0), IntervalSeconds: proto.Float64(0.2)}
		return info
	}
	launched := map[string]string{} // task → agent
	var offers []mesos.Offer
	for len(launched) < 2 {
		if len(offers) == 0 {
			offers = c.next(5*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }).Offers.Offers
		}
		o := offers[0]
		offers = offers[1:]
		switch o.AgentID.Value {
		case agents[0]:
			if _, done := launched["cmd"]; done {
				continue
			}
			task := checked(commandTask("cmd", o.AgentID.Value, script, 0.1, 64), hosts[agents[0]])
			c.mustCall(launchCall(o.ID, task))
			launched["cmd"] = agents[0]
		case agents[1]:
			if _, done := launched["nested"]; done {
				continue
			}
			task := checked(commandTask("nested", o.AgentID.Value, script, 0.1, 64), hosts[agents[1]])
			exec := mesos.ExecutorInfo{Type: mesos.ExecutorInfo_DEFAULT, ExecutorID: mesos.ExecutorID{Value: "pod"},
				FrameworkID: &mesos.FrameworkID{Value: c.frameworkID},
				Resources:   []mesos.Resource{scalarResource("cpus", 0.1), scalarResource("mem", 32), scalarResource("disk", 10)}}
			c.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{OfferIDs: []mesos.OfferID{o.ID},
				Operations: []mesos.Offer_Operation{{Type: mesos.Offer_Operation_LAUNCH_GROUP, LaunchGroup: &mesos.Offer_Operation_LaunchGroup{
					Executor: exec, TaskGroup: mesos.TaskGroupInfo{Tasks: []mesos.TaskInfo{task}}}}}}})
			launched["nested"] = agents[1]
		}
	}
	orphans := map[string]int{}
	for task, agent := range launched {
		c.ack(c.nextUpdate(task, mesos.TASK_STARTING, 10*time.Second))
		c.ack(c.nextUpdate(task, mesos.TASK_RUNNING, 10*time.Second))
		// The health check runs curl in the container: on a loaded machine (make test runs
		// real K3s beside this) its first answer can take longer than the task's start.
		healthy := c.next(30*time.Second, func(e *scheduler.Event) bool {
			st := e.GetUpdate().GetStatus()
			return e.Type == scheduler.Event_UPDATE && st.TaskID.Value == task && st.Healthy != nil
		}).GetUpdate().GetStatus()
		c.ack(healthy)
		if !healthy.GetHealthy() {
			t.Fatalf("%s: the health check, run in the host's namespace, failed: %s", task, healthy.GetMessage())
		}
		sandbox := stateTask(s, task).Sandbox
		var addr, cg []byte
		eventually(t, 5*time.Second, task+" wrote its files", func() bool {
			b, err := os.ReadFile(filepath.Join(sandbox, "orphan"))
			if err != nil || len(strings.TrimSpace(string(b))) == 0 {
				return false
			}
			orphans[task], _ = strconv.Atoi(strings.TrimSpace(string(b)))
			addr, _ = os.ReadFile(filepath.Join(sandbox, "addr"))
			cg, _ = os.ReadFile(filepath.Join(sandbox, "cg"))
			return true
		})
		if !strings.Contains(string(addr), "inet "+hosts[agent]+"/") {
			t.Errorf("%s runs with eth0 %q, want the address %s", task, addr, hosts[agent])
		}
		freezer := cgroupLine(string(cg), "freezer")
		wantPrefix := "/" + s.cgroupsRoot + "/"
		if !strings.HasPrefix(freezer, wantPrefix) || (task == "nested") != strings.Contains(freezer, "/mesos/") {
			t.Errorf("%s's freezer cgroup %q, want %s<container> (nested: <executor>/mesos/<container>)", task, freezer, wantPrefix)
		}
		if task == "cmd" {
			limit, _ := os.ReadFile(filepath.Join(s.cgroups.freezer, "..", "memory", freezer, "memory.limit_in_bytes"))
			if want := strconv.Itoa((64 + 32) << 20); strings.TrimSpace(string(limit)) != want {
				t.Errorf("command container memory.limit_in_bytes %q, want %s (the task's 64 MiB plus the executor's 32)", limit, want)
			}
		}
	}

	for task := range launched {
		c.mustCall(&scheduler.Call{Type: scheduler.Call_KILL, Kill: &scheduler.Call_Kill{TaskID: mesos.TaskID{Value: task}}})
	}
	for task := range launched {
		c.ack(c.nextUpdate(task, mesos.TASK_KILLED, 10*time.Second))
	}
	for task, pid := range orphans {
		eventually(t, 5*time.Second, task+"'s setsid'd process is killed with its container", func() bool {
			return syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid)
		})
	}
	eventually(t, 5*time.Second, "the cgroups root is removed with the last container", func() bool {
		_, err := os.Stat(filepath.Join(s.cgroups.freezer, s.cgroupsRoot))
		return os.IsNotExist(err)
	})

	netns := s.hostNet.hosts[0].netns
	bridge := s.hostNet.bridge
	s.Close()
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), netns) {
		t.Errorf("network namespace %s survives Close", netns)
	}
	if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
		t.Errorf("bridge %s survives Close", bridge)
	}
}

func cgroupLine(procCgroup, controller string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == controller {
			return parts[2]
		}
	}
	return ""
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
	return len(fields) > 0 && fields[0] == "Z"
}
