package mesosbridge

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// The framework ID reaches the controller before anything is launched, and nothing is
// launched until the controller hands it back.
func TestFrameworkIDHandshakeBeforeLaunch(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	cfg := clusterConfig("handshake", s.URL())
	desired := []TaskSpec{smallServer(0)}

	var obs Observed
	eventually(t, "framework ID", func() bool {
		var err error
		obs, err = b.Ensure(t.Context(), cfg, desired, nil) // never persists the ID
		if err != nil {
			t.Fatal(err)
		}
		return obs.FrameworkID != ""
	})
	if !obs.Connection.Connected || obs.Connection.Reason != ConnSubscribed {
		t.Fatalf("connection %+v", obs.Connection)
	}
	fw := s.State().Frameworks
	if len(fw) != 1 || fw[0].ID != obs.FrameworkID || fw[0].Name != "test:team-a/handshake" {
		t.Fatalf("frameworks in the master: %+v", fw)
	}
	time.Sleep(10 * testAllocation) // offers come and go: none may be used
	if n := len(frameworkTasks(s, obs.FrameworkID)); n != 0 {
		t.Fatalf("%d tasks launched before the framework ID was persisted", n)
	}

	cfg.FrameworkID = obs.FrameworkID
	c := newController(t, b, cfg, desired...)
	c.until("server-0 running", allRunning("server-0"))
}

// Launches follow the plan, not the offers: an agent that would fit waits for the server
// ahead of it in the plan.
func TestLaunchesInPlanOrder(t *testing.T) {
	s := newEmulator(t, mesostest.Options{}, agentConfig("small", 1))
	b := newTestBridge(t)
	server := smallServer(0)
	server.Resources.CPUs = 2 // only a bigger agent can take it
	desired := []TaskSpec{server, smallAgent(0, 1), smallAgent(1, 1)}
	c := newController(t, b, clusterConfig("order", s.URL()), desired...)

	obs := c.until("the agents to be held back", func(o Observed) bool {
		return strings.Contains(o.Unplaced["agent-0"], "waiting for server-0")
	})
	if len(obs.Tasks) != 0 || len(frameworkTasks(s, obs.FrameworkID)) != 0 {
		t.Fatalf("launched out of plan order: %s", describe(obs))
	}

	s.AddAgent(agentConfig("big", 4))
	obs = c.until("all running", allRunning(taskNames(desired)...))
	// Tasks launched in one round appear in the same observation; an agent never earlier.
	serverSeen := c.seenAt[obs.Tasks["server-0"].TaskID]
	for _, name := range []string{"agent-0", "agent-1"} {
		if c.seenAt[obs.Tasks[name].TaskID] < serverSeen {
			t.Errorf("%s launched before server-0", name)
		}
	}
}

// Every pending task that fits is launched from one offer round: one OFFERS event, one
// ACCEPT per offer used.
func TestAllPendingLaunchedFromOneOfferRound(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	var rounds atomic.Int32
	b.decided = func(time.Duration) { rounds.Add(1) }

	desired := []TaskSpec{smallServer(0), smallServer(1), smallServer(2)}
	for i := range 6 {
		desired = append(desired, smallAgent(i, 3))
	}
	// Plan order does not cost rounds: everything that fits goes in this one, servers first.
	c := newController(t, b, clusterConfig("one-round", s.URL()), desired...)
	obs := c.until("all running", allRunning(taskNames(desired)...))

	if n := rounds.Load(); n != 1 {
		t.Errorf("%d offer rounds launched tasks, want 1", n)
	}
	if got := b.metric("mesosk3s_bridge_task_launches_total"); got != float64(len(desired)) {
		t.Errorf("launches %v, want %d", got, len(desired))
	}
	if accepted := b.metric("mesosk3s_bridge_offers_accepted_total"); accepted > 3 {
		t.Errorf("%v ACCEPT calls for 3 agents", accepted)
	}
	hosts := map[string]bool{}
	for _, name := range []string{"server-0", "server-1", "server-2"} {
		hosts[obs.Tasks[name].Hostname] = true
	}
	if len(hosts) != 3 {
		t.Errorf("servers share hosts despite hostname:UNIQUE: %v", hosts)
	}
	if n := len(frameworkTasks(s, obs.FrameworkID)); n != len(desired) {
		t.Errorf("%d tasks in the master, want %d", n, len(desired))
	}
}

