package controllers

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// observation is what one reconcile pass saw. The functions in this file turn it into
// conditions and a phase; they are pure, so each rule is a table test.
type observation struct {
	// connection is the framework's link to the master; connectionErr, when set, is a
	// problem found before the bridge was even asked (e.g. the credentials Secret is missing).
	connection    mesosbridge.Connection
	connectionSet bool
	connectionErr *conditionProblem

	datastoreType v1alpha1.DatastoreType
	// datastoreErr is a problem with the datastore configuration (External Secret missing).
	datastoreErr *conditionProblem
	// unsupported is a spec the operator cannot act on yet; the cluster is Stalled on it.
	unsupported string
	// invalidSpec is a spec no task can be made of; the cluster is Stalled on it.
	invalidSpec string
	// dataLost says every server's agent, and its volume, is gone (see goneServers).
	dataLost string
	// secretsLost says which of the cluster's identity Secrets is gone or damaged; the
	// cluster is Stalled on it and nothing is launched.
	secretsLost string

	servers, agents roleCount
	// readiness holds the operator's own checks of the cluster (probe.go); without a
	// result the Mesos health checks are all there is.
	readiness readiness

	// everReady: the cluster has been ready before (status.version is set), so losing
	// readiness now is Degraded rather than still Provisioning.
	everReady bool
	// firstRun: the cluster has not yet run as its spec says (its phase so far was only
	// Pending or Provisioning), so agents still joining is Provisioning, not Degraded.
	firstRun bool

	endpoint          string
	kubeconfigWritten bool
	kubeconfigErr     string

	// stalledTask names a task that failed failureThreshold times in a row.
	stalledTask string
	// version is the K3s version the spec asks for.
	version string
	// rolloutStep is where a rolling update is (planRollout), empty when none runs.
	rolloutStep string
	// waiting is what the launch plan waits for, if anything.
	waiting string
	// failedTasks names terminal tasks waiting to be relaunched.
	failedTasks []string
	// unplaced is, per task name, why the bridge's last offer round could not launch it
	// ("no fitting offer among 3: not enough mem (3)").
	unplaced map[string]string
}

// conditionProblem is a reason and a message for a False condition.
type conditionProblem struct{ reason, message string }

// roleCount counts one role's tasks.
type roleCount struct {
	desired, live, running, ready, updated int32
	// notServing names the first task Mesos sees ready that the operator's checks do not, and why.
	notServing string
}

func condition(t string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: reason, Message: message}
}

func pausedCondition(paused bool) metav1.Condition {
	if paused {
		return condition(v1alpha1.ConditionPaused, metav1.ConditionTrue, v1alpha1.ReasonPaused,
			"reconciliation is paused (spec.paused or the cluster.x-k8s.io/paused annotation); no Mesos call is made")
	}
	return condition(v1alpha1.ConditionPaused, metav1.ConditionFalse, v1alpha1.ReasonNotPaused, "reconciling")
}

var connectionReasons = map[mesosbridge.ConnectionReason]string{
	mesosbridge.ConnSubscribed:       v1alpha1.ReasonSubscribed,
	mesosbridge.ConnSubscribing:      v1alpha1.ReasonSubscribing,
	mesosbridge.ConnRedirecting:      v1alpha1.ReasonSubscribing,
	mesosbridge.ConnUnreachable:      v1alpha1.ReasonMesosUnreachable,
	mesosbridge.ConnUnauthorized:     v1alpha1.ReasonMesosUnauthorized,
	mesosbridge.ConnRefused:          v1alpha1.ReasonMesosRefused,
	mesosbridge.ConnTornDown:         v1alpha1.ReasonFrameworkTornDown,
	mesosbridge.ConnFrameworkRemoved: v1alpha1.ReasonFrameworkRemoved,
	mesosbridge.ConnFailedOver:       v1alpha1.ReasonFrameworkFailedOver,
}

