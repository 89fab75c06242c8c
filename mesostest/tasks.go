package mesostest

import (
	"bytes"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// maxStatusRetryInterval is the agent's STATUS_UPDATE_RETRY_INTERVAL_MAX.
const maxStatusRetryInterval = 10 * time.Minute

// task is a launched task as the master and its agent know it.
type task struct {
	id        string
	info      mesos.TaskInfo // as launched, secrets included: never rendered raw
	fw        *framework
	agent     *agent
	role      string
	resources mesos.Resources // with AllocationInfo
	// executorID is the command executor's ID (the task ID) or the
	// LAUNCH_GROUP executor's ID.
	executorID string
	group      *taskGroup

	// state is the task's latest state (the agent's view, which the master
	// tracks as the update's latest_state); lastSource who reported it.
	state      mesos.TaskState
	lastSource mesos.TaskStatus_Source
	// statuses are the statuses the master received (Master::updateTask):
	// consecutive ones of the same state replace each other.
	statuses []mesos.TaskStatus
	healthy  *bool
	// killedByHealth: the executor killed the task for failing its health
	// check; its terminal update says healthy: false.
	killedByHealth bool
	// executorPid is the container's executor process (or a nested
	// container's process), for container_status.
	executorPid int
	// rendered are the task's messages as /state renders them (defaults
	// filled in), made once: State() returns the same values every time.
	rendered struct {
		discovery   *mesos.DiscoveryInfo
		container   *mesos.ContainerInfo
		healthCheck *mesos.HealthCheck
	}
	released bool // resources returned to the agent

	// pending holds updates that need an acknowledgement, oldest first; the
	// head is in flight and retried with backoff until acknowledged.
	pending       []mesos.TaskStatus
	retryTimer    *time.Timer
	retryInterval time.Duration

	stateTimer     *time.Timer // staging/starting progression of simulated tasks
	killing        bool
	killStart      time.Time   // when the executor sent SIGTERM
	killDeadline   time.Time   // when it sends SIGKILL
	killTimer      *time.Timer // the SIGKILL escalation
	ignoreSIGTERM  bool        // IgnoreSIGTERM fault
	proc           *taskProcess
	health         *healthChecker
	healthOverride *bool // SetTaskHealth
	sandbox        string
	// containerID is the task's container: the executor's for a command
	// or Docker task, the nested container's for a task of a group.
	containerID string
	// executorEnv and commandEnv are the environments the command
	// executor and the task's command were given (process mode).
	executorEnv environ
	commandEnv  environ
	removed     bool // no longer tracked by the master (completed or abandoned)
}

// taskGroup ties the tasks of one LAUNCH_GROUP to their executor's resources.
type taskGroup struct {
	executorID string
	info       mesos.ExecutorInfo
	resources  mesos.Resources
	tasks      []*task
	released   bool
	// containerID and sandbox are the executor container's; executorEnv
	// the default executor's environment (process mode).
	containerID string
	sandbox     string
	executorEnv environ
	// killingGroup: one task failed or was killed, the executor kills
	// the others (once).
	killingGroup bool
	// unhealthy: the default executor killed a task for its health.
	unhealthy bool
	// cgroup is the executor container's, on an agent with Cgroups.
	cgroup *containerCgroup
}

func (t *task) terminal() bool { return isTerminal(t.state) }

func isTerminal(state mesos.TaskState) bool {
	switch state {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// statusUpdateState is the state reconciliation reports: the state of the
// update being delivered if one is pending (Task.status_update_state).
func (t *task) statusUpdateState() mesos.TaskState {
	if len(t.pending) > 0 {
		return *t.pending[0].State
	}
	return t.state
}

// launchTaskLocked creates a task in TASK_STAGING and schedules its start.
func (s *Server) launchTaskLocked(fw *framework, a *agent, info mesos.TaskInfo, role string, group *taskGroup) *task {
	t := &task{
		id:        info.TaskID.Value,
		info:      info,
		fw:        fw,
		agent:     a,
		role:      role,
		resources: cloneResources(info.Resources),
		state:     mesos.TASK_STAGING,
		group:     group,
		// A new container (and run directory) for every launch.
		containerID: newContainerID(),
	}
	t.rendered.discovery = withDefaults(info.Discovery)
	t.rendered.container = withDefaults(info.Container)
	t.rendered.healthCheck = withDefaults(info.HealthCheck)
	if group != nil {
		t.executorID = group.executorID
		group.tasks = append(group.tasks, t)
	} else if info.Executor != nil {
		t.executorID = info.Executor.ExecutorID.Value
	} else {
		t.executorID = t.id
	}
	fw.tasks[t.id] = t
	a.tasks[t] = struct{}{}
	s.log.Info("launching task", "frameworkID", fw.id, "taskID", t.id, "name", info.Name,
		"agent", a.hostname, "mode", map[bool]string{true: "process", false: "simulated"}[s.runsAsProcess(t)],
		"resources", mesos.Resources(info.Resources).String())
	t.stateTimer = s.afterLocked(s.opts.StagingDelay, func() { s.startTaskLocked(t) })
	return t
}

// runsAsProcess tells whether a task runs for real: a plain command (no
// container image, no custom executor) on an agent with RunProcesses.
func (s *Server) runsAsProcess(t *task) bool {
	if !t.agent.cfg.RunProcesses || t.info.Command == nil {
		return false
	}
	if t.group != nil {
		return runsNested(t)
	}
	if t.info.Executor != nil {
		return false // a custom executor
	}
	if c := t.info.Container; c != nil {
		if c.GetType() == mesos.ContainerInfo_DOCKER || c.Docker != nil {
			return false
		}
		if c.Mesos != nil && c.Mesos.Image != nil {
			return false
		}
	}
	return true
}

func (s *Server) startTaskLocked(t *task) {
	t.stateTimer = nil
	if t.removed || t.terminal() {
		return
	}
	if s.runsAsProcess(t) {
		s.startProcessLocked(t)
		return
	}
	kind := t.executorKind()
	if kind == commandExecutor || kind == defaultExecutor {
		// The Mesos containerizer's environment_secret isolator resolves
		// the secrets before anything starts; the default resolver
		// cannot resolve references.
		if _, err := resolvedSecretVariables(t.info.Command); err != nil {
			reason := mesos.REASON_CONTAINER_LAUNCH_FAILED
			s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, "Failed to launch container: "+err.Error(), mesos.SOURCE_AGENT)
			return
		}
	}
	// Simulated: the executor reports STARTING, then RUNNING.
	s.updateTaskLocked(t, mesos.TASK_STARTING, nil, "", mesos.SOURCE_EXECUTOR)
	if kind == commandExecutor && t.info.Command.GetValue() == "" && t.info.Command.Value == nil && !hasImage(t.info.Container) {
		// The command executor CHECKs for a command to run and aborts;
		// the agent reports the executor's termination.
		t.stateTimer = s.afterLocked(s.opts.StartingDelay, func() {
			t.stateTimer = nil
			reason := mesos.REASON_EXECUTOR_TERMINATED
			s.updateTaskLocked(t, mesos.TASK_FAILED, &reason, "Executor terminated", mesos.SOURCE_AGENT)
		})
		return
	}
	t.stateTimer = s.afterLocked(s.opts.StartingDelay, func() {
		t.stateTimer = nil
		if t.removed || t.terminal() || t.killing {
			return
		}
		s.updateTaskLocked(t, mesos.TASK_RUNNING, nil, "", mesos.SOURCE_EXECUTOR)
		s.startHealthCheckLocked(t)
	})
}

// hasImage tells whether a Mesos containerizer task has its own image
// (whose entrypoint the docker/runtime isolator makes the command).
func hasImage(c *mesos.ContainerInfo) bool {
	return c != nil && c.Mesos != nil && c.Mesos.Image != nil
}

// updateTaskLocked records a new state reported by the agent or executor
// and queues the acknowledged status update for the framework.
func (s *Server) updateTaskLocked(t *task, state mesos.TaskState, reason *mesos.TaskStatus_Reason, message string, source mesos.TaskStatus_Source) {
	if t.removed || t.terminal() {
		return
	}
	status := s.newStatus(t, state, reason, message, source)
	status.UUID = newUUIDBytes()
	if isTerminal(state) && (t.killedByHealth || (t.group != nil && t.group.unhealthy)) {
		// executor.cpp / default_executor.cpp: a task killed for a failing
		// health check (any task of the executor, for the default one) ends
		// with healthy: false.
		unhealthy := false
		status.Healthy = &unhealthy
	}
	s.recordStatusLocked(t, status)
	s.log.Info("task state changed", "frameworkID", t.fw.id, "taskID", t.id, "state", state.String(),
		"reason", reasonString(reason), "message", message)
	t.pending = append(t.pending, status)
	if len(t.pending) == 1 {
		t.retryInterval = s.opts.StatusUpdateRetryInterval
		s.sendPendingHeadLocked(t)
	}
}

// healthUpdateLocked reports a health change while the task runs.
func (s *Server) healthUpdateLocked(t *task, healthy bool) {
	if t.removed || t.terminal() || t.state != mesos.TASK_RUNNING {
		return
	}
	h := healthy
	t.healthy = &h
	reason := mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
	status := s.newStatus(t, mesos.TASK_RUNNING, &reason, "", mesos.SOURCE_EXECUTOR)
	status.Healthy = &h
	status.UUID = newUUIDBytes()
	s.recordStatusLocked(t, status)
	s.log.Info("task health changed", "frameworkID", t.fw.id, "taskID", t.id, "healthy", healthy)
	t.pending = append(t.pending, status)
	if len(t.pending) == 1 {
		t.retryInterval = s.opts.StatusUpdateRetryInterval
		s.sendPendingHeadLocked(t)
	}
}

func (s *Server) newStatus(t *task, state mesos.TaskState, reason *mesos.TaskStatus_Reason, message string, source mesos.TaskStatus_Source) mesos.TaskStatus {
	st := state
	src := source
	now := float64(time.Now().UnixNano()) / 1e9
	status := mesos.TaskStatus{
		TaskID:     mesos.TaskID{Value: t.id},
		State:      &st,
		Source:     &src,
		AgentID:    &mesos.AgentID{Value: t.agent.id},
		ExecutorID: &mesos.ExecutorID{Value: t.executorID},
		Timestamp:  &now,
	}
	if source == mesos.SOURCE_EXECUTOR {
		// The agent adds the container's status to the executor's
		// updates (Slave::_statusUpdate).
		status.ContainerStatus = s.containerStatusLocked(t)
	}
	if reason != nil {
		r := *reason
		status.Reason = &r
	}
	if message != "" {
		m := message
		status.Message = &m
	}
	return status
}

// containerStatusLocked is the ContainerStatus the agent attaches: the
// container's ID (with its parent for a nested one), the executor's pid
// where the emulator knows it, and the agent's IP as the container's.
func (s *Server) containerStatusLocked(t *task) *mesos.ContainerStatus {
	cs := &mesos.ContainerStatus{ContainerID: &mesos.ContainerID{Value: t.containerID}}
	if t.group != nil {
		cs.ContainerID.Parent = &mesos.ContainerID{Value: t.group.containerID}
	}
	if t.executorPid > 0 {
		pid := uint32(t.executorPid)
		cs.ExecutorPID = &pid
	}
	ip := agentIP(t.agent)
	cs.NetworkInfos = []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}}}}
	return cs
}

