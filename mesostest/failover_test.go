package mesostest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// launchRunning launches a simulated task and acknowledges it to RUNNING.
func launchRunning(t *testing.T, c *rawClient, taskID string) mesos.Offer {
	t.Helper()
	o := c.nextOffer(2 * time.Second)
	call := launchCall(o.ID, dockerTask(taskID, o.AgentID.Value))
	call.Accept.Filters = &mesos.Filters{RefuseSeconds: proto.Float64(0)} // re-offer the rest at once
	c.mustCall(call)
	c.ack(c.nextUpdate(taskID, mesos.TASK_STARTING, 2*time.Second))
	c.ack(c.nextUpdate(taskID, mesos.TASK_RUNNING, 2*time.Second))
	return o
}

func TestFrameworkFailoverResumesWithSameID(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			info := frameworkInfo("failover", partitionAwareCaps...)
			c.subscribe(info)
			id := c.frameworkID
			launchRunning(t, c, "agent-0")

			// The scheduler goes away; the task keeps running.
			c.closeStream()
			eventually(t, 2*time.Second, "disconnected", func() bool {
				st := s.State()
				return len(st.Frameworks) == 1 && !st.Frameworks[0].Active
			})
			if st := stateTask(s, "agent-0"); st == nil || st.State != "TASK_RUNNING" {
				t.Fatalf("task after disconnect: %+v", st)
			}
			info.ID = &mesos.FrameworkID{Value: id}
			ev := c.subscribe(info)
			if ev.Type != scheduler.Event_SUBSCRIBED || ev.Subscribed.FrameworkID.Value != id {
				t.Fatalf("resubscribe: %+v", ev)
			}
			st := s.State()
			if len(st.Frameworks) != 1 || !st.Frameworks[0].Active || len(st.Frameworks[0].Tasks) != 1 {
				t.Fatalf("state after resubscribe: %+v", st.Frameworks)
			}

			// A second SUBSCRIBE with the ID fails the first connection over.
			second := newRawClient(t, s.URL(), media)
			second.subscribe(info)
			first := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_ERROR })
			if first.Error.Message != "Framework failed over" {
				t.Fatalf("old stream got %q", first.Error.Message)
			}
			c.expectClosed(2 * time.Second)
			if status, _ := c.call(&scheduler.Call{Type: scheduler.Call_REVIVE}); status != http.StatusBadRequest {
				t.Fatalf("old stream ID accepted: %d", status)
			}
			second.mustCall(&scheduler.Call{Type: scheduler.Call_REVIVE})
		})
	}
}

func TestFailoverTimeoutRemovesFramework(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	info := frameworkInfo("short-lived")
	info.FailoverTimeout = proto.Float64(0.2)
	c.subscribe(info)
	id := c.frameworkID
	launchRunning(t, c, "doomed")
	if err := s.DropStream(id); err != nil {
		t.Fatal(err)
	}
	c.expectClosed(2 * time.Second)
	eventually(t, 3*time.Second, "framework removed", func() bool {
		st := s.State()
		return len(st.Frameworks) == 0 && len(st.CompletedFrameworks) == 1
	})
	st := s.State()
	done := st.CompletedFrameworks[0]
	if done.ID != id || len(done.CompletedTasks) != 1 || done.CompletedTasks[0].State != "TASK_KILLED" {
		t.Fatalf("completed framework %+v", done)
	}
	if st.Slaves[0].UsedResources.CPUs != 0 {
		t.Fatalf("resources still used: %+v", st.Slaves[0].UsedResources)
	}
	// The removed framework cannot come back.
	info.ID = &mesos.FrameworkID{Value: id}
	if ev := c.subscribe(info); ev.Type != scheduler.Event_ERROR || ev.Error.Message != "Framework has been removed" {
		t.Fatalf("resubscribe after removal: %+v", ev)
	}
}

func TestTeardownRemovesEverything(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			c.subscribe(frameworkInfo("teardown"))
			launchRunning(t, c, "server-0")
			c.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
			c.expectClosed(2 * time.Second)
			st := s.State()
			if len(st.Frameworks) != 0 {
				t.Fatalf("frameworks after teardown: %+v", st.Frameworks)
			}
			if st.Slaves[0].UsedResources.CPUs != 0 || st.Slaves[0].OfferedResources.CPUs != 0 {
				t.Fatalf("agent still busy: %+v", st.Slaves[0])
			}
		})
	}
}

