package mesosbridge

import (
	"strings"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// A Mesos operator tears the framework down (the same happens when its failover timeout
// runs out): Mesos killed every task, and the master refuses the old ID. The bridge must
// not go on re-subscribing with it while the tasks it last saw count as running; it says
// so, registers a new framework and relaunches everything under it, the server on its
// persistent volume.
func TestRemovedFrameworkStartsOver(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "removed-live")
	old := c.cfg.FrameworkID
	before := taskIDs(c.last)
	serverAgent := c.last.Tasks["server-0"].AgentID

	if err := s.TeardownFramework(old); err != nil {
		t.Fatal(err)
	}
	sawRemoved := false
	obs := c.until("a new framework with every task running again", func(o Observed) bool {
		if o.Connection.Reason == ConnFrameworkRemoved {
			sawRemoved = true
		}
		for name, task := range o.Tasks {
			if task.TaskID == before[name] && !task.State.Terminal() {
				if o.RemovedFrameworkID == old {
					t.Fatalf("%s of the removed framework still counts as %s", name, task.State)
				}
				return false
			}
		}
		return o.FrameworkID != "" && o.FrameworkID != old && allRunning("server-0", "agent-0", "agent-1")(o)
	})
	if !sawRemoved && !strings.Contains(obs.Connection.Message, old) {
		t.Logf("the FrameworkRemoved connection state was too brief to observe (connection now %+v)", obs.Connection)
	}
	if obs.RemovedFrameworkID != old {
		t.Fatalf("RemovedFrameworkID %q, want %q", obs.RemovedFrameworkID, old)
	}
	if got := obs.Tasks["server-0"].AgentID; got != serverAgent {
		t.Fatalf("server-0 relaunched on agent %s, not on %s where its volume is", got, serverAgent)
	}
	if n := len(frameworkTasks(s, obs.FrameworkID)); n != 3 {
		t.Fatalf("the new framework runs %d tasks, want 3", n)
	}
	if b.metric("mesosk3s_bridge_frameworks_removed_total") != 1 {
		t.Fatalf("frameworks_removed_total = %v", b.metric("mesosk3s_bridge_frameworks_removed_total"))
	}
}

// Two bridges on one framework (a leader-election overlap, `make run` beside a
// deployment): the master fails the first over when the second subscribes. The first
// must stand down and say so, not take the framework back on its next reconnect.
func TestFailedOverBridgeStandsDown(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	first := newTestBridge(t)
	c := runningCluster(t, s, first, "contested")

	second := newTestBridge(t)
	intruder := newController(t, second, c.cfg, c.desired...)
	intruder.known = c.known
	intruder.until("the second bridge subscribed", func(o Observed) bool { return o.Connection.Connected })
	obs := c.until("the first bridge stood down", func(o Observed) bool { return o.Connection.Reason == ConnFailedOver })
	if !strings.Contains(obs.Connection.Message, "another scheduler") {
		t.Fatalf("connection %+v", obs.Connection)
	}
	// Many reconnect back-offs later the second still holds the framework.
	time.Sleep(time.Second)
	if o := intruder.reconcile(); !o.Connection.Connected {
		t.Fatalf("the framework was taken back from the second bridge: %+v", o.Connection)
	}
	if o := c.reconcile(); o.Connection.Reason != ConnFailedOver {
		t.Fatalf("the first bridge did not stay down: %+v", o.Connection)
	}
	if got := first.metric("mesosk3s_bridge_subscriptions_total"); got != 1 {
		t.Fatalf("the first bridge subscribed %v times", got)
	}
}
