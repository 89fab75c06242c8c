package controllers_test

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// TestKubectlScaleAgents: `kubectl scale k3scluster` to 5 launches five agents (the four
// new ones in one offer round), and back to 2 kills the highest indices.
func TestKubectlScaleAgents(t *testing.T) {
	h := newHarness(t, 6)
	h.apply("scaled", `{}`)
	h.waitCondition("scaled", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)

	roundsBefore := h.offerRoundsWithLaunches()
	kubectl(t, "-n", h.ns, "scale", "k3scluster", "scaled", "--replicas=5")
	h.eventually(waitDeploy, "five agents ready", func() bool {
		c := h.get("scaled")
		return c.Status.Agents.ReadyReplicas == 5 && conditionIs(c, v1alpha1.ConditionAgentsReady, metav1.ConditionTrue)
	}, h.describe("scaled"))
	live := h.liveTasks("scaled")
	for _, name := range []string{"agent-0", "agent-1", "agent-2", "agent-3", "agent-4"} {
		if len(live[name]) != 1 {
			t.Fatalf("want one %s, got %v", name, h.mesosTasks())
		}
	}
	// The four new agents came from one offer round: the bridge answered exactly one
	// more OFFERS event with launches.
	if rounds := h.offerRoundsWithLaunches() - roundsBefore; rounds != 1 {
		t.Errorf("the scale-up took %d offer rounds, want 1", rounds)
	}

	kubectl(t, "-n", h.ns, "scale", "k3sc", "scaled", "--replicas=2")
	h.eventually(waitDeploy, "two agents left", func() bool {
		c := h.get("scaled")
		return c.Status.Agents.Replicas == 2 && conditionIs(c, v1alpha1.ConditionAgentsReady, metav1.ConditionTrue)
	}, h.describe("scaled"))
	h.eventually(waitDeploy, "Mesos runs agent-0 and agent-1 only", func() bool {
		live := h.liveTasks("scaled")
		var names []string
		for n := range live {
			names = append(names, n)
		}
		slices.Sort(names)
		return slices.Equal(names, []string{"agent-0", "agent-1", "server-0"})
	}, h.describe("scaled"))
}

// kubectl runs the real kubectl binary against the test API server.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return env.Kubectl(t, args...)
}
