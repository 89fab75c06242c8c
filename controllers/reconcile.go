package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// Requeue intervals. Mesos events drive reconciles; these are the safety nets.
const (
	resyncReady    = 5 * time.Minute  // a Ready cluster: kubeconfig rotation, probe
	resyncProgress = 15 * time.Second // while deploying: the /readyz probe is polled
	retryProblem   = 30 * time.Second // a problem a person must fix (missing Secret)
)

// reconcile drives a live cluster towards its spec, one step per pass:
// PKI → Mesos config → task tracking → plan → kills (scale, rollout) → Ensure →
// status → kubeconfig → API probe.
func (r *K3sClusterReconciler) reconcile(ctx context.Context, s *clusterScope) (ctrl.Result, error) {
	c := s.cluster
	s.obs.datastoreType, s.obs.version = c.Spec.Datastore.Type, c.Spec.Version
	s.obs.servers.desired, s.obs.agents.desired = c.Spec.Servers.Replicas, c.Spec.Agents.Replicas
	s.obs.everReady = c.Status.Version != ""
	s.obs.firstRun = c.Status.Phase == "" || c.Status.Phase == v1alpha1.PhasePending || c.Status.Phase == v1alpha1.PhaseProvisioning

	if msg := unsupportedSpec(c); msg != "" && (c.Status.Version == "" || c.Spec.Runtime == v1alpha1.RuntimeDocker) {
		// Nothing runs yet and nothing could, or what runs cannot be rendered any more:
		// make no Mesos call; running tasks keep running as they are.
		s.obs.unsupported = msg
		r.observeOnly(s)
		return ctrl.Result{}, nil
	}

	if err := r.reconcilePKI(ctx, s); errors.Is(err, errSecretsLost) {
		r.observeOnly(s)
		return ctrl.Result{RequeueAfter: retryProblem}, nil
	} else if err != nil {
		s.obs.kubeconfigErr = err.Error()
		return ctrl.Result{}, err
	}
	cfg, problem, err := r.frameworkConfig(ctx, c)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != nil {
		s.obs.connectionErr = problem
		return ctrl.Result{RequeueAfter: retryProblem}, nil
	}
	s.framework = cfg

	in := planInputs{token: s.token, agentToken: s.agentToken, pki: s.pki.serverPKI()}
	if c.Spec.Datastore.Type == v1alpha1.DatastoreExternal {
		endpoint, problem, err := r.externalDatastoreEndpoint(ctx, c)
		if err != nil {
			return ctrl.Result{}, err
		}
		if problem != nil {
			s.obs.datastoreErr = problem
			return ctrl.Result{RequeueAfter: retryProblem}, nil
		}
		in.datastoreEndpoint = endpoint
	}

	// A version change the skew rules refuse leaves the cluster as it runs: relaunches use
	// the version the servers run, and the rollout stands still where it is.
	planned, freezeRollout := c, false
	if msg := versionSkew(c.Status.Version, c.Spec.Version); msg != "" {
		s.obs.unsupported = msg
		planned = c.DeepCopy()
		planned.Spec.Version = c.Status.Version
		freezeRollout = true
	}

	now := r.now()
	observed, _ := r.Bridge.Observe(s.key())
	if removed := observed.RemovedFrameworkID; removed != "" && removed == c.Status.FrameworkID {
		// Mesos removed the framework and killed its tasks; the bridge registers a new one,
		// whose ID this status takes once it is known.
		c.Status.FrameworkID = ""
		if prev, _ := r.announcedRemovals.Swap(s.key(), removed); prev != removed {
			r.event(c, corev1.EventTypeWarning, "FrameworkRemoved", "Subscribe",
				"Mesos removed framework %s and killed its tasks (its failoverTimeout ran out while no operator was connected, or a Mesos operator tore it down); registering a new framework and relaunching the servers on their volumes", removed)
		}
	}
	known := withStatusKnowledge(observed.Tasks, c.Status.Tasks)
	in.serverURL = serverEndpoint(c, known)
	in.serverAgentIDs = agentIDs(known, c.Status.Tasks)
	in.rejoinURL = rejoinURL(c, known)
	all, err := desiredTasks(planned, in)
	if err != nil {
		// A spec the API server accepted but no task can be made of: say which and stop.
		s.obs.invalidSpec = err.Error()
		return ctrl.Result{}, nil
	}
	desiredByName := make(map[string]mesosbridge.TaskSpec, len(all))
	for _, t := range all {
		desiredByName[t.Name] = t
	}

	track := trackTasks(c.Status.Tasks, known, desiredByName, planned.Spec.Version, remediationOf(c.Spec.Remediation), now)
	var failures []string
	for _, f := range track.newFailures {
		failures = append(failures, fmt.Sprintf("%s (%s) ended: %s; relaunching after back-off", f.Name, f.TaskID, f.Message))
	}
	r.eventEach(c, corev1.EventTypeWarning, "TaskFailed", "Relaunch", failures)
	inBackoff := func(name string) bool { _, ok := track.backoffUntil[name]; return ok }
	ready := r.readiness(s)
	launchable, waiting := gate(all, known, in.serverURL, c.Spec.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd, inBackoff, ready)
	if hold, why := r.replaceGoneServers(ctx, s, all, known); len(hold) > 0 {
		launchable = slices.DeleteFunc(launchable, func(t mesosbridge.TaskSpec) bool { return hold[t.Name] })
		if why != "" {
			waiting = why
		}
	}

	// An agent leaving (scale-down, rollout) is drained first; a Node no task runs for goes.
	roll := rollout{step: "frozen: " + s.obs.unsupported}
	if !freezeRollout {
		roll = planRollout(all, known, c.Spec.Rollout.MaxUnavailable, ready)
	}
	if len(roll.kills) > 0 && c.Spec.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd {
		roll = r.etcdLeaderFirst(ctx, s, roll)
	}
	s.obs.rolloutStep = roll.step
	scaleDown := scaleDownKills(all, known)
	var etcdWait string
	if c.Spec.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd {
		scaleDown, etcdWait = r.etcdScaleDown(ctx, s, scaleDown, known, ready)
	}
	kills, draining := r.drainBeforeKill(ctx, s, append(scaleDown, roll.kills...), known, ready)
	if waiting == "" {
		waiting = etcdWait
	}
	if waiting == "" {
		waiting = draining
	}
	if problem := r.removeAgentNodes(ctx, s, known, ready); problem != "" && waiting == "" {
		waiting = problem
	}
	if len(kills) > 0 {
		if err := r.Bridge.Kill(ctx, s.key(), kills...); err != nil {
			return ctrl.Result{}, fmt.Errorf("killing %v: %w", kills, err)
		}
		r.event(c, corev1.EventTypeNormal, "TasksKilled", "Kill", "killing %v (scale-down or rollout)", kills)
	}
	if unknown := serverWithUnknownPort(c, known); len(unknown) > 0 {
		if err := r.Bridge.Kill(ctx, s.key(), unknown...); err != nil {
			return ctrl.Result{}, fmt.Errorf("relaunching %v: %w", unknown, err)
		}
		r.event(c, corev1.EventTypeWarning, "ServerRelaunched", "Relaunch", "%s runs on an API port nobody recorded (the operator stopped right after launching it); relaunching it to learn its address", firstServer)
	}
	lost, lostWait := unreachableReplacements(all, known, remediationOf(c.Spec.Remediation).backoff, now)
	if len(lost) > 0 {
		if err := r.Bridge.Kill(ctx, s.key(), lost...); err != nil {
			return ctrl.Result{}, fmt.Errorf("replacing %v: %w", lost, err)
		}
		r.event(c, corev1.EventTypeWarning, "TasksReplaced", "Replace", "%v unreachable (agent lost); launching replacements elsewhere", lost)
	}

	if s.observed, err = r.Bridge.Ensure(ctx, cfg, launchable, knownTasks(c.Status.Tasks)); err != nil {
		return ctrl.Result{}, fmt.Errorf("ensuring the Mesos framework: %w", err)
	}
	s.obs.connection, s.obs.connectionSet = s.observed.Connection, true

	// The framework ID is persisted before anything is launched: the bridge launches only
	// once an Ensure carries the ID back, which the next pass does from this status.
	requeueSoon := false
	if id := s.observed.FrameworkID; id != "" && id != c.Status.FrameworkID {
		c.Status.FrameworkID = id
		r.event(c, corev1.EventTypeNormal, "FrameworkRegistered", "Subscribe", "Mesos framework %s registered", id)
		requeueSoon = true
	}

	known = withStatusKnowledge(s.observed.Tasks, c.Status.Tasks)
	track = trackTasks(c.Status.Tasks, known, desiredByName, planned.Spec.Version, remediationOf(c.Spec.Remediation), now)
	r.recordLaunches(c, known)
	c.Status.Tasks = track.tasks
	s.obs.stalledTask, s.obs.failedTasks, s.obs.waiting = track.stalled, track.failed, waiting
	s.obs.unplaced = s.observed.Unplaced

	endpoint := serverEndpoint(c, known)
	kubeconfig, err := r.reconcileKubeconfig(ctx, s, endpoint)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.watchHealth(s, kubeconfig, known)
	ready = r.readiness(s)
	s.obs.readiness = ready
	s.obs.servers, s.obs.agents = countRoles(all, known, ready)
	setRoleStatus(c, s.obs.servers, s.obs.agents)
	if s.obs.servers.ready == s.obs.servers.desired && s.obs.servers.updated == s.obs.servers.desired && s.obs.servers.desired > 0 {
		c.Status.Version = planned.Spec.Version
	}
	res := r.requeue(s, track, requeueSoon, now)
	if lostWait > 0 && lostWait < res.RequeueAfter {
		res.RequeueAfter = lostWait
	}
	if draining != "" {
		res.RequeueAfter = min(res.RequeueAfter, drainPoll)
	}
	return res, nil
}

