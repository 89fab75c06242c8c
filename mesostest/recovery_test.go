package mesostest

import (
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func reconcileCall(tasks ...scheduler.Call_Reconcile_Task) *scheduler.Call {
	return &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{Tasks: tasks}}
}

func reconcileTask(taskID string, agentID *mesos.AgentID) scheduler.Call_Reconcile_Task {
	return scheduler.Call_Reconcile_Task{TaskID: mesos.TaskID{Value: taskID}, AgentID: agentID}
}

// expectNoReconciliation checks that no reconciliation update arrives
// within d.
func (c *rawClient) expectNoReconciliation(d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatal("stream closed")
			}
			if ev.Type == scheduler.Event_UPDATE && ev.Update.Status.GetReason() == mesos.REASON_RECONCILIATION {
				c.t.Fatalf("unexpected reconciliation answer %+v", ev.Update.Status)
			}
			if ev.Type != scheduler.Event_HEARTBEAT {
				c.backlog = append(c.backlog, ev)
			}
		case <-deadline:
			return
		}
	}
}

func (c *rawClient) nextReconciliation(taskID string) mesos.TaskStatus {
	c.t.Helper()
	return c.next(2*time.Second, func(e *scheduler.Event) bool {
		return isUpdateOf(e, taskID) && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
	}).Update.Status
}

// Master::_recover, Master::reconcile and Master::__reregisterSlave
// (src/master/master.cpp): a restarted master knows its agents only as
// recovered; until they reregister it shows none of their tasks, implicit
// reconciliation leaves them out and explicit reconciliation involving a
// recovered agent is not answered; frameworks come back by resubscribing
// with their ID or with their agents.
func TestMasterRestartRecoversAgentsAndDropsReconciliation(t *testing.T) {
	opts := testOptions()
	opts.AgentReregistrationDelay = 700 * time.Millisecond
	opts.ServeAdmin = true
	s := newTestServer(t, opts, smallAgent("127.0.0.1"), processAgent("127.0.0.2"))
	c := newRawClient(t, s.URL(), mediaJSON)
	info := frameworkInfo("restart", partitionAwareCaps...)
	c.subscribe(info)
	offers := map[string]mesos.Offer{}
	for len(offers) < 2 {
		ev := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
		for _, o := range ev.Offers.Offers {
			offers[o.GetHostname()] = o
		}
	}
	a, b := offers["127.0.0.1"], offers["127.0.0.2"]
	c.mustCall(launchCall(a.ID, commandTask("sim", a.AgentID.Value, "sleep 60", 0.1, 32)))
	c.mustCall(launchCall(b.ID, commandTask("proc", b.AgentID.Value, "exec sleep 60", 0.1, 32)))
	for _, id := range []string{"sim", "proc"} {
		c.ack(c.nextUpdate(id, mesos.TASK_STARTING, 5*time.Second))
		c.ack(c.nextUpdate(id, mesos.TASK_RUNNING, 5*time.Second))
	}
	oldMaster := s.MasterID()
	frameworkID := c.frameworkID
	if resp, err := http.PostForm(s.URL()+"/admin/restart-master", url.Values{}); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/admin/restart-master: %v %v", resp, err)
	}
	c.expectClosed(2 * time.Second)
	if s.MasterID() == oldMaster {
		t.Fatal("the restarted master kept its ID")
	}
	st := s.State()
	if len(st.Frameworks) != 0 || len(st.Slaves) != 0 || len(st.RecoveredSlaves) != 2 {
		t.Fatalf("restarted master: %d frameworks, %d agents, %d recovered", len(st.Frameworks), len(st.Slaves), len(st.RecoveredSlaves))
	}
	// Unknown until it resubscribes.
	if status, body := c.call(reconcileCall()); status != http.StatusBadRequest {
		t.Fatalf("call of a framework the master does not know: %d %s", status, body)
	}
	info.ID = &mesos.FrameworkID{Value: frameworkID}
	if ev := c.subscribe(info); ev.Type != scheduler.Event_SUBSCRIBED || ev.Subscribed.FrameworkID.Value != frameworkID {
		t.Fatalf("resubscription %+v", ev)
	}
	if tasks := s.State().Frameworks[0].Tasks; len(tasks) != 0 {
		t.Fatalf("tasks of recovered agents in /state: %+v", tasks)
	}
	c.mustCall(reconcileCall())
	c.mustCall(reconcileCall(reconcileTask("sim", &a.AgentID), reconcileTask("sim", nil), reconcileTask("ghost", nil)))
	c.expectNoReconciliation(300 * time.Millisecond)

	// One agent reregisters: its task is known, unknown tasks on it are
	// gone; without an agent ID nothing is answered while the other one is
	// still recovered.
	if err := s.RestoreAgent("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	c.mustCall(reconcileCall(reconcileTask("sim", &a.AgentID)))
	if rec := c.nextReconciliation("sim"); rec.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("sim after its agent reregistered: %s", rec.GetState())
	}
	c.mustCall(reconcileCall(reconcileTask("ghost", &a.AgentID)))
	if rec := c.nextReconciliation("ghost"); rec.GetState() != mesos.TASK_GONE {
		t.Fatalf("unknown task on a registered agent: %s", rec.GetState())
	}
	c.mustCall(reconcileCall(reconcileTask("proc", nil), reconcileTask("ghost", nil)))
	c.expectNoReconciliation(200 * time.Millisecond)

	// The other agent reregisters after the delay; its process ran on.
	eventually(t, 3*time.Second, "the second agent reregistered", func() bool { return len(s.State().RecoveredSlaves) == 0 })
	c.mustCall(reconcileCall())
	if rec := c.nextReconciliation("proc"); rec.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("proc after its agent reregistered: %s", rec.GetState())
	}
	env, err := s.TaskEnvironment("proc")
	if err != nil {
		t.Fatal(err)
	}
	pids := containerProcesses(t, env["MESOS_SANDBOX"])
	if len(pids) == 0 || syscall.Kill(pids[0].pid, 0) != nil {
		t.Fatal("the process task did not survive the master restart")
	}
	c.mustCall(reconcileCall(reconcileTask("ghost", nil)))
	if rec := c.nextReconciliation("ghost"); rec.GetState() != mesos.TASK_UNKNOWN {
		t.Fatalf("unknown task without agent once all reregistered: %s", rec.GetState())
	}
}