func mesosConnectedCondition(o observation) metav1.Condition {
	if p := o.connectionErr; p != nil {
		return condition(v1alpha1.ConditionMesosConnected, metav1.ConditionFalse, p.reason, p.message)
	}
	if !o.connectionSet || o.connection.Reason == "" {
		return condition(v1alpha1.ConditionMesosConnected, metav1.ConditionUnknown, v1alpha1.ReasonNotObserved, "not connected to Mesos yet")
	}
	reason := connectionReasons[o.connection.Reason]
	if reason == "" {
		reason = string(o.connection.Reason)
	}
	msg := o.connection.Message
	if o.connection.Connected {
		if msg == "" {
			msg = "the framework is subscribed"
		}
		return condition(v1alpha1.ConditionMesosConnected, metav1.ConditionTrue, reason, msg)
	}
	if msg == "" {
		msg = "the framework is not subscribed"
	}
	return condition(v1alpha1.ConditionMesosConnected, metav1.ConditionFalse, reason, msg)
}

func datastoreReadyCondition(o observation) metav1.Condition {
	const t = v1alpha1.ConditionDatastoreReady
	if p := o.datastoreErr; p != nil {
		return condition(t, metav1.ConditionFalse, p.reason, p.message)
	}
	switch o.datastoreType {
	case v1alpha1.DatastoreExternal:
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonExternal, "the external datastore endpoint is configured")
	case v1alpha1.DatastoreSQLite, v1alpha1.DatastoreEmbeddedEtcd:
		if o.servers.ready > 0 {
			return condition(t, metav1.ConditionTrue, v1alpha1.ReasonEmbedded, fmt.Sprintf("%s runs inside the K3s servers", o.datastoreType))
		}
		return condition(t, metav1.ConditionFalse, v1alpha1.ReasonWaitingForServers, fmt.Sprintf("%s runs inside the K3s servers; none is ready yet", o.datastoreType))
	default:
		return condition(t, metav1.ConditionFalse, v1alpha1.ReasonUnsupportedSpec,
			fmt.Sprintf("datastore %s run on Mesos is not supported yet; use SQLite, EmbeddedEtcd or External", o.datastoreType))
	}
}

// roleProblem explains why a role has fewer ready tasks than desired.
func roleProblem(role mesosbridge.TaskRole, c roleCount, o observation) (reason, message string) {
	plural := string(role) + "s"
	switch {
	case len(o.failedTasks) > 0 && c.live < c.desired:
		return v1alpha1.ReasonTasksFailed, fmt.Sprintf("%d/%d %s ready; failed and waiting to relaunch: %v", c.ready, c.desired, plural, o.failedTasks)
	case c.live < c.desired && o.waiting != "":
		return v1alpha1.ReasonWaitingForOffers, fmt.Sprintf("%d/%d %s ready; %s", c.ready, c.desired, plural, o.waiting)
	case c.live < c.desired && unplacedOf(role, o.unplaced) != "":
		return v1alpha1.ReasonWaitingForOffers, fmt.Sprintf("%d/%d %s ready; %s", c.ready, c.desired, plural, unplacedOf(role, o.unplaced))
	case c.live < c.desired:
		return v1alpha1.ReasonWaitingForOffers, fmt.Sprintf("%d/%d %s ready; waiting for Mesos offers that fit (resources, ports, constraints)", c.ready, c.desired, plural)
	case c.running > c.ready && c.notServing != "":
		return v1alpha1.ReasonAPINotReady, fmt.Sprintf("%d/%d %s ready; %s", c.ready, c.desired, plural, c.notServing)
	case c.running > c.ready:
		return v1alpha1.ReasonTasksUnhealthy, fmt.Sprintf("%d/%d %s ready; %d running but not healthy yet", c.ready, c.desired, plural, c.running-c.ready)
	case c.live > c.desired:
		return v1alpha1.ReasonScaling, fmt.Sprintf("%d %s running, %d desired; removing the highest indices", c.live, plural, c.desired)
	default:
		return v1alpha1.ReasonTasksStarting, fmt.Sprintf("%d/%d %s ready; tasks are starting", c.ready, c.desired, plural)
	}
}