// recordStatusLocked applies a status to the task's (the agent's) state.
func (s *Server) recordStatusLocked(t *task, status mesos.TaskStatus) {
	t.state = *status.State
	t.lastSource = status.GetSource()
	if t.terminal() {
		s.taskTerminatedLocked(t)
	}
}

// masterReceivedLocked adds a status the master received to the task's
// history as Master::updateTask does: one of the same state as the last
// replaces it, its data is dropped.
func masterReceivedLocked(t *task, status mesos.TaskStatus) {
	status.Data = nil
	// Kept as /state renders it (JSON::Protobuf fills in defaults).
	status.ContainerStatus = withDefaults(status.ContainerStatus)
	if n := len(t.statuses); n > 0 && t.statuses[n-1].GetState() == status.GetState() {
		t.statuses[n-1] = status
		return
	}
	t.statuses = append(t.statuses, status)
}

// taskTerminatedLocked releases what a terminal task held.
func (s *Server) taskTerminatedLocked(t *task) {
	s.stopTimerLocked(t.stateTimer)
	t.stateTimer = nil
	if t.proc == nil {
		// A process keeps its escalation until it exits.
		s.stopTimerLocked(t.killTimer)
		t.killTimer = nil
	}
	if t.health != nil {
		t.health.stop()
		t.health = nil
	}
	if !t.released {
		t.released = true
		t.agent.free.Add(unallocated(t.resources)...)
		delete(t.agent.tasks, t)
		s.triggerAllocation()
	}
	if g := t.group; g != nil {
		allDone := true
		for _, other := range g.tasks {
			if !other.terminal() {
				allDone = false
			}
		}
		if allDone && !g.released {
			g.released = true
			t.agent.free.Add(unallocated(g.resources)...)
		}
		// The default executor kills the rest of the group when one fails
		// or is killed, with its default grace period (default_executor.cpp
		// waited(): kill(container) without a grace).
		byExecutor := t.lastSource != mesos.SOURCE_MASTER
		if byExecutor && (t.state == mesos.TASK_FAILED || t.state == mesos.TASK_KILLED) && !allDone && !g.killingGroup {
			g.killingGroup = true
			for _, other := range g.tasks {
				if !other.terminal() && !other.killing {
					s.killTaskLocked(other, killRequest{shutdown: true})
				}
			}
		}
	}
}

