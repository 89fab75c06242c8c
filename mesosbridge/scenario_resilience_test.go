package mesosbridge

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// runningCluster starts a cluster of one server and two agents and waits for them.
func runningCluster(t *testing.T, s *mesostest.Server, b *testBridge, name string, masters ...string) *controller {
	t.Helper()
	if len(masters) == 0 {
		masters = []string{s.URL()}
	}
	c := newController(t, b, clusterConfig(name, masters...), smallServer(0), smallAgent(0, 1), smallAgent(1, 1))
	c.until("cluster running", allRunning("server-0", "agent-0", "agent-1"))
	return c
}

// taskIDs maps task names to task IDs.
func taskIDs(o Observed) map[string]string {
	ids := map[string]string{}
	for name, t := range o.Tasks {
		ids[name] = t.TaskID
	}
	return ids
}

// assertSameTasks checks the cluster still has exactly the tasks it had, in the bridge
// and in the master: nothing lost, nothing duplicated.
func assertSameTasks(t *testing.T, s *mesostest.Server, before, after Observed) {
	t.Helper()
	if after.FrameworkID != before.FrameworkID {
		t.Errorf("framework ID changed from %s to %s", before.FrameworkID, after.FrameworkID)
	}
	for name, id := range taskIDs(before) {
		if got := after.Tasks[name]; got.TaskID != id || got.State != TaskRunning {
			t.Errorf("%s: %s %s, want %s running", name, got.TaskID, got.State, id)
		}
	}
	live := frameworkTasks(s, before.FrameworkID)
	if len(live) != len(before.Tasks) {
		t.Errorf("master has %d tasks, want %d", len(live), len(before.Tasks))
	}
	for _, fw := range s.State().Frameworks {
		for _, task := range fw.CompletedTasks {
			t.Errorf("task %s (%s) ended: %s", task.Name, task.ID, task.State)
		}
	}
}

// settleOfferRounds lets a few allocation rounds pass, in which a duplicate launch
// would happen if the bridge were going to make one.
func settleOfferRounds() { time.Sleep(15 * testAllocation) }

func TestRestartResubscribesAndAdoptsRunningTasks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		withKnown bool
		// slowCalls delays every call, so offers overtake the reconciliation answers:
		// only the reconciliation barrier keeps the bridge from launching duplicates.
		slowCalls time.Duration
	}{
		{"known tasks from status", true, 0},
		{"implicit reconciliation only", false, 0},
		{"implicit reconciliation only, slow master", false, 5 * testAllocation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newEmulator(t, mesostest.Options{})
			first := newTestBridge(t)
			c := runningCluster(t, s, first, "restart")
			before := c.last
			first.Stop() // the operator goes away; Mesos keeps the tasks
			s.DelayCalls(tc.slowCalls)
			// Fresh resources, under no decline filter of the first bridge, are offered as
			// soon as the framework resubscribes.
			s.AddAgent(agentConfig("node-4", 4))

			second := newTestBridge(t)
			c.b = second
			if !tc.withKnown {
				c.known = nil
			}
			c.until("adopted", allRunning("server-0", "agent-0", "agent-1"))
			settleOfferRounds()
			after := c.reconcile()
			assertSameTasks(t, s, before, after)
			if got := second.metric("mesosk3s_bridge_task_launches_total"); got != 0 {
				t.Errorf("restarted bridge launched %v tasks", got)
			}
			if tc.withKnown && after.Tasks["server-0"].Ports["api"] == 0 {
				t.Errorf("adopted server lost its ports: %+v", after.Tasks["server-0"])
			}
		})
	}
}

func TestSurvivesDroppedStream(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "dropped")
	before := c.last
	for i := range 3 {
		if err := s.DropStream(before.FrameworkID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "resubscription", func() bool {
			return b.metric("mesosk3s_bridge_subscriptions_total") == float64(i+2) && c.reconcile().Connection.Connected
		})
		if n := goroutinesIn("mesosbridge.(*subscription).read"); n != 1 {
			t.Fatalf("%d event readers after %d reconnects, want 1", n, i+1)
		}
	}
	settleOfferRounds()
	assertSameTasks(t, s, before, c.reconcile())

	// The loop still works: a new task launches over the new subscription.
	c.desired = append(c.desired, smallAgent(2, 1))
	c.until("agent-2 running", allRunning("agent-2"))
}

