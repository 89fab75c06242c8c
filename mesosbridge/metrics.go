package mesosbridge

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's Prometheus collectors. They carry no cluster label: the
// controller's status shows per-cluster detail, and a label per cluster would grow the
// series without bound.
type metrics struct {
	subscriptions prometheus.Counter
	// frameworksRemoved counts frameworks the master removed under a live cluster.
	frameworksRemoved prometheus.Counter
	reconnects        *prometheus.CounterVec
	offersReceived    prometheus.Counter
	offersAccepted    prometheus.Counter
	offersDeclined    prometheus.Counter
	offersRescind     prometheus.Counter
	launches          prometheus.Counter
	taskUpdates       *prometheus.CounterVec
	// offerDecision is the time from an OFFERS event reaching the bridge (its frame read
	// off the stream) to the first ACCEPT of the round written to the connection.
	offerDecision prometheus.Histogram
}

const metricsNamespace, metricsSubsystem = "mesosk3s", "bridge"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help})
	}
	m := &metrics{
		subscriptions:     counter("subscriptions_total", "SUBSCRIBED events received (first subscriptions and resubscriptions)."),
		frameworksRemoved: counter("frameworks_removed_total", "Frameworks the master removed (failover timeout or an operator's TEARDOWN) while their cluster still existed; each was replaced by a new framework."),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "reconnects_total", Help: "Subscription attempts after a failure or a lost connection, by reason."}, []string{"reason"}),
		offersReceived: counter("offers_received_total", "Offers received."),
		offersAccepted: counter("offers_accepted_total", "Offers accepted (one ACCEPT call each)."),
		offersDeclined: counter("offers_declined_total", "Offers declined."),
		offersRescind:  counter("offers_rescinded_total", "Offers rescinded by the master."),
		launches:       counter("task_launches_total", "Tasks launched."),
		taskUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "task_state_updates_total", Help: "Task status updates received, by state."}, []string{"state"}),
		offerDecision: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "offer_decision_seconds", Help: "Time from an OFFERS event reaching the bridge to its first ACCEPT call leaving it.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}), // 100µs .. ~3.3s
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	reg1 := func(c prometheus.Collector) prometheus.Collector {
		existing, err := register(reg, c)
		errs = append(errs, err)
		return existing
	}
	m.subscriptions = reg1(m.subscriptions).(prometheus.Counter)
	m.frameworksRemoved = reg1(m.frameworksRemoved).(prometheus.Counter)
	m.reconnects = reg1(m.reconnects).(*prometheus.CounterVec)
	m.offersReceived = reg1(m.offersReceived).(prometheus.Counter)
	m.offersAccepted = reg1(m.offersAccepted).(prometheus.Counter)
	m.offersDeclined = reg1(m.offersDeclined).(prometheus.Counter)
	m.offersRescind = reg1(m.offersRescind).(prometheus.Counter)
	m.launches = reg1(m.launches).(prometheus.Counter)
	m.taskUpdates = reg1(m.taskUpdates).(*prometheus.CounterVec)
	m.offerDecision = reg1(m.offerDecision).(prometheus.Histogram)
	return m, errors.Join(errs...)
}

// register registers c, or returns the collector already registered under its name, so
// that a second Manager on one registry (tests, a restarted manager) shares the series.
func register(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		return already.ExistingCollector, nil
	}
	return c, err
}