// sendPendingHeadLocked (re)sends the oldest unacknowledged update and
// schedules its retry, as the agent's status update manager does.
func (s *Server) sendPendingHeadLocked(t *task) {
	if len(t.pending) == 0 {
		return
	}
	s.stopTimerLocked(t.retryTimer)
	if t.agent.registeredWithMaster() {
		// The agent forwards the update through the master, which records
		// it before passing it on (or dropping it for a disconnected
		// framework).
		masterReceivedLocked(t, t.pending[0])
		t.fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: t.pending[0]}})
	}
	interval := t.retryInterval
	if interval <= 0 {
		interval = s.opts.StatusUpdateRetryInterval
	}
	t.retryTimer = s.afterLocked(interval, func() {
		t.retryTimer = nil
		if t.removed {
			return
		}
		t.retryInterval *= 2
		if t.retryInterval > maxStatusRetryInterval {
			t.retryInterval = maxStatusRetryInterval
		}
		s.sendPendingHeadLocked(t)
	})
}

// resendPendingUpdateLocked resends the head update at once (framework
// resubscribed or agent came back).
func (s *Server) resendPendingUpdateLocked(t *task) {
	if len(t.pending) > 0 && !t.removed {
		t.retryInterval = s.opts.StatusUpdateRetryInterval
		s.sendPendingHeadLocked(t)
	}
}