// readiness is the pass's view of which tasks serve: Mesos', and the operator's checks
// where they reach the cluster.
func (r *K3sClusterReconciler) readiness(s *clusterScope) readiness {
	res, ok := r.Probes.Result(s.key())
	if !ok {
		return mesosOnly
	}
	name := s.cluster.Name
	return readiness{probe: &res, nodeName: func(task string) string { return nodeName(name, task) }}
}

// watchHealth points the operator's checks at the cluster's live servers.
func (r *K3sClusterReconciler) watchHealth(s *clusterScope, kubeconfig []byte, known map[string]mesosbridge.ObservedTask) {
	if kubeconfig == nil {
		return
	}
	servers := map[string]serverAddress{}
	for name, o := range known {
		if o.Role == roleServer && taskLive(o, true) && o.Hostname != "" && o.Ports[k3s.PortAPI] != 0 {
			servers[name] = serverAddress{url: serverURL(o.Hostname, o.Ports[k3s.PortAPI]), taskID: o.TaskID}
		}
	}
	t := probeTarget{
		key: s.key(), servers: servers, kubeconfig: kubeconfig, serverCA: s.pki.CAs[caServer].CertPEM,
		nodeSecret: k3s.TokenSecret(s.agentToken), generation: probeGeneration(servers),
	}
	if s.cluster.Spec.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd {
		t.etcd = &etcdTarget{ca: s.pki.CAs[caEtcdServer]}
	}
	r.Probes.Watch(t)
}

