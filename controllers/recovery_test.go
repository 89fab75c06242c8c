package controllers_test

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

func (h *harness) taskStatus(cluster, name string) v1alpha1.TaskStatus {
	for _, t := range h.get(cluster).Status.Tasks {
		if t.Name == name {
			return t
		}
	}
	return v1alpha1.TaskStatus{}
}

// TestKilledAgentIsRelaunched: a task killed behind the operator's back is relaunched
// under the same name with a new Mesos task ID, and the cluster comes back to Ready.
func TestKilledAgentIsRelaunched(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("heal", `{remediation: {relaunchBackoff: 200ms}}`)
	h.waitCondition("heal", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)

	before := h.taskStatus("heal", "agent-0")
	if err := h.mesos.FailTask(before.TaskID, mesos.TASK_KILLED, mesos.REASON_EXECUTOR_TERMINATED, "killed by an operator"); err != nil {
		t.Fatal(err)
	}
	h.eventually(waitDeploy, "agent-0 relaunched and ready", func() bool {
		st := h.taskStatus("heal", "agent-0")
		return st.TaskID != before.TaskID && st.State == "TASK_RUNNING" &&
			conditionIs(h.get("heal"), v1alpha1.ConditionAgentsReady, metav1.ConditionTrue)
	}, h.describe("heal"))
	after := h.taskStatus("heal", "agent-0")
	if after.Restarts != 1 || after.ConsecutiveFailures != 1 {
		t.Fatalf("restarts %d, consecutive failures %d; want 1 and 1", after.Restarts, after.ConsecutiveFailures)
	}
	if live := h.liveTasks("heal"); len(live["agent-0"]) != 1 {
		t.Fatalf("want exactly one agent-0 on Mesos, got %v", h.mesosTasks())
	}
}

// TestRepeatedFailuresStall: a server that keeps failing is relaunched with back-off and,
// at the failure threshold, the cluster is Stalled with the reason; kstatus would read
// Failed. It keeps relaunching, and recovers when the task serves again.
func TestRepeatedFailuresStall(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("flaky", `{agents: {replicas: 0}, remediation: {relaunchBackoff: 100ms, maxRelaunchBackoff: 400ms, failureThreshold: 3}}`)
	h.waitCondition("flaky", v1alpha1.ConditionReady, metav1.ConditionTrue, waitDeploy)

	for i := 1; i <= 3; i++ {
		var id string
		h.eventually(waitDeploy, "server-0 running again", func() bool {
			st := h.taskStatus("flaky", "server-0")
			id = st.TaskID
			return st.State == "TASK_RUNNING" && int(st.ConsecutiveFailures) == i-1
		}, h.describe("flaky"))
		if err := h.mesos.FailTask(id, mesos.TASK_FAILED, mesos.REASON_COMMAND_EXECUTOR_FAILED, "k3s exited with status 1"); err != nil {
			t.Fatal(err)
		}
		h.eventually(10*time.Second, "the failure counted", func() bool {
			return h.taskStatus("flaky", "server-0").ConsecutiveFailures == int32(i)
		}, h.describe("flaky"))
	}
	h.waitCondition("flaky", v1alpha1.ConditionStalled, metav1.ConditionTrue, 10*time.Second)
	c := h.get("flaky")
	stalled := metaCondition(c, v1alpha1.ConditionStalled)
	if stalled.Reason != v1alpha1.ReasonTooManyFailures || c.Status.Phase != v1alpha1.PhaseFailed {
		t.Fatalf("stalled %+v, phase %s", stalled, c.Status.Phase)
	}
	if reconciling := metaCondition(c, v1alpha1.ConditionReconciling); reconciling.Status != metav1.ConditionFalse {
		t.Fatalf("a stalled cluster must not also be Reconciling (kstatus): %+v", reconciling)
	}
	// It still relaunches (at the capped back-off) and the server comes back.
	h.eventually(waitDeploy, "server-0 relaunched after stalling", func() bool {
		return h.taskStatus("flaky", "server-0").State == "TASK_RUNNING"
	}, h.describe("flaky"))
}

// TestLostAgentHostIsReplaced: an agent host goes away (partition-aware: the task is
// UNREACHABLE, not gone); after the relaunch back-off its K3s agent is replaced on another
// host, and when the host returns the old task is killed: one agent-0 runs.
func TestLostAgentHostIsReplaced(t *testing.T) {
	h := newHarness(t, 4)
	h.apply("partition", `{agents: {replicas: 2}, remediation: {relaunchBackoff: 500ms}}`)
	h.waitCondition("partition", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	lost := h.taskStatus("partition", "agent-0")
	if err := h.mesos.LoseAgent(lost.AgentHost); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "agent-0 reported unreachable", func() bool {
		return h.taskStatus("partition", "agent-0").State == "TASK_UNREACHABLE"
	}, h.describe("partition"))
	h.eventually(waitDeploy, "agent-0 replaced on another host", func() bool {
		st := h.taskStatus("partition", "agent-0")
		return st.TaskID != lost.TaskID && st.State == "TASK_RUNNING" && st.AgentHost != lost.AgentHost &&
			conditionIs(h.get("partition"), v1alpha1.ConditionAgentsReady, metav1.ConditionTrue)
	}, h.describe("partition"))

	if err := h.mesos.RestoreAgent(lost.AgentHost); err != nil {
		t.Fatal(err)
	}
	h.eventually(waitDeploy, "one agent-0 after the host returned", func() bool {
		return len(h.liveTasks("partition")["agent-0"]) == 1
	}, h.describe("partition"))
	if st := h.taskStatus("partition", "agent-0"); st.AgentHost == lost.AgentHost {
		t.Fatalf("the returning task won over its replacement: %+v", st)
	}
}