func TestDetectsSilencedHeartbeats(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t, func(o *Options) { o.HeartbeatMisses = 3 })
	c := runningCluster(t, s, b, "silent")
	before := c.last
	// Nothing else is pending, so the stream is quiet but for heartbeats.
	if err := s.StopHeartbeats(before.FrameworkID, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "watchdog reconnect", func() bool { return b.metric("mesosk3s_bridge_subscriptions_total") >= 2 })
	if took := time.Since(start); took < 3*testHeartbeat {
		t.Errorf("reconnected after %v, before 3 heartbeat intervals passed", took)
	}
	if b.metric("mesosk3s_bridge_reconnects_total", "reason", "heartbeat") < 1 {
		t.Errorf("reconnect not counted")
	}
	after := c.until("subscribed again", func(o Observed) bool { return o.Connection.Connected })
	assertSameTasks(t, s, before, after)
}

func TestFollowsMasterFailover(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	standby := s.AddMaster()
	b := newTestBridge(t)
	// Only the first master is configured: after the failover it answers 307 and the
	// bridge follows the redirect, whose Location is protocol-relative.
	c := runningCluster(t, s, b, "failover", s.URL())
	before := c.last
	if err := s.FailoverTo(standby); err != nil {
		t.Fatal(err)
	}
	after := c.until("subscribed at the new leader", func(o Observed) bool {
		return o.Connection.Connected && strings.Contains(o.Connection.Message, strings.TrimPrefix(standby, "http://"))
	})
	assertSameTasks(t, s, before, after)
	c.desired = append(c.desired, smallAgent(2, 1))
	c.until("agent-2 running after failover", allRunning("agent-2"))
}

func TestTriesMastersInTurn(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	runningCluster(t, s, b, "masters", "127.0.0.1:1", s.URL())
}

func TestSurvivesNoLeader(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "no-leader")
	before := c.last
	s.SetUnavailable(true)
	c.until("503 reported", func(o Observed) bool {
		return o.Connection.Reason == ConnUnreachable && strings.Contains(o.Connection.Message, "503")
	})
	s.SetUnavailable(false)
	after := c.until("subscribed again", func(o Observed) bool { return o.Connection.Connected })
	assertSameTasks(t, s, before, after)
}

func TestFailedTaskReportedWithinOneEvent(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "failure")
	failed := c.last.Tasks["agent-0"]
	for drained := false; !drained; {
		select {
		case <-b.Events():
		case <-time.After(5 * testHeartbeat):
			drained = true
		}
	}
	if err := s.FailTask(failed.TaskID, mesos.TASK_FAILED, mesos.REASON_COMMAND_EXECUTOR_FAILED, "k3s agent exited"); err != nil {
		t.Fatal(err)
	}
	select {
	case key := <-b.Events():
		if key != c.cfg.Key() {
			t.Fatalf("event for %v", key)
		}
	case <-time.After(waitLong):
		t.Fatal("no event")
	}
	// The first event after the failure already shows it: a task that ended is relaunched
	// only by a later Ensure, so the controller always sees the end.
	obs, _ := b.Observe(c.cfg.Key())
	got := obs.Tasks["agent-0"]
	if got.TaskID != failed.TaskID || got.State != TaskFailed || got.Reason != "REASON_COMMAND_EXECUTOR_FAILED" ||
		got.Message != "k3s agent exited" {
		t.Fatalf("after one event: %+v", got)
	}
	c.until("agent-0 relaunched", func(o Observed) bool {
		return o.Tasks["agent-0"].TaskID != failed.TaskID && o.Tasks["agent-0"].State == TaskRunning
	})
}