// acknowledgeLocked handles ACKNOWLEDGE. Unknown tasks or UUIDs are
// ignored, as by the master.
func (s *Server) acknowledgeLocked(fw *framework, ack *scheduler.Call_Acknowledge) {
	// The master forwards acknowledgements to registered agents only.
	t := s.knownTaskLocked(fw, ack.TaskID.Value)
	if t == nil || t.agent.id != ack.AgentID.Value || len(t.pending) == 0 ||
		!bytes.Equal(t.pending[0].UUID, ack.UUID) {
		s.log.V(1).Info("ignoring acknowledgement", "frameworkID", fw.id, "taskID", ack.TaskID.Value)
		return
	}
	acked := t.pending[0]
	t.pending = t.pending[1:]
	s.stopTimerLocked(t.retryTimer)
	t.retryTimer = nil
	if len(t.pending) > 0 {
		t.retryInterval = s.opts.StatusUpdateRetryInterval
		s.sendPendingHeadLocked(t)
		return
	}
	if isTerminal(*acked.State) {
		s.completeTaskLocked(t)
	}
}

// completeTaskLocked moves a terminal, acknowledged task to the
// framework's bounded completed history.
func (s *Server) completeTaskLocked(t *task) {
	if t.removed {
		return
	}
	t.removed = true
	s.stopTimerLocked(t.retryTimer)
	t.retryTimer = nil
	t.pending = nil
	delete(t.fw.tasks, t.id)
	delete(t.fw.unreachable, t.id)
	delete(t.agent.tasks, t)
	s.appendCompletedLocked(t.fw, t)
}