func TestAgentLoss(t *testing.T) {
	cases := []struct {
		name  string
		caps  []mesos.FrameworkInfo_Capability_Type
		state mesos.TaskState
	}{
		{"partition-aware", partitionAwareCaps, mesos.TASK_UNREACHABLE},
		{"legacy", nil, mesos.TASK_LOST},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), mediaProtobuf)
			c.subscribe(frameworkInfo("loss", tc.caps...))
			launchRunning(t, c, "t1")
			offer := c.nextOffer(2 * time.Second) // the rest of the agent, outstanding
			if err := s.LoseAgent("127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			rescind := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_RESCIND })
			if rescind.Rescind.OfferID != offer.ID {
				t.Fatalf("rescinded %v, want %v", rescind.Rescind.OfferID, offer.ID)
			}
			st := c.nextUpdate("t1", tc.state, 2*time.Second)
			if st.GetReason() != mesos.REASON_AGENT_REMOVED || st.UnreachableTime == nil || len(st.UUID) != 0 {
				t.Fatalf("loss update %+v", st)
			}
			agentID := offer.AgentID
			c.mustCall(&scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{
				Tasks: []scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: "t1"}, AgentID: &agentID}}}})
			rec := c.next(2*time.Second, func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
			}).Update.Status
			if rec.GetState() != tc.state {
				t.Fatalf("reconciled %s, want %s", rec.GetState(), tc.state)
			}
			if err := s.RestoreAgent("127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			// Master::__reregisterSlave readmits every task (non-partition-
			// aware ones too, since Mesos 1.5) and tells its framework.
			back := c.next(2*time.Second, func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_AGENT_REREGISTERED
			}).Update.Status
			if back.GetState() != mesos.TASK_RUNNING || back.GetMessage() != "Unreachable agent re-reregistered" || back.GetSource() != mesos.SOURCE_MASTER {
				t.Fatalf("reregistration update %+v", back)
			}
			c.mustCall(&scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{
				Tasks: []scheduler.Call_Reconcile_Task{{TaskID: mesos.TaskID{Value: "t1"}, AgentID: &agentID}}}})
			rec = c.next(2*time.Second, func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
			}).Update.Status
			if rec.GetState() != mesos.TASK_RUNNING {
				t.Fatalf("after restore reconciled %s, want TASK_RUNNING", rec.GetState())
			}
		})
	}
}

func TestMasterFailoverRaw(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	standby := s.AddMaster()
	c := newRawClient(t, s.URL(), mediaJSON)
	info := frameworkInfo("ha", partitionAwareCaps...)
	c.subscribe(info)
	launchRunning(t, c, "server-0")
	if err := s.FailoverTo(standby); err != nil {
		t.Fatal(err)
	}
	c.expectClosed(2 * time.Second)
	if s.LeaderURL() != standby {
		t.Fatalf("leader %s", s.LeaderURL())
	}
	// The old leader now redirects.
	info.ID = &mesos.FrameworkID{Value: c.frameworkID}
	sub := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, FrameworkID: info.ID, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: info}}
	if status, _, _ := c.post(c.encode(sub), map[string]string{"Content-Type": mediaJSON}); status != http.StatusTemporaryRedirect {
		t.Fatalf("old leader answered %d", status)
	}
	nc := newRawClient(t, standby, mediaJSON)
	ev := nc.subscribe(info)
	if ev.Type != scheduler.Event_SUBSCRIBED || ev.Subscribed.FrameworkID.Value != info.ID.Value {
		t.Fatalf("resubscribe to new leader: %+v", ev)
	}
	if st := stateTask(s, "server-0"); st == nil || st.State != "TASK_RUNNING" {
		t.Fatalf("task lost across master failover: %+v", st)
	}
	// GET /redirect points at the leader from any master.
	rc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rr, err := rc.Get(s.URL() + "/master/redirect")
	if err != nil {
		t.Fatal(err)
	}
	rr.Body.Close()
	if rr.StatusCode != http.StatusTemporaryRedirect || rr.Header.Get("Location") != "//"+strings.TrimPrefix(standby, "http://") {
		t.Fatalf("/redirect: %d %q", rr.StatusCode, rr.Header.Get("Location"))
	}
	// Non-leaders redirect /state to the leader, as Master::Http::state does.
	rs, err := rc.Get(s.URL() + "/state")
	if err != nil {
		t.Fatal(err)
	}
	rs.Body.Close()
	if rs.StatusCode != http.StatusTemporaryRedirect || rs.Header.Get("Location") != "//"+strings.TrimPrefix(standby, "http://")+"/state" {
		t.Fatalf("/state on non-leader: %d %q", rs.StatusCode, rs.Header.Get("Location"))
	}
}
