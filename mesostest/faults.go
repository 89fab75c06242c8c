package mesostest

import (
	"fmt"
	"slices"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// findTaskLocked finds a live task by ID across frameworks.
func (s *Server) findTaskLocked(taskID string) *task {
	ids := make([]string, 0, len(s.frameworks))
	for id := range s.frameworks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if t := s.frameworks[id].tasks[taskID]; t != nil {
			return t
		}
	}
	return nil
}

// FailTask makes a task report state with reason and message, as if its
// executor or agent did. A terminal state stops the task (its process is
// killed at once); a non-terminal one is just reported.
func (s *Server) FailTask(taskID string, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTaskLocked(taskID)
	if t == nil || t.terminal() {
		return fmt.Errorf("no live task %q", taskID)
	}
	s.log.Info("fault injection: task state forced", "taskID", taskID, "state", state.String(), "reason", reason.String())
	if isTerminal(state) && t.proc != nil {
		t.proc.destroy()
	}
	r := reason
	s.updateTaskLocked(t, state, &r, message, mesos.SOURCE_EXECUTOR)
	return nil
}

// SetTaskHealth overrides the health check result of a task: simulated
// tasks report it at once, process tasks at their next check (where
// consecutive failures kill the task, as in Mesos).
func (s *Server) SetTaskHealth(taskID string, healthy bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTaskLocked(taskID)
	if t == nil || t.terminal() {
		return fmt.Errorf("no live task %q", taskID)
	}
	h := healthy
	t.healthOverride = &h
	if t.proc == nil && t.state == mesos.TASK_RUNNING && (t.healthy == nil || *t.healthy != healthy) {
		s.healthUpdateLocked(t, healthy)
	}
	return nil
}

// LoseAgent marks an agent unreachable, as the master does when an agent
// stops answering health checks (Master::markUnreachable): its offers are
// rescinded and the tasks the master knows of it reported TASK_UNREACHABLE
// to partition-aware frameworks (kept as unreachable tasks), TASK_LOST to
// the others (which the master forgets). Processes keep running, as on a
// partitioned machine. An agent still to reregister after a master restart
// is marked unreachable without any update (the master knows no task of it).
func (s *Server) LoseAgent(hostname string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agentsByHost[hostname]
	if a == nil {
		return fmt.Errorf("no agent with hostname %q", hostname)
	}
	if !a.reachable {
		return nil
	}
	s.log.Info("fault injection: agent unreachable", "agentID", a.id, "hostname", hostname)
	wasRegistered := a.registeredWithMaster()
	s.stopTimerLocked(a.reregisterTimer)
	a.reregisterTimer = nil
	a.reachable, a.recovered = false, false
	a.unreachableSince = time.Now()
	for _, o := range a.offers {
		s.removeOfferLocked(o, true)
	}
	if !wasRegistered {
		return nil
	}
	message := fmt.Sprintf("Agent %s (%s) is unreachable", a.id, a.hostname)
	unreachableTime := &mesos.TimeInfo{Nanoseconds: a.unreachableSince.UnixNano()}
	for _, t := range tasksOf(a) {
		fw := t.fw
		if t.removed || t.terminal() || fw.tasks[t.id] != t {
			continue
		}
		status := s.masterStatus(fw, mesos.TaskID{Value: t.id}, mesos.TASK_UNREACHABLE, mesos.REASON_AGENT_REMOVED, message)
		status.AgentID = &mesos.AgentID{Value: a.id}
		status.ExecutorID = &mesos.ExecutorID{Value: t.executorID}
		status.UnreachableTime = unreachableTime
		fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: status}})
		delete(fw.tasks, t.id)
		// Master::__removeSlave records the update in the task's statuses.
		if fw.partitionAware {
			masterReceivedLocked(t, status)
			fw.unreachable[t.id] = t
		} else {
			// The master forgets the task (what /state shows of it is a
			// snapshot in TASK_LOST); the agent keeps running it.
			lost := *t
			lost.state = mesos.TASK_LOST
			lost.statuses = append([]mesos.TaskStatus(nil), t.statuses...)
			masterReceivedLocked(&lost, status)
			lost.removed = true
			s.appendCompletedLocked(fw, &lost)
		}
	}
	return nil
}

// RestoreAgent makes an agent reregister now: an unreachable one comes back
// with its tasks (all of them, partition-aware or not, as Mesos 1.5+
// readmits them; each one's framework gets an update of its current state,
// "Unreachable agent re-reregistered"); one still to reregister after a
// master restart does it without further delay.
func (s *Server) RestoreAgent(hostname string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agentsByHost[hostname]
	if a == nil {
		return fmt.Errorf("no agent with hostname %q", hostname)
	}
	if a.registeredWithMaster() {
		return nil
	}
	s.log.Info("fault injection: agent reregisters", "agentID", a.id, "hostname", hostname)
	s.reregisterAgentLocked(a)
	return nil
}