// appendCompletedLocked adds to the bounded completed-task history.
func (s *Server) appendCompletedLocked(fw *framework, t *task) {
	fw.completed = append(fw.completed, t)
	if over := len(fw.completed) - s.opts.MaxCompletedTasks; over > 0 {
		fw.completed = append([]*task(nil), fw.completed[over:]...)
	}
}

// abandonTaskLocked stops tracking a task and kills whatever runs for it
// (its framework is removed): the master marks it TASK_KILLED at once and
// the agent kills the process.
func (s *Server) abandonTaskLocked(t *task) {
	s.abandonKillLocked(t)
	if !t.terminal() {
		reason := mesos.REASON_FRAMEWORK_REMOVED
		st := s.newStatus(t, mesos.TASK_KILLED, &reason, "Framework removed", mesos.SOURCE_MASTER)
		s.recordStatusLocked(t, st)
		masterReceivedLocked(t, st)
	}
	s.taskTerminatedLocked(t)
	s.completeTaskLocked(t)
}

// killLocked handles KILL. Unknown tasks are answered by reconciliation,
// as the master does.
func (s *Server) killLocked(fw *framework, k *scheduler.Call_Kill) {
	t := s.knownTaskLocked(fw, k.TaskID.Value)
	if t == nil {
		s.log.Info("kill of unknown task; performing reconciliation", "frameworkID", fw.id, "taskID", k.TaskID.Value)
		s.reconcileLocked(fw, &scheduler.Call_Reconcile{Tasks: []scheduler.Call_Reconcile_Task{{TaskID: k.TaskID, AgentID: k.AgentID}}})
		return
	}
	var grace *time.Duration
	if kp := k.KillPolicy; kp != nil && kp.GracePeriod != nil {
		g := time.Duration(kp.GracePeriod.Nanoseconds)
		if g < 0 {
			g = 0
		}
		grace = &g
	}
	s.log.Info("killing task", "frameworkID", fw.id, "taskID", t.id)
	s.killTaskLocked(t, killRequest{override: grace})
}

// shutdownLocked handles SHUTDOWN: the executor and all its tasks go.
func (s *Server) shutdownLocked(fw *framework, sh *scheduler.Call_Shutdown) {
	for _, t := range s.visibleTasksLocked(fw) {
		if t.executorID == sh.ExecutorID.Value && t.agent.id == sh.AgentID.Value {
			s.killTaskLocked(t, killRequest{shutdown: true})
		}
	}
}

// knownTaskLocked is Framework::getTask as the master sees it: a live
// task of a registered agent (not an unreachable one, not one of an agent
// still to reregister).
func (s *Server) knownTaskLocked(fw *framework, taskID string) *task {
	if t := fw.tasks[taskID]; t != nil && t.agent.registeredWithMaster() {
		return t
	}
	return nil
}

