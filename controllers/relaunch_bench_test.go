package controllers_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// BenchmarkFirstRelaunch measures how soon a task's first failure is relaunched: from the
// moment the emulator reports a running agent task failed (FailTask) to its replacement
// reaching the master (a new task of that name in the emulator's state), for at least 20
// tasks, each failing once (a second failure in a row waits out relaunchBackoff). The
// harness's allocation interval is 20 ms: the aim is p99 within it + 50 ms.
func BenchmarkFirstRelaunch(b *testing.B) {
	n := max(b.N, 20)
	h := newHarness(b, n+1)
	h.apply("relaunch", fmt.Sprintf(`{agents: {replicas: %d, resources: {cpus: "0.5", memory: 256Mi}}}`, n))
	h.waitCondition("relaunch", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, 2*waitDeploy)
	var took []time.Duration
	b.ResetTimer()
	for i := range n {
		name := fmt.Sprintf("agent-%d", i)
		before := h.liveTasks("relaunch")[name]
		if len(before) != 1 {
			b.Fatalf("%s: %d live tasks", name, len(before))
		}
		start := time.Now()
		if err := h.mesos.FailTask(before[0].ID, mesos.TASK_FAILED, mesos.REASON_COMMAND_EXECUTOR_FAILED, "k3s agent exited"); err != nil {
			b.Fatal(err)
		}
		for {
			if live := h.liveTasks("relaunch")[name]; len(live) == 1 && live[0].ID != before[0].ID {
				break
			}
			if time.Since(start) > 20*time.Second {
				b.Fatalf("%s not relaunched within 20s", name)
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99+99)/100-1]), "p99-ms")
	b.ReportMetric(float64(len(took)), "failures")
}