func tasksOf(a *agent) []*task {
	out := make([]*task, 0, len(a.tasks))
	for t := range a.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// DropStream closes a framework's event stream from the master's side (as a
// broken connection would); the framework is disconnected and must
// resubscribe within its failover timeout.
func (s *Server) DropStream(frameworkID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw := s.frameworks[frameworkID]
	if fw == nil || fw.stream == nil {
		return fmt.Errorf("framework %q is not subscribed", frameworkID)
	}
	s.log.Info("fault injection: dropping stream", "frameworkID", frameworkID)
	s.disconnectLocked(fw, "stream dropped by fault injection")
	return nil
}

// StopHeartbeats stops (or resumes) HEARTBEAT events on a framework's
// current stream, so a scheduler's heartbeat-miss detection can be tested.
func (s *Server) StopHeartbeats(frameworkID string, stopped bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw := s.frameworks[frameworkID]
	if fw == nil || fw.stream == nil {
		return fmt.Errorf("framework %q is not subscribed", frameworkID)
	}
	s.log.Info("fault injection: heartbeats", "frameworkID", frameworkID, "stopped", stopped)
	fw.stream.heartbeatsStopped.Store(stopped)
	return nil
}

// DelayCalls delays every scheduler API request by d before it is handled
// (0 stops delaying).
func (s *Server) DelayCalls(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Info("fault injection: delaying calls", "delay", d.String())
	s.callDelay = d
}

// RejectCalls answers every scheduler API request with the given HTTP
// status (e.g. 500, 429); 0 stops rejecting.
func (s *Server) RejectCalls(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Info("fault injection: rejecting calls", "status", status)
	s.rejectStatus = status
}

// SetUnavailable makes every master answer 503 "No leader elected" (true)
// or restores the leader (false). Subscriptions are closed when leadership
// is lost, as a master that loses its ZooKeeper session does.
func (s *Server) SetUnavailable(unavailable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Info("fault injection: leader availability", "unavailable", unavailable)
	if unavailable && !s.noLeader {
		s.disconnectAllLocked("leader lost")
	}
	s.noLeader = unavailable
}

// AddMaster starts another master address in front of the same cluster
// state. It does not lead (it answers 307 to the leader) until FailoverTo
// elects it. It returns its base URL.
func (s *Server) AddMaster() (url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.newMaster("127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("mesostest: %v", err))
	}
	if !s.closed && s.leader != nil && s.leader.started {
		s.serveLocked(m)
	}
	s.log.Info("master added", "url", m.url)
	return m.url
}

// MasterURLs lists the base URLs of all masters, the first one first.
func (s *Server) MasterURLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.masters))
	for i, m := range s.masters {
		out[i] = m.url
	}
	return out
}

// FailoverTo makes the master at url the leader. The old leader's
// connections die with it; the new leader recovers from the registry as a
// restarted master does (see RestartMaster): it knows the agents, which
// reregister after Options.AgentReregistrationDelay, and learns the
// frameworks again from them and from schedulers that resubscribe with
// their framework ID (within their failover timeout for it to matter).
func (s *Server) FailoverTo(url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.masters {
		if m.url == url {
			s.log.Info("fault injection: master failover", "newLeader", url)
			s.leader = m
			s.noLeader = false
			s.recoverLocked("master failover")
			return nil
		}
	}
	return fmt.Errorf("no master at %q", url)
}

func (s *Server) disconnectAllLocked(why string) {
	ids := make([]string, 0, len(s.frameworks))
	for id, fw := range s.frameworks {
		if fw.stream != nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		s.disconnectLocked(s.frameworks[id], why)
	}
}

// MarkAgentGone is an operator's MARK_AGENT_GONE for an unreachable agent, as
// Master::markGone does it (src/master/master.cpp): the agent is removed for good
// (its resources, persistent volumes included, are never offered again, and it may
// not reregister), and each of its unreachable tasks goes to TASK_GONE_BY_OPERATOR
// with REASON_SLAVE_REMOVED_BY_OPERATOR (REASON_AGENT_REMOVED_BY_OPERATOR in the v1 API; "Agent
// has been marked gone"; TASK_LOST and
// REASON_SLAVE_REMOVED for frameworks that are not partition-aware). A later explicit
// reconciliation of a task on that agent is answered TASK_GONE_BY_OPERATOR (case 5 of
// Master::_reconcileTasks). Marking a registered agent gone, which Mesos also allows,
// is not emulated.
func (s *Server) MarkAgentGone(hostname string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agentsByHost[hostname]
	if a == nil {
		return fmt.Errorf("no agent with hostname %q", hostname)
	}
	if a.reachable || a.recovered {
		return fmt.Errorf("agent %s is registered: only an unreachable agent can be marked gone here", hostname)
	}
	if a.host != nil {
		return fmt.Errorf("agent %s has a host of its own: marking it gone is emulated for simulated agents only", hostname)
	}
	s.log.Info("fault injection: agent marked gone", "agentID", a.id, "hostname", hostname)
	const message = "Agent has been marked gone"
	for _, t := range tasksOf(a) {
		fw := t.fw
		if fw.unreachable[t.id] == t {
			status := s.masterStatus(fw, mesos.TaskID{Value: t.id}, mesos.TASK_GONE_BY_OPERATOR, mesos.REASON_AGENT_REMOVED_BY_OPERATOR, message)
			status.AgentID = &mesos.AgentID{Value: a.id}
			status.ExecutorID = &mesos.ExecutorID{Value: t.executorID}
			t.state = status.GetState()
			masterReceivedLocked(t, status)
			fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: status}})
		}
		s.taskTerminatedLocked(t)
		s.completeTaskLocked(t)
	}
	s.stopTimerLocked(a.reregisterTimer)
	a.reregisterTimer = nil
	delete(s.agents, a.id)
	delete(s.agentsByHost, a.hostname)
	s.agentOrder = slices.DeleteFunc(s.agentOrder, func(o *agent) bool { return o == a })
	s.goneAgents[a.id] = time.Now()
	return nil
}