// observeOnly fills the observation from what the bridge already knows, without asking it
// to do anything: the cluster's tasks keep running as they are.
func (r *K3sClusterReconciler) observeOnly(s *clusterScope) {
	if observed, ok := r.Bridge.Observe(s.key()); ok {
		s.obs.connection, s.obs.connectionSet = observed.Connection, true
	}
}

// requeue picks the next pass: soon after a framework registration, at the end of the
// first relaunch back-off, and otherwise a slow resync.
func (r *K3sClusterReconciler) requeue(s *clusterScope, track tracking, soon bool, now time.Time) ctrl.Result {
	if soon {
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}
	}
	next := resyncReady
	if s.obs.servers.ready < s.obs.servers.desired || s.obs.agents.ready < s.obs.agents.desired {
		next = resyncProgress
	}
	for _, until := range track.backoffUntil {
		next = min(next, until.Sub(now)+10*time.Millisecond)
	}
	for _, t := range s.cluster.Status.Tasks {
		if t.ConsecutiveFailures > 0 && !mesosbridge.TaskState(t.State).Terminal() {
			next = min(next, stableAfter) // to reset the failure count once it served long enough
		}
	}
	return ctrl.Result{RequeueAfter: next}
}

// recordLaunches emits an event for every task incarnation not in the previous status.
func (r *K3sClusterReconciler) recordLaunches(c *v1alpha1.K3sCluster, known map[string]mesosbridge.ObservedTask) {
	prev := map[string]string{}
	for _, t := range c.Status.Tasks {
		prev[t.Name] = t.TaskID
	}
	var launched []string
	for _, name := range slices.Sorted(maps.Keys(known)) {
		if o := known[name]; o.TaskID != "" && prev[name] != o.TaskID && !o.State.Terminal() {
			launched = append(launched, fmt.Sprintf("launched %s as Mesos task %s", name, o.TaskID))
		}
	}
	r.eventEach(c, corev1.EventTypeNormal, "TaskLaunched", "Launch", launched)
}