func TestUnauthorizedCredentials(t *testing.T) {
	s := newEmulator(t, mesostest.Options{Credentials: map[string]string{"mesosk3s": "right-secret"}})
	b := newTestBridge(t)
	cfg := clusterConfig("auth", s.URL())
	cfg.Principal, cfg.Secret = "mesosk3s", "wrong-secret"
	c := newController(t, b, cfg, smallServer(0))
	obs := c.until("unauthorized", func(o Observed) bool { return o.Connection.Reason == ConnUnauthorized })
	msg := obs.Connection.Message
	if obs.Connection.Connected || !strings.Contains(msg, `principal "mesosk3s"`) || !strings.Contains(msg, "401") ||
		strings.Contains(msg, "secret") {
		t.Fatalf("connection %+v", obs.Connection)
	}
	// Fixing the Secret is picked up without a restart.
	c.cfg.Secret = "right-secret"
	c.until("running with the right credentials", allRunning("server-0"))
	if fw := s.State().Frameworks; len(fw) != 1 || fw[0].Principal != "mesosk3s" {
		t.Fatalf("frameworks %+v", fw)
	}
}

// A framework the master removed (here: after the bridge tore it down, a controller
// that still persists its ID) is never subscribed with again: the cluster starts over as
// a new framework, and says why.
func TestRemovedFrameworkIsNotReused(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "removed")
	id := c.cfg.FrameworkID
	eventually(t, "teardown", func() bool {
		done, err := b.Teardown(t.Context(), c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		return done
	})
	again := newController(t, b, clusterConfig("removed", s.URL()), smallServer(0))
	again.cfg.FrameworkID = id
	obs := again.until("a new framework", allRunning("server-0"))
	if obs.FrameworkID == id || obs.RemovedFrameworkID != id {
		t.Fatalf("framework %q (removed %q) after starting over from %q", obs.FrameworkID, obs.RemovedFrameworkID, id)
	}
}

// A KILL the master did not take is sent again on the next subscription.
func TestKillSurvivesRejectedCall(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "kill-retry")
	victim := c.last.Tasks["agent-1"]
	c.desired = c.desired[:2] // agent-1 is no longer wanted: killed, not relaunched
	c.reconcile()

	s.RejectCalls(500)
	if err := b.Kill(t.Context(), c.cfg.Key(), "agent-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejected call to end the subscription", func() bool {
		return b.metric("mesosk3s_bridge_reconnects_total", "reason", "call") >= 1
	})
	s.RejectCalls(0)
	obs := c.until("agent-1 killed", func(o Observed) bool { return o.Tasks["agent-1"].State == TaskKilled })
	if got := obs.Tasks["agent-1"]; got.TaskID != victim.TaskID {
		t.Fatalf("agent-1 relaunched as %s although no longer desired", got.TaskID)
	}
	if !obs.Connection.Connected || obs.Tasks["agent-0"].State != TaskRunning {
		t.Fatalf("after the retry: %s", describe(obs))
	}
}

// TestEndedTaskWaitsForTheNextEnsure: the bridge does not relaunch a task that ended
// until the controller has called Ensure again, so the controller sees every failure and
// decides the back-off; the next Ensure that still desires the task relaunches it.
func TestEndedTaskWaitsForTheNextEnsure(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "backoff")
	failed := c.last.Tasks["agent-0"]
	if err := s.FailTask(failed.TaskID, mesos.TASK_FAILED, mesos.REASON_COMMAND_EXECUTOR_FAILED, "k3s agent exited"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		obs, _ := b.Observe(c.cfg.Key())
		if obs.Tasks["agent-0"].State == TaskFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failure not observed: %+v", obs.Tasks["agent-0"])
		}
		time.Sleep(testAllocation)
	}
	// Many allocation rounds pass without an Ensure: nothing is relaunched.
	time.Sleep(20 * testAllocation)
	if obs, _ := b.Observe(c.cfg.Key()); obs.Tasks["agent-0"].TaskID != failed.TaskID {
		t.Fatalf("relaunched without an Ensure: %+v", obs.Tasks["agent-0"])
	}
	c.until("agent-0 relaunched after the next Ensure", func(o Observed) bool {
		return o.Tasks["agent-0"].TaskID != failed.TaskID && o.Tasks["agent-0"].State == TaskRunning
	})
}
