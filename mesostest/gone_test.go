package mesostest

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// An unreachable agent marked gone (Master::markGone): its task goes to
// TASK_GONE_BY_OPERATOR for a partition-aware framework, the agent is never offered
// again nor may it return, and reconciling the task names it gone.
func TestMarkAgentGone(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("node-1"), smallAgent("node-2"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := g.subscribe(frameworkInfo("gone", mesos.FrameworkInfo_Capability_MULTI_ROLE, mesos.FrameworkInfo_Capability_PARTITION_AWARE)); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	host, agentID := o.GetHostname(), o.AgentID.Value
	g.launch(o, commandTask("t1", agentID, "sleep 300", 0.1, 32))
	g.update("t1", 5*time.Second, inState(mesos.TASK_RUNNING))

	if err := s.MarkAgentGone(host); err == nil {
		t.Fatal("a registered agent was marked gone")
	}
	if err := s.LoseAgent(host); err != nil {
		t.Fatal(err)
	}
	g.update("t1", 2*time.Second, inState(mesos.TASK_UNREACHABLE))
	if err := s.MarkAgentGone(host); err != nil {
		t.Fatal(err)
	}
	st := g.update("t1", 2*time.Second, inState(mesos.TASK_GONE_BY_OPERATOR))
	if st.GetReason() != mesos.REASON_AGENT_REMOVED_BY_OPERATOR || st.GetMessage() != "Agent has been marked gone" {
		t.Fatalf("update %v %q", st.GetReason(), st.GetMessage())
	}
	if err := s.RestoreAgent(host); err == nil {
		t.Fatal("a gone agent reregistered")
	}
	for _, a := range s.State().Slaves {
		if a.ID == agentID {
			t.Fatalf("gone agent %s still in /state", agentID)
		}
	}
	g.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"t1": agentID})))
	st = g.update("t1", 2*time.Second, func(st mesos.TaskStatus) bool {
		return st.GetReason() == mesos.REASON_RECONCILIATION
	})
	if st.GetState() != mesos.TASK_GONE_BY_OPERATOR {
		t.Fatalf("reconciliation of a task on a gone agent: %v", st.GetState())
	}
}
