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
// deployment): the master fails one over when the other subscribes. The one failed over
// must stand down and say so, not take the framework back on its next reconnect. (Which
// one loses depends on who subscribed last: on a loaded machine the first bridge's
// watchdog may reconnect after the second subscribed.)
func TestFailedOverBridgeStandsDown(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	first := newTestBridge(t)
	c := runningCluster(t, s, first, "contested")

	second := newTestBridge(t)
	intruder := newController(t, second, c.cfg, c.desired...)
	intruder.known = c.known
	var loser, winner *controller
	eventually(t, "one bridge stood down", func() bool {
		for _, pair := range [][2]*controller{{c, intruder}, {intruder, c}} {
			if o := pair[0].reconcile(); o.Connection.Reason == ConnFailedOver {
				loser, winner = pair[0], pair[1]
				if !strings.Contains(o.Connection.Message, "another scheduler") {
					t.Fatalf("connection %+v", o.Connection)
				}
				return true
			}
		}
		return false
	})
	subscriptions := loser.b.metric("mesosk3s_bridge_subscriptions_total")
	// Many reconnect back-offs later the winner still holds the framework.
	time.Sleep(time.Second)
	if o := winner.reconcile(); !o.Connection.Connected {
		t.Fatalf("the framework was taken back from the bridge that holds it: %+v", o.Connection)
	}
	if o := loser.reconcile(); o.Connection.Reason != ConnFailedOver {
		t.Fatalf("the bridge failed over did not stay down: %+v", o.Connection)
	}
	if got := loser.b.metric("mesosk3s_bridge_subscriptions_total"); got != subscriptions {
		t.Fatalf("the bridge that stood down subscribed again (%v, then %v)", subscriptions, got)
	}
}

// Tasks with host-global resources (HostExclusive) of different clusters never share a
// host: on two hosts, a second cluster places one such agent beside the first cluster's
// and says why the other waits.
func TestHostExclusiveTasksOfClustersKeepApart(t *testing.T) {
	s := newEmulator(t, mesostest.Options{}, agentConfig("node-1", 4), agentConfig("node-2", 4))
	b := newTestBridge(t)
	exclusive := func(i int) TaskSpec {
		a := smallAgent(i, 0)
		a.HostExclusive = "k3s-agent"
		a.Constraints = []Constraint{{Field: FieldHostname, Operator: OpUnique}}
		return a
	}
	first := newController(t, b, clusterConfig("first", s.URL()), exclusive(0))
	obs := first.until("the first cluster's agent", allRunning("agent-0"))
	taken := obs.Tasks["agent-0"].Hostname

	second := newController(t, b, clusterConfig("second", s.URL()), exclusive(0), exclusive(1))
	second.until("one agent placed, one refused with the reason", func(o Observed) bool {
		running := 0
		for _, task := range o.Tasks {
			if task.State == TaskRunning {
				running++
				if task.Hostname == taken {
					t.Fatalf("%s shares %s with the first cluster's agent", task.Name, taken)
				}
			}
		}
		why := strings.Join([]string{o.Unplaced["agent-0"], o.Unplaced["agent-1"]}, " ")
		return running == 1 && strings.Contains(why, "host runs a k3s-agent task of another cluster")
	})
}
