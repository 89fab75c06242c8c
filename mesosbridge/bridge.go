package mesosbridge

import "context"

// Bridge is all the controller sees of Mesos: plain types in, plain types out. The
// framework connection and event loop behind it are asynchronous; no method waits for
// Mesos, so a reconcile never blocks on a slow or absent master.
type Bridge interface {
	// Ensure makes sure the cluster's framework is subscribed with cfg (subscribing,
	// re-subscribing with cfg.FrameworkID, or updating credentials and masters as needed)
	// and that the desired tasks run: each desired task without a live task of its name is
	// launched when offers allow, in TaskSpec.Order. A live task that is not desired is left
	// alone (use Kill). It returns the current observation.
	//
	// Nothing is launched until an Ensure carries the framework ID that the master gave
	// (cfg.FrameworkID == Observed.FrameworkID): that proves the controller persisted it, so
	// a crash cannot lose the framework with tasks in it.
	//
	// known are the tasks the controller last observed (status.tasks). After an operator
	// restart they are the bridge's only memory: their live tasks count as running (so they
	// are not launched twice), are reconciled explicitly with the master, and keep the
	// ports and spec hash that Mesos does not report again. Tasks the bridge already tracks
	// ignore them.
	Ensure(ctx context.Context, cfg FrameworkConfig, desired []TaskSpec, known []ObservedTask) (Observed, error)

	// Kill kills the named tasks of the cluster with their kill grace period. A killed
	// task that is still desired is relaunched (with the newest spec) once it is terminal,
	// which is how a rollout replaces an out-of-date task. Names without a live task are
	// ignored. A task on an unreachable agent cannot be confirmed dead: killing it frees its
	// name for a replacement at once, and the old task is killed if its agent comes back
	// (the partition-aware way to replace tasks of a lost agent).
	Kill(ctx context.Context, cluster ClusterKey, names ...string) error

	// Teardown kills every task of the cluster, waits (bounded) for terminal states and
	// sends TEARDOWN. It returns done when the framework is gone, and is safe to call again
	// until then; afterwards the bridge forgets the cluster. It takes the whole config (not
	// just the key) because after an operator restart the bridge may not know the cluster:
	// it then subscribes with cfg.FrameworkID to find and kill the tasks. A config without a
	// framework ID that the bridge never subscribed has nothing on Mesos: done at once.
	// While the master cannot be reached the error says why.
	Teardown(ctx context.Context, cfg FrameworkConfig) (done bool, err error)

	// Events names a cluster whenever something the controller shows changed: a task
	// update, the connection state, the framework ID. The controller reconciles on it
	// instead of polling. Notifications for one cluster coalesce until delivered; none is
	// lost and a slow reader never blocks the bridge.
	Events() <-chan ClusterKey
}

// launchesAllowed reports whether the bridge may launch tasks for a framework subscribed
// under subscribedID, given the config of the latest Ensure: only once the controller has
// handed the ID back, i.e. persisted it.
func launchesAllowed(cfg FrameworkConfig, subscribedID string) bool {
	return subscribedID != "" && cfg.FrameworkID == subscribedID
}