// unplacedOf says why the role's first unplaced task (by name) is not launched: the
// bridge's own words, e.g. "agent-3: no fitting offer among 6: constraint hostname:UNIQUE (6)".
func unplacedOf(role mesosbridge.TaskRole, unplaced map[string]string) string {
	var names []string
	for name := range unplaced {
		if r, _, ok := mesosbridge.ParseTaskName(name); ok && r == role {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sortTaskNames(names)
	msg := names[0] + ": " + unplaced[names[0]]
	if len(names) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(names)-1)
	}
	return msg
}

func serversReadyCondition(o observation) metav1.Condition {
	const t = v1alpha1.ConditionServersReady
	c := o.servers
	if c.ready < c.desired || c.desired == 0 {
		reason, msg := roleProblem(roleServer, c, o)
		return condition(t, metav1.ConditionFalse, reason, msg)
	}
	p := o.readiness.probe
	if p == nil || !p.reachable() {
		msg := fmt.Sprintf("%d/%d servers healthy on Mesos", c.ready, c.desired)
		if p != nil {
			msg += "; not confirmed by the operator's own checks: " + p.nodesErr
		}
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonReady, msg)
	}
	if !p.controlPlane.proven {
		return condition(t, metav1.ConditionFalse, v1alpha1.ReasonControlPlaneNotWorking,
			fmt.Sprintf("%d/%d servers answer, but the control plane does not work: %s", c.ready, c.desired, p.controlPlane.message))
	}
	return condition(t, metav1.ConditionTrue, v1alpha1.ReasonReady, fmt.Sprintf(
		"%d/%d servers ready: healthy on Mesos, their API servers answer /readyz, K3s's runtime core runs, and %s", c.ready, c.desired, p.controlPlane.message))
}

func agentsReadyCondition(o observation) metav1.Condition {
	const t = v1alpha1.ConditionAgentsReady
	c := o.agents
	if c.ready == c.desired && c.live == c.desired {
		msg := fmt.Sprintf("%d/%d agents ready", c.ready, c.desired)
		if p := o.readiness.probe; p != nil && p.nodes != nil {
			msg += "; their Nodes are Ready"
		} else if c.desired > 0 {
			msg += " on Mesos; not confirmed by their Nodes (the API is not reachable from the operator)"
		}
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonReady, msg)
	}
	reason, msg := roleProblem(roleAgent, c, o)
	return condition(t, metav1.ConditionFalse, reason, msg)
}

func kubeconfigCondition(o observation) metav1.Condition {
	const t = v1alpha1.ConditionKubeconfigAvailable
	switch {
	case o.kubeconfigErr != "":
		return condition(t, metav1.ConditionFalse, v1alpha1.ReasonPKIError, o.kubeconfigErr)
	case o.kubeconfigWritten:
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonKubeconfigWritten, "the admin kubeconfig for "+o.endpoint+" is in the kubeconfig Secret")
	default:
		return condition(t, metav1.ConditionFalse, v1alpha1.ReasonWaitingForEndpoint, "waiting for server-0 to be placed so the endpoint is known")
	}
}

func stalledCondition(o observation) metav1.Condition {
	const t = v1alpha1.ConditionStalled
	switch {
	case o.unsupported != "":
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonUnsupportedSpec, o.unsupported)
	case o.invalidSpec != "":
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, o.invalidSpec)
	case o.secretsLost != "":
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonSecretLost, o.secretsLost)
	case o.dataLost != "":
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonDataLost, o.dataLost)
	case o.stalledTask != "":
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonTooManyFailures, o.stalledTask)
	}
	return condition(t, metav1.ConditionFalse, v1alpha1.ReasonReconciling, "making progress")
}

