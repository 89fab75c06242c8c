// Package mesosbridge is everything the operator knows about Mesos: one scheduler
// framework per cluster, offer matching, TaskInfo builders and task state tracking, for
// generic tasks (a command, its environment and secrets, ports, a volume, a health check).
// It knows nothing of K3s; the controller renders what a task runs and hands it over.
//
// The pipeline, one event loop per cluster (loop.go), in file order:
//
//	conn_*        subscribe (redirects, several masters, backoff), calls, heartbeats
//	reconciliation  explicit + implicit RECONCILE and the barrier that gates launches
//	offer_receive → offer_pending → offer_pools → offer_match (+ offer_constraints)
//	              → offer_decide → offer_accept (ACCEPT, DECLINE); offer_interest
//	              (SUPPRESS/REVIVE)
//	status_receive → status_track → status_notify: record, ACKNOWLEDGE, tell the controller
//	kill, teardown → teardown_release: KILL, wait, DESTROY/UNRESERVE, TEARDOWN
//	task_*        what a task is: validation, TaskInfo, spec hash, IDs and names
//
// The controller talks to it only through the plain Go types of types.go and the Bridge
// interface (bridge.go): no mesos-go type crosses that line, and the bridge never imports
// the operator's api/ or controllers/ packages.
package mesosbridge
