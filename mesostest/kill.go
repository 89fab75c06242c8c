package mesostest

import (
	"fmt"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// executorKind is which executor runs a task; kill semantics differ.
type executorKind int

const (
	// commandExecutor: a LAUNCH task with a CommandInfo on the Mesos
	// containerizer (src/launcher/executor.cpp).
	commandExecutor executorKind = iota
	// defaultExecutor: LAUNCH_GROUP tasks (src/launcher/default_executor.cpp).
	defaultExecutor
	// dockerExecutor: a LAUNCH task with a DOCKER ContainerInfo
	// (src/docker/executor.cpp).
	dockerExecutor
	// customExecutor: the framework's own executor (simulated like the
	// command executor).
	customExecutor
)

func (t *task) executorKind() executorKind {
	switch {
	case t.group != nil && t.group.info.Type == mesos.ExecutorInfo_DEFAULT:
		return defaultExecutor
	case t.group != nil || t.info.Executor != nil:
		return customExecutor
	case t.info.Container != nil && t.info.Container.GetType() == mesos.ContainerInfo_DOCKER:
		return dockerExecutor
	}
	return commandExecutor
}

// killRequest is why a task is being killed.
type killRequest struct {
	// override is the grace period of the KILL call's kill_policy.
	override *time.Duration
	// shutdown: the executor shuts down (SHUTDOWN call, framework removed)
	// or the default executor kills the rest of a failed task group; the
	// executor's own default grace applies, not the task's kill policy.
	shutdown bool
}

// killGraceLocked is the SIGTERM -> SIGKILL grace period the task's executor
// uses: the KILL call's kill_policy, else the task's, else the executor's
// default (3 s for the command and default executors, the shutdown grace
// period, 5 s, for the Docker executor).
func (s *Server) killGraceLocked(t *task, req killRequest) time.Duration {
	if req.shutdown {
		return s.opts.KillGracePeriod
	}
	if req.override != nil {
		return nonNegative(*req.override)
	}
	if kp := t.info.KillPolicy; kp != nil && kp.GracePeriod != nil {
		return nonNegative(time.Duration(kp.GracePeriod.Nanoseconds))
	}
	if t.executorKind() == dockerExecutor {
		return s.opts.ExecutorShutdownGracePeriod
	}
	return s.opts.KillGracePeriod
}

func nonNegative(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// killTaskLocked starts killing a task on behalf of its executor: KILL,
// SHUTDOWN, a failing health check, or the default executor killing the
// rest of a group.
func (s *Server) killTaskLocked(t *task, req killRequest) {
	if t.removed || t.terminal() {
		return
	}
	if t.state == mesos.TASK_STAGING {
		// Not yet delivered to an executor: the agent drops it.
		reason := mesos.REASON_TASK_KILLED_DURING_LAUNCH
		s.updateTaskLocked(t, mesos.TASK_KILLED, &reason, "Killed before delivery to the executor", mesos.SOURCE_AGENT)
		return
	}
	grace := s.killGraceLocked(t, req)
	if t.killing {
		s.rekillLocked(t, grace)
		return
	}
	t.killing = true
	// Every executor pauses health checking when it starts a kill.
	if t.health != nil {
		t.health.stop()
		t.health = nil
	}
	if t.fw.killingState {
		s.updateTaskLocked(t, mesos.TASK_KILLING, nil, "", mesos.SOURCE_EXECUTOR)
	}
	s.signalTaskLocked(t, grace)
}

// rekillLocked handles a kill of a task that is already being killed.
func (s *Server) rekillLocked(t *task, grace time.Duration) {
	now := time.Now()
	switch t.executorKind() {
	case commandExecutor, customExecutor:
		// The command executor only ever shortens the grace period: the
		// escalation happens at kill start + the new grace if that is
		// earlier (executor.cpp kill()).
		deadline := t.killStart.Add(grace)
		if !deadline.Before(t.killDeadline) {
			return
		}
		s.scheduleEscalationLocked(t, deadline.Sub(now))
		t.killDeadline = deadline
	case dockerExecutor:
		// The Docker executor issues another `docker stop` with the new
		// grace period.
		s.deliverSIGTERMLocked(t)
		s.scheduleEscalationLocked(t, grace)
		t.killDeadline = now.Add(grace)
	default:
		// The default executor ignores kills of a task being killed.
		s.log.Info("ignoring kill of a task that is being killed", "taskID", t.id)
	}
}

// signalTaskLocked sends SIGTERM (unless the task ignores it) and
// schedules the SIGKILL after grace, as executors do.
func (s *Server) signalTaskLocked(t *task, grace time.Duration) {
	t.killStart = time.Now()
	t.killDeadline = t.killStart.Add(grace)
	s.deliverSIGTERMLocked(t)
	s.scheduleEscalationLocked(t, grace)
}

// deliverSIGTERMLocked sends SIGTERM to the task's processes, or, for a
// simulated task that does not ignore it, makes the task end shortly after.
func (s *Server) deliverSIGTERMLocked(t *task) {
	if t.ignoreSIGTERM {
		s.log.Info("task ignores SIGTERM (fault injection)", "taskID", t.id)
		return
	}
	if t.proc != nil {
		t.proc.sigterm()
		return
	}
	if t.proc == nil && !s.runsAsProcess(t) {
		s.stopTimerLocked(t.stateTimer)
		t.stateTimer = s.afterLocked(s.opts.StartingDelay, func() {
			t.stateTimer = nil
			s.simulatedKillEndLocked(t, "Terminated", 143)
		})
	}
}

// scheduleEscalationLocked (re)arms the SIGKILL of the kill in progress.
func (s *Server) scheduleEscalationLocked(t *task, after time.Duration) {
	s.stopTimerLocked(t.killTimer)
	t.killTimer = s.afterLocked(nonNegative(after), func() {
		t.killTimer = nil
		if t.proc != nil {
			s.log.Info("grace period over: sending SIGKILL", "taskID", t.id)
			t.proc.sigkill()
			return
		}
		if !s.runsAsProcess(t) {
			s.simulatedKillEndLocked(t, "Killed", 137)
		}
	})
}

// simulatedKillEndLocked ends a simulated task that a signal killed, with
// the message its executor would send: "Command terminated with signal
// Terminated" (command and default executors: WSTRINGIFY of the wait
// status), "Container exited with status 143" (the Docker executor reports
// the exit status of `docker run`).
func (s *Server) simulatedKillEndLocked(t *task, signal string, dockerStatus int) {
	s.stopTimerLocked(t.stateTimer)
	t.stateTimer = nil
	s.stopTimerLocked(t.killTimer)
	t.killTimer = nil
	msg := "Command terminated with signal " + signal
	if t.executorKind() == dockerExecutor {
		msg = fmt.Sprintf("Container exited with status %d", dockerStatus)
	}
	s.updateTaskLocked(t, mesos.TASK_KILLED, nil, msg, mesos.SOURCE_EXECUTOR)
}

// abandonKillLocked kills what runs for a task the master no longer tracks
// (its framework was removed): the agent shuts the executor down, which
// kills the task with the executor's shutdown grace.
func (s *Server) abandonKillLocked(t *task) {
	if t.proc == nil || t.killTimer != nil {
		return
	}
	t.killing = true
	s.signalTaskLocked(t, s.killGraceLocked(t, killRequest{shutdown: true}))
}

// IgnoreSIGTERM makes a task ignore (or no longer ignore) SIGTERM: a kill
// then ends it only at the end of its grace period, with SIGKILL ("Command
// terminated with signal Killed"; TASK_KILLED when killed on request).
// Process tasks get no SIGTERM at all while this is set; simulated tasks
// that do not ignore SIGTERM end shortly after the kill.
func (s *Server) IgnoreSIGTERM(taskID string, ignore bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTaskLocked(taskID)
	if t == nil || t.terminal() {
		return fmt.Errorf("no live task %q", taskID)
	}
	s.log.Info("fault injection: task ignores SIGTERM", "taskID", taskID, "ignore", ignore)
	t.ignoreSIGTERM = ignore
	return nil
}
