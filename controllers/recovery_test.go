package controllers_test

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