// A killed task that is still desired comes back with the newest spec.
func TestKillRelaunchesWithNewestSpec(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	agent := smallAgent(0, 0)
	c := newController(t, b, clusterConfig("rollout", s.URL()), agent)
	before := c.until("agent running", allRunning("agent-0")).Tasks["agent-0"]

	agent.SpecHash = "new-spec"
	c.desired = []TaskSpec{agent}
	c.reconcile()
	if err := b.Kill(t.Context(), c.cfg.Key(), "agent-0"); err != nil {
		t.Fatal(err)
	}
	after := c.until("relaunched", func(o Observed) bool {
		t := o.Tasks["agent-0"]
		return t.TaskID != before.TaskID && t.State == TaskRunning
	}).Tasks["agent-0"]
	if after.SpecHash != "new-spec" {
		t.Fatalf("relaunch %+v", after)
	}
	var states []string
	for _, task := range s.State().Frameworks[0].CompletedTasks {
		states = append(states, task.Name+"="+task.State)
	}
	sort.Strings(states)
	if len(states) != 1 || states[0] != "agent-0=TASK_KILLED" {
		t.Fatalf("completed tasks %v", states)
	}
}

// A relaunched task finds its data at the same $DATA_DIR: the volume itself, not a path
// through one run's sandbox, whose link the agent removes when the task ends (seen on a
// real Mesos: K3s recorded paths through the first sandbox and broke on every relaunch).
func TestDataDirIsTheSameOnEveryRun(t *testing.T) {
	s := newEmulator(t, mesostest.Options{}, mesostest.AgentConfig{Hostname: "127.0.0.1", CPUs: 4, MemMiB: 8192, DiskMiB: 8192,
		Ports: []mesostest.PortRange{{Begin: 31000, End: 31100}}, RunProcesses: true})
	b := newTestBridge(t)
	task := serverSpec()
	task.Fetch, task.HealthCheck, task.Secrets = nil, nil, nil
	task.Command = `echo "$DATA_DIR" >> "$DATA_DIR/runs"; exec sleep 600`
	task.Volume = &VolumeRequest{SizeMiB: 64, ContainerPath: "app-data"}
	c := newController(t, b, clusterConfig("relaunch", s.URL()), task)
	sandboxOf := func(taskID string) string {
		for _, f := range s.State().Frameworks {
			for _, tk := range f.Tasks {
				if tk.ID == taskID {
					return tk.Sandbox
				}
			}
		}
		return ""
	}
	// runsIn reads what the runs wrote, through the given run's sandbox.
	runsIn := func(sandbox string, n int) []string {
		var runs []string
		eventually(t, fmt.Sprintf("%d runs recorded", n), func() bool {
			b, err := os.ReadFile(filepath.Join(sandbox, "app-data", "runs"))
			runs = strings.Fields(string(b))
			return err == nil && len(runs) == n
		})
		return runs
	}
	first := c.until("first run", allRunning("server-0")).Tasks["server-0"]
	firstSandbox := sandboxOf(first.TaskID)
	runsIn(firstSandbox, 1)
	if err := b.Kill(t.Context(), c.cfg.Key(), "server-0"); err != nil {
		t.Fatal(err)
	}
	second := c.until("second run", func(o Observed) bool {
		return o.Tasks["server-0"].TaskID != first.TaskID && o.Tasks["server-0"].State == TaskRunning
	}).Tasks["server-0"]
	secondSandbox := sandboxOf(second.TaskID)
	runs := runsIn(secondSandbox, 2)
	if runs[0] != runs[1] || strings.Contains(runs[0], "/runs/") || strings.HasPrefix(runs[0], secondSandbox) {
		t.Fatalf("DATA_DIR moved between runs or lies in a run's sandbox: %q (sandbox %s)", runs, secondSandbox)
	}
	// The first run's way to the volume is gone: a path through it would be broken.
	if _, err := os.Stat(filepath.Join(firstSandbox, "app-data", "runs")); err == nil {
		t.Errorf("the first run's sandbox still reaches the volume; the emulator is kinder than Mesos")
	}
}