// eventReasons are the reasons of the Events recorded about the cluster.
func (h *harness) eventReasons(cluster string) map[string]int {
	h.t.Helper()
	var list corev1.EventList
	if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range list.Items {
		if e.InvolvedObject.Name == cluster {
			out[e.Reason]++
		}
	}
	return out
}

// TestFrameworkRemovedByMesos: Mesos removes the cluster's framework (a Mesos operator's
// teardown; a failover timeout that ran out is the same to the master) and kills every
// task. The cluster says so, takes a new framework ID, relaunches the server on its
// volume without counting a failure, and is Ready again. Then the same with the operator
// down while it happens: a restarted operator meets the refusal first.
func TestFrameworkRemovedByMesos(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("removed", `{agents: {replicas: 1}}`)
	h.waitCondition("removed", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)

	for round, operatorDown := range []bool{false, true} {
		before := h.get("removed")
		old, serverBefore := before.Status.FrameworkID, h.taskStatus("removed", "server-0")
		if operatorDown {
			h.stopOperator()
		}
		if err := h.mesos.TeardownFramework(old); err != nil {
			t.Fatal(err)
		}
		if operatorDown {
			h.startOperator()
		}
		h.eventually(waitDeploy, "a new framework running the cluster again", func() bool {
			c := h.get("removed")
			if c.Status.FrameworkID == old || c.Status.FrameworkID == "" {
				return false
			}
			live := h.liveTasks("removed")
			return len(live["server-0"]) == 1 && len(live["agent-0"]) == 1 &&
				conditionIs(c, v1alpha1.ConditionAgentsReady, metav1.ConditionTrue) &&
				conditionIs(c, v1alpha1.ConditionMesosConnected, metav1.ConditionTrue)
		}, h.describe("removed"))
		server := h.taskStatus("removed", "server-0")
		if server.TaskID == serverBefore.TaskID || server.AgentID != serverBefore.AgentID {
			t.Fatalf("round %d: server-0 %s on agent %s; want a new task on %s, where its volume is", round, server.TaskID, server.AgentID, serverBefore.AgentID)
		}
		if server.ConsecutiveFailures != 0 {
			t.Fatalf("round %d: the tasks Mesos killed with their framework counted as %d failures", round, server.ConsecutiveFailures)
		}
		if n := h.eventReasons("removed")["FrameworkRemoved"]; n != round+1 {
			t.Fatalf("round %d: %d FrameworkRemoved events", round, n)
		}
	}
}

// TestServerAgentMarkedGone: the agent holding a single server's volume is lost and a
// Mesos operator marks it gone (TASK_GONE_BY_OPERATOR). The cluster's data went with it:
// the operator launches nothing, says so (Stalled, DataLost) and is not Ready; once a
// person accepts the loss, an empty server starts on another agent.
func TestServerAgentMarkedGone(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("gone", `{agents: {replicas: 1}}`)
	h.waitCondition("gone", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	server := h.taskStatus("gone", "server-0")

	if err := h.mesos.LoseAgent(server.AgentHost); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "server-0 unreachable", func() bool {
		return h.taskStatus("gone", "server-0").State == "TASK_UNREACHABLE"
	}, h.describe("gone"))
	if err := h.mesos.MarkAgentGone(server.AgentHost); err != nil {
		t.Fatal(err)
	}
	h.waitCondition("gone", v1alpha1.ConditionStalled, metav1.ConditionTrue, 20*time.Second)
	c := h.get("gone")
	if st := metaCondition(c, v1alpha1.ConditionStalled); st.Reason != v1alpha1.ReasonDataLost || !containsAll(st.Message, "server-0", "TASK_GONE_BY_OPERATOR", v1alpha1.AcceptDataLossAnnotation) {
		t.Fatalf("Stalled %+v", st)
	}
	if conditionIs(c, v1alpha1.ConditionReady, metav1.ConditionTrue) {
		t.Fatal("Ready with the data lost")
	}
	time.Sleep(500 * time.Millisecond) // many allocation intervals
	if live := h.liveTasks("gone"); len(live["server-0"]) != 0 {
		t.Fatalf("an empty server-0 was launched over the lost data: %v", h.mesosTasks())
	}

	h.update("gone", func(c *v1alpha1.K3sCluster) {
		c.Annotations = map[string]string{v1alpha1.AcceptDataLossAnnotation: "true"}
	})
	h.eventually(waitDeploy, "an empty server-0 on another agent", func() bool {
		st := h.taskStatus("gone", "server-0")
		return st.State == "TASK_RUNNING" && st.AgentHost != server.AgentHost &&
			conditionIs(h.get("gone"), v1alpha1.ConditionStalled, metav1.ConditionFalse)
	}, h.describe("gone"))
}
