package mesosbridge

import (
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Manager. The zero value works: every field has a default.
type Options struct {
	// Logger receives the bridge's logs; every line of a framework carries its cluster.
	Logger logr.Logger
	// Metrics is where the bridge's collectors are registered (the operator passes
	// controller-runtime's metrics.Registry); nil registers nothing.
	Metrics prometheus.Registerer

	// HTTPTimeout bounds connecting to a master and every non-streaming call (default 10s).
	HTTPTimeout time.Duration
	// ReconnectBackoff is the delay between failed subscription attempts: it doubles from
	// Initial up to Max, each delay drawn with jitter from [d/2, d] so that the frameworks
	// of many clusters do not reconnect in lockstep after a master failover.
	ReconnectBackoff Backoff
	// HeartbeatMisses is how many heartbeat intervals (as the master announces in
	// SUBSCRIBED) may pass without any event before the connection is deemed dead,
	// dropped and re-established (default 3).
	HeartbeatMisses int
	// ReconcileInterval is the period of implicit reconciliation while subscribed
	// (default 10m); one also runs after every SUBSCRIBED.
	ReconcileInterval time.Duration
	// UnreachableReconcileInterval is how often tasks on unreachable agents are reconciled
	// explicitly (default 15s): Mesos does not say when such an agent comes back.
	UnreachableReconcileInterval time.Duration
	// KillWait bounds how long Teardown waits for killed tasks to become terminal before
	// it sends TEARDOWN anyway: at least this long (default 30s), and always the longest kill
	// grace period of the cluster's tasks plus KillWaitMargin, so that a task that ignores
	// SIGTERM (and dies only when Mesos SIGKILLs it at the end of its grace) is seen
	// terminal before TEARDOWN, and its volume and reservation can be released.
	KillWait time.Duration
	// KillWaitMargin is added to the longest kill grace period (default 10s): the executor's
	// SIGKILL, the status update and its delivery take time.
	KillWaitMargin time.Duration
	// ReleaseWait bounds how long Teardown waits, once the tasks are gone, for offers that
	// carry the cluster's persistent volumes and reservations so it can free them before
	// TEARDOWN (default 15s).
	ReleaseWait time.Duration
	// MaxRedirects bounds the leader redirects (307) followed in one attempt (default 4).
	MaxRedirects int
}

// Backoff is a capped exponential back-off.
type Backoff struct {
	Initial time.Duration // default 500ms
	Max     time.Duration // default 30s
}

func (o Options) withDefaults() Options {
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = 10 * time.Second
	}
	if o.ReconnectBackoff.Initial <= 0 {
		o.ReconnectBackoff.Initial = 500 * time.Millisecond
	}
	if o.ReconnectBackoff.Max < o.ReconnectBackoff.Initial {
		o.ReconnectBackoff.Max = max(30*time.Second, o.ReconnectBackoff.Initial)
	}
	if o.HeartbeatMisses <= 0 {
		o.HeartbeatMisses = 3
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = 10 * time.Minute
	}
	if o.UnreachableReconcileInterval <= 0 {
		o.UnreachableReconcileInterval = 15 * time.Second
	}
	if o.KillWait <= 0 {
		o.KillWait = 30 * time.Second
	}
	if o.KillWaitMargin <= 0 {
		o.KillWaitMargin = 10 * time.Second
	}
	if o.ReleaseWait <= 0 {
		o.ReleaseWait = 15 * time.Second
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = 4
	}
	return o
}