// readyCondition: Ready only when the servers are healthy and the kubeconfig Secret is
// written, so a client that waits for Ready can use the cluster at once.
func readyCondition(servers, kubeconfig metav1.Condition) metav1.Condition {
	const t = v1alpha1.ConditionReady
	if servers.Status != metav1.ConditionTrue {
		return condition(t, metav1.ConditionFalse, servers.Reason, servers.Message)
	}
	if kubeconfig.Status != metav1.ConditionTrue {
		return condition(t, metav1.ConditionFalse, kubeconfig.Reason, kubeconfig.Message)
	}
	return condition(t, metav1.ConditionTrue, v1alpha1.ReasonReady, "the K3s API server is ready and the kubeconfig Secret is written")
}

// reconcilingCondition follows kstatus: True while the operator still works towards the
// spec, False once everything is in place or when it is stalled (Stalled says why).
func reconcilingCondition(ready, agents, stalled metav1.Condition, o observation) metav1.Condition {
	const t = v1alpha1.ConditionReconciling
	switch {
	case stalled.Status == metav1.ConditionTrue:
		return condition(t, metav1.ConditionFalse, stalled.Reason, "stalled: "+stalled.Message)
	case o.rolloutStep != "":
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonRollingUpdate, "rolling update to "+o.version+": "+o.rolloutStep)
	case ready.Status != metav1.ConditionTrue:
		return condition(t, metav1.ConditionTrue, ready.Reason, ready.Message)
	case agents.Status != metav1.ConditionTrue:
		return condition(t, metav1.ConditionTrue, agents.Reason, agents.Message)
	case o.servers.updated < o.servers.desired || o.agents.updated < o.agents.desired:
		return condition(t, metav1.ConditionTrue, v1alpha1.ReasonRollingUpdate, "rolling update to "+o.version+": replacing out-of-date tasks")
	}
	return condition(t, metav1.ConditionFalse, v1alpha1.ReasonReady, "the cluster matches its spec")
}

// phase summarises the conditions in one word for people.
func phase(ready, reconciling, stalled metav1.Condition, o observation) string {
	switch {
	case stalled.Status == metav1.ConditionTrue:
		return v1alpha1.PhaseFailed
	case !o.connectionSet || !o.connection.Connected:
		if o.everReady && !o.firstRun {
			return v1alpha1.PhaseDegraded
		}
		return v1alpha1.PhasePending
	case ready.Status != metav1.ConditionTrue && (!o.everReady || o.firstRun):
		return v1alpha1.PhaseProvisioning
	case ready.Status != metav1.ConditionTrue:
		return v1alpha1.PhaseDegraded
	case reconciling.Reason == v1alpha1.ReasonRollingUpdate:
		return v1alpha1.PhaseUpdating
	case reconciling.Status == metav1.ConditionTrue && o.agents.live != o.agents.desired:
		return v1alpha1.PhaseUpdating
	case reconciling.Status == metav1.ConditionTrue && o.firstRun:
		return v1alpha1.PhaseProvisioning
	case reconciling.Status == metav1.ConditionTrue:
		return v1alpha1.PhaseDegraded
	}
	return v1alpha1.PhaseRunning
}

// conditions computes every condition the design lists (except Paused, set on its own
// path) from one observation, in a stable order.
func conditions(o observation) (conds []metav1.Condition, phaseName string) {
	mesos := mesosConnectedCondition(o)
	datastore := datastoreReadyCondition(o)
	servers := serversReadyCondition(o)
	agents := agentsReadyCondition(o)
	kubeconfig := kubeconfigCondition(o)
	stalled := stalledCondition(o)
	ready := readyCondition(servers, kubeconfig)
	reconciling := reconcilingCondition(ready, agents, stalled, o)
	return []metav1.Condition{ready, reconciling, stalled, mesos, datastore, servers, agents, kubeconfig},
		phase(ready, reconciling, stalled, o)
}