// serverEndpoint is the URL clients and agents use: the endpoint override, else server-0's
// host and API port while it is placed, else the last known endpoint.
func serverEndpoint(c *v1alpha1.K3sCluster, known map[string]mesosbridge.ObservedTask) string {
	if c.Spec.Kubeconfig.Endpoint != "" {
		return c.Spec.Kubeconfig.Endpoint
	}
	if o, ok := known[firstServer]; ok && taskLive(o, ok) && o.Hostname != "" && o.Ports[k3s.PortAPI] != 0 {
		return fmt.Sprintf("https://%s:%d", o.Hostname, o.Ports[k3s.PortAPI])
	}
	return c.Status.Endpoint
}

// agentIDs pins each server to the agent that last ran it (where its volume is), unless
// that agent is gone for good.
func agentIDs(known map[string]mesosbridge.ObservedTask, prev []v1alpha1.TaskStatus) map[string]string {
	out := map[string]string{}
	for _, p := range prev {
		if p.AgentID != "" {
			out[p.Name] = p.AgentID
		}
	}
	for name, o := range known {
		if o.AgentID != "" {
			out[name] = o.AgentID
		}
		if goneForGood(o.State) {
			delete(out, name) // its agent and volume are gone: it goes elsewhere
		}
	}
	return out
}

// countRoles counts desired, live, running, ready and up-to-date tasks per role.
func countRoles(desired []mesosbridge.TaskSpec, known map[string]mesosbridge.ObservedTask, ready readiness) (servers, agents roleCount) {
	want := map[string]mesosbridge.TaskSpec{}
	for _, t := range desired {
		want[t.Name] = t
		switch t.Role {
		case roleServer:
			servers.desired++
		case roleAgent:
			agents.desired++
		}
	}
	for name, o := range known {
		rc := &agents
		if o.Role == roleServer {
			rc = &servers
		} else if o.Role != roleAgent {
			continue
		}
		if !taskLive(o, true) {
			continue
		}
		rc.live++
		spec, isDesired := want[name]
		if !isDesired {
			continue // being scaled away: counts as live, not as running or ready
		}
		if o.State == mesosbridge.TaskRunning {
			rc.running++
		}
		if ready.serves(o) {
			rc.ready++
		} else if why := ready.why(o); why != "" && rc.notServing == "" {
			rc.notServing = name + ": " + why
		}
		if o.SpecHash == "" || o.SpecHash == spec.SpecHash {
			rc.updated++
		}
	}
	return servers, agents
}

// setRoleStatus writes the per-role counts and the selectors (the scale subresource reads
// .status.selector and .status.agents.replicas).
func setRoleStatus(c *v1alpha1.K3sCluster, servers, agents roleCount) {
	roleStatus := func(rc roleCount, role mesosbridge.TaskRole) v1alpha1.RoleStatus {
		return v1alpha1.RoleStatus{
			Replicas: rc.live, ReadyReplicas: rc.ready, UpdatedReplicas: rc.updated,
			Selector: fmt.Sprintf("%s=%s,%s=%s", v1alpha1.ClusterNameLabel, c.Name, v1alpha1.RoleLabel, role),
		}
	}
	c.Status.Servers = roleStatus(servers, roleServer)
	c.Status.Agents = roleStatus(agents, roleAgent)
	c.Status.Selector = c.Status.Agents.Selector
	c.Status.KubeconfigSecretName = kubeconfigSecretName(c.Name)
}
