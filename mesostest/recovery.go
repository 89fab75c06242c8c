package mesostest

import (
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// A master that starts (a restart without ZooKeeper, or a new leader after
// a failover) knows from its registry only the agents, not their tasks and
// not the frameworks (Master::_recover, src/master/master.cpp): every agent
// is "recovered" until it reregisters, which brings its tasks and the
// frameworks they belong to back (Master::__reregisterSlave,
// Master::recoverFramework); a scheduler that resubscribes with its
// framework ID is admitted with it. Meanwhile /state shows no tasks of
// those agents, implicit reconciliation does not mention them, and explicit
// reconciliation of a task on a recovered agent, or of one without agent
// ID while any agent is still recovered, is not answered (Master::reconcile,
// case 2). Agents that do not reregister within --agent_reregister_timeout
// are marked unreachable.

// RestartMaster restarts the leading master in place, as a master without
// ZooKeeper that crashes and comes back on the same address: every event
// stream ends, offers and the allocator's filters are gone, the master has
// a new ID and knows no framework; its agents are recovered and reregister
// after Options.AgentReregistrationDelay (at once with the default 0).
// Tasks keep running on their agents.
func (s *Server) RestartMaster() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leader == nil || s.noLeader {
		return fmt.Errorf("no leading master to restart")
	}
	s.log.Info("fault injection: master restart", "url", s.leader.url)
	s.recoverLocked("master restarted")
	return nil
}

// recoverLocked turns the cluster state into what a master that just
// started knows (the leader is already the new one).
func (s *Server) recoverLocked(why string) {
	// The old master's connections die with it.
	ids := make([]string, 0, len(s.frameworks))
	for id := range s.frameworks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fw := s.frameworks[id]
		if fw.stream != nil {
			fw.stream.close()
			fw.stream = nil
		}
		s.stopTimerLocked(fw.failoverTimer)
		fw.failoverTimer = nil
		for _, o := range fw.offers {
			s.removeOfferLocked(o, false)
		}
		fw.filters = map[filterKey][]offerFilter{}
		fw.registered = false
		// Unreachable tasks are the old master's memory; the agents still
		// run them.
		for id, t := range fw.unreachable {
			delete(fw.unreachable, id)
			fw.tasks[id] = t
		}
	}
	// Tasks the old master had given up (agent unreachable, framework not
	// partition-aware) are the agent's again.
	for _, a := range s.agentOrder {
		for t := range a.tasks {
			if !t.removed && t.fw.tasks[t.id] == nil && s.frameworks[t.fw.id] == t.fw {
				t.fw.tasks[t.id] = t
			}
		}
	}
	s.completedFrameworks = nil
	s.masterID = uuid.NewString()
	s.nextFramework, s.nextOffer, s.nextAgentID = 0, 0, 0
	s.started = time.Now()
	s.nextFilterExpiry = time.Time{}

	s.stopTimerLocked(s.recoveryTimer)
	s.recoveryTimer = nil
	var recovered []*agent
	for _, a := range s.agentOrder {
		s.stopTimerLocked(a.reregisterTimer)
		a.reregisterTimer = nil
		if !a.reachable {
			// In the registry as unreachable: it reregisters as such.
			continue
		}
		a.recovered = true
		recovered = append(recovered, a)
	}
	s.log.Info("master recovered from the registry", "reason", why, "masterID", s.masterID, "recoveredAgents", len(recovered))
	if s.opts.AgentReregistrationDelay <= 0 {
		for _, a := range recovered {
			s.reregisterAgentLocked(a)
		}
		return
	}
	for _, a := range recovered {
		a := a
		a.reregisterTimer = s.afterLocked(s.opts.AgentReregistrationDelay, func() {
			a.reregisterTimer = nil
			s.reregisterAgentLocked(a)
		})
	}
	s.recoveryTimer = s.afterLocked(s.opts.AgentReregisterTimeout, func() {
		s.recoveryTimer = nil
		for _, a := range s.agentOrder {
			if a.recovered {
				s.log.Info("agent did not reregister after master failover: marked unreachable",
					"agentID", a.id, "timeout", s.opts.AgentReregisterTimeout.String())
				s.stopTimerLocked(a.reregisterTimer)
				a.reregisterTimer = nil
				a.recovered = false
				a.reachable = false
				a.unreachableSince = time.Now()
			}
		}
	})
}

// reregisterAgentLocked is an agent reregistering with the master
// (Master::__reregisterSlave). A recovered agent brings its tasks back
// silently; an agent the master had marked unreachable gets its tasks back
// with an update of their current state to their (connected) frameworks,
// REASON_AGENT_REREGISTERED (v0: REASON_SLAVE_REREGISTERED), "Unreachable agent re-reregistered". In both
// cases the frameworks of its tasks are known again, and the agent's status
// update manager resends what is not acknowledged.
func (s *Server) reregisterAgentLocked(a *agent) {
	wasRecovered := a.recovered
	if a.reachable && !a.recovered {
		return
	}
	s.stopTimerLocked(a.reregisterTimer)
	a.reregisterTimer = nil
	a.recovered = false
	a.reachable = true
	now := time.Now()
	a.registered, a.reregistered = now, now
	s.log.Info("agent reregistered", "agentID", a.id, "hostname", a.hostname, "recovered", wasRecovered)
	for _, t := range tasksOf(a) {
		if t.removed || s.frameworks[t.fw.id] != t.fw {
			continue
		}
		fw := t.fw
		if !fw.registered {
			// Master::recoverFramework: known, neither active nor connected.
			fw.registered = true
			fw.registeredTime = now
			s.log.Info("framework recovered from a reregistering agent", "frameworkID", fw.id, "agentID", a.id)
		}
		delete(fw.unreachable, t.id)
		fw.removeCompleted(t.id)
		fw.tasks[t.id] = t
		if !wasRecovered {
			reason := mesos.REASON_AGENT_REREGISTERED
			st := s.newStatus(t, t.state, &reason, "Unreachable agent re-reregistered", mesos.SOURCE_MASTER)
			st.Healthy = lastHealth(t)
			st.ContainerStatus = lastContainerStatus(t)
			fw.send(&scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}})
		}
		s.resendPendingUpdateLocked(t)
	}
	if s.noRecoveredAgentsLocked() {
		s.stopTimerLocked(s.recoveryTimer)
		s.recoveryTimer = nil
	}
	s.triggerAllocation()
}

func (s *Server) noRecoveredAgentsLocked() bool {
	for _, a := range s.agentOrder {
		if a.recovered {
			return false
		}
	}
	return true
}

// removeCompleted drops a task from the completed history (a task the
// master had given up on that comes back).
func (fw *framework) removeCompleted(taskID string) {
	out := fw.completed[:0]
	for _, t := range fw.completed {
		if t.id != taskID {
			out = append(out, t)
		}
	}
	fw.completed = out
}

// lastHealth is protobuf::getTaskHealth: the health of the last status.
func lastHealth(t *task) *bool {
	if n := len(t.statuses); n > 0 {
		return t.statuses[n-1].Healthy
	}
	return nil
}

// lastContainerStatus is protobuf::getTaskContainerStatus: the container
// status of the latest status that has one.
func lastContainerStatus(t *task) *mesos.ContainerStatus {
	for i := len(t.statuses) - 1; i >= 0; i-- {
		if cs := t.statuses[i].ContainerStatus; cs != nil {
			return cs
		}
	}
	return nil
}
