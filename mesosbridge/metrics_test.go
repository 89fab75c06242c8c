package mesosbridge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A restarted Manager (or a second one) registers on the same registry without error
// and shares the series.
func TestMetricsShareOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := New(Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	second, err := New(Options{Metrics: reg})
	if err != nil {
		t.Fatalf("second manager: %v", err)
	}
	defer second.Stop()
	first.metrics.launches.Inc()
	second.metrics.launches.Inc()
	b := &testBridge{Manager: second, reg: reg}
	if got := b.metric("mesosk3s_bridge_task_launches_total"); got != 2 {
		t.Fatalf("launches %v, want the two managers' sum 2", got)
	}
	families, _ := reg.Gather()
	for _, name := range []string{"subscriptions_total", "reconnects_total", "offers_received_total", "offers_accepted_total",
		"offers_declined_total", "task_launches_total", "offer_decision_seconds"} {
		found := false
		for _, f := range families {
			found = found || f.GetName() == "mesosk3s_bridge_"+name
		}
		if !found && name != "reconnects_total" { // a vector without samples is not gathered
			t.Errorf("metric %s not registered", name)
		}
	}
}