// reconcileLocked answers RECONCILE as Master::reconcile does
// (src/master/master.cpp): updates from the master, REASON_RECONCILIATION,
// no UUID. Implicit: every known task (unreachable ones are not). Explicit:
// (1) known: its latest state (the update in flight, with its health and
// container status); (2) unknown, agent recovered after a master restart,
// or no agent given while any agent is: no answer; (3) unknown, agent
// registered: TASK_GONE; (4) agent unreachable: TASK_UNREACHABLE with the
// time it was marked so; (5) agent marked gone: TASK_GONE_BY_OPERATOR; (6)
// agent unknown: TASK_UNKNOWN. TASK_LOST
// instead of (3), (4) and (6) for frameworks that are not partition-aware.
func (s *Server) reconcileLocked(fw *framework, rec *scheduler.Call_Reconcile) {
	reason := mesos.REASON_RECONCILIATION
	known := func(t *task) mesos.TaskStatus {
		st := s.newStatus(t, t.statusUpdateState(), &reason, "Reconciliation: Latest task state", mesos.SOURCE_MASTER)
		st.Healthy = lastHealth(t)
		st.ContainerStatus = lastContainerStatus(t)
		return st
	}
	send := func(status mesos.TaskStatus) {
		fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: status}})
	}
	if len(rec.Tasks) == 0 {
		for _, t := range s.visibleTasksLocked(fw) {
			send(known(t))
		}
		return
	}
	anyRecovered := !s.noRecoveredAgentsLocked()
	for _, rt := range rec.Tasks {
		if t := s.knownTaskLocked(fw, rt.TaskID.Value); t != nil {
			send(known(t))
			continue
		}
		var a *agent
		if rt.AgentID != nil {
			a = s.agents[rt.AgentID.Value]
		}
		if (a != nil && a.recovered) || (rt.AgentID == nil && anyRecovered) {
			s.log.Info("dropping reconciliation: agents have not reregistered yet", "frameworkID", fw.id, "taskID", rt.TaskID.Value)
			continue
		}
		state, msg := mesos.TASK_UNKNOWN, "Reconciliation: Task is unknown"
		var unreachableTime *mesos.TimeInfo
		_, agentGone := s.goneAgents[rt.GetAgentID().GetValue()]
		switch {
		case agentGone:
			state, msg = mesos.TASK_GONE_BY_OPERATOR, "Reconciliation: Task is gone"
		case a != nil && a.registeredWithMaster():
			state, msg = mesos.TASK_GONE, "Reconciliation: Task is unknown to the agent"
		case a != nil:
			state, msg = mesos.TASK_UNREACHABLE, "Reconciliation: Task is unreachable"
			unreachableTime = &mesos.TimeInfo{Nanoseconds: a.unreachableSince.UnixNano()}
		}
		st := s.masterStatus(fw, rt.TaskID, state, reason, msg)
		st.AgentID = rt.AgentID
		st.UnreachableTime = unreachableTime
		send(st)
	}
}

// lostState maps the partition-aware states to TASK_LOST for frameworks
// without the PARTITION_AWARE capability.
func (s *Server) lostState(fw *framework, state mesos.TaskState) mesos.TaskState {
	if fw.partitionAware {
		return state
	}
	switch state {
	case mesos.TASK_UNREACHABLE, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNKNOWN, mesos.TASK_DROPPED:
		return mesos.TASK_LOST
	}
	return state
}

// masterStatus is a status update the master generates itself (source MASTER, no UUID),
// in the states the framework understands (see lostState).
func (s *Server) masterStatus(fw *framework, taskID mesos.TaskID, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string) mesos.TaskStatus {
	state = s.lostState(fw, state)
	src := mesos.SOURCE_MASTER
	now := float64(time.Now().UnixNano()) / 1e9
	return mesos.TaskStatus{
		TaskID: taskID, State: &state, Source: &src, Reason: &reason,
		Message: stringPtr(message), Timestamp: &now,
	}
}

// masterUpdateLocked sends an update the master generates itself (no UUID,
// no acknowledgement): TASK_ERROR/TASK_DROPPED for invalid launches.
func (s *Server) masterUpdateLocked(fw *framework, info *mesos.TaskInfo, agentID string, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string) {
	status := s.masterStatus(fw, info.TaskID, state, reason, message)
	if agentID != "" {
		status.AgentID = &mesos.AgentID{Value: agentID}
	}
	s.log.Info("task launch refused", "frameworkID", fw.id, "taskID", info.TaskID.Value, "state", state.String(),
		"reason", reason.String(), "message", message)
	fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: status}})
}

func newUUIDBytes() []byte {
	u := uuid.New()
	return u[:]
}

func stringPtr(s string) *string { return &s }

func reasonString(r *mesos.TaskStatus_Reason) string {
	if r == nil {
		return ""
	}
	return r.String()
}

// visibleTasksLocked are the framework's live tasks the master knows: not
// those of agents a restarted master has not heard from again.
func (s *Server) visibleTasksLocked(fw *framework) []*task {
	var out []*task
	for _, t := range sortedTasks(fw.tasks) {
		if t.agent.registeredWithMaster() {
			out = append(out, t)
		}
	}
	return out
}