// --agent_reregister_timeout: an agent that does not come back after a
// master failover is marked unreachable (Master::recoveredSlavesTimeout);
// reconciliation then says TASK_UNREACHABLE, and when it does come back its
// tasks are readmitted with an update.
func TestAgentThatDoesNotReregisterBecomesUnreachable(t *testing.T) {
	opts := testOptions()
	opts.AgentReregistrationDelay = time.Hour
	opts.AgentReregisterTimeout = 300 * time.Millisecond
	s := newTestServer(t, opts, smallAgent("127.0.0.1"))
	standby := s.AddMaster()
	c := newRawClient(t, s.URL(), mediaProtobuf)
	info := frameworkInfo("timeout", partitionAwareCaps...)
	c.subscribe(info)
	offer := launchRunning(t, c, "t1")
	if err := s.FailoverTo(standby); err != nil {
		t.Fatal(err)
	}
	c.expectClosed(2 * time.Second)
	info.ID = &mesos.FrameworkID{Value: c.frameworkID}
	nc := newRawClient(t, standby, mediaProtobuf)
	nc.subscribe(info)
	eventually(t, 2*time.Second, "agent marked unreachable", func() bool { return s.State().UnreachableSlaves == 1 })
	nc.mustCall(reconcileCall(reconcileTask("t1", &offer.AgentID)))
	rec := nc.nextReconciliation("t1")
	if rec.GetState() != mesos.TASK_UNREACHABLE || rec.UnreachableTime == nil {
		t.Fatalf("reconciled %s (unreachable time %v)", rec.GetState(), rec.UnreachableTime)
	}
	if err := s.RestoreAgent("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	back := nc.next(2*time.Second, func(e *scheduler.Event) bool {
		return isUpdateOf(e, "t1") && e.Update.Status.GetReason() == mesos.REASON_AGENT_REREGISTERED
	}).Update.Status
	if back.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("readmitted as %s", back.GetState())
	}
}
