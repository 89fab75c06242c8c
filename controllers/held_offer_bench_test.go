package controllers_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// BenchmarkPredecessorToLaunch measures the step of the plan that waits on a predecessor:
// from server-0's first healthy status (the master's record) to the first status of
// agent-0, which the plan holds back until then. What lies between is the bridge telling
// the operator, a reconcile pass, the REVIVE and the master's next allocation (20 ms
// here): the bound is 50 ms.
func BenchmarkPredecessorToLaunch(b *testing.B) {
	h := newHarness(b, 2*b.N+2)
	var took []time.Duration
	for i := range b.N {
		name := fmt.Sprintf("held-%d", i)
		h.apply(name, `{agents: {replicas: 1}}`)
		h.waitCondition(name, v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
		live := h.liveTasks(name)
		healthy := firstStatusTime(live["server-0"][0], func(s statusView) bool { return s.Healthy != nil && *s.Healthy })
		launched := firstStatusTime(live["agent-0"][0], func(statusView) bool { return true })
		if healthy == 0 || launched < healthy {
			b.Fatalf("%s: agent-0's first status at %f, server-0 healthy at %f", name, launched, healthy)
		}
		took = append(took, time.Duration((launched-healthy)*float64(time.Second)))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}
