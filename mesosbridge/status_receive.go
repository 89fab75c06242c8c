package mesosbridge

import (
	"context"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// handleUpdate records a task status, tells the controller at once (a failure is
// reported within the event that carries it), and only then acknowledges it: an update
// acknowledged before it is recorded could be lost by a crash in between.
func (c *cluster) handleUpdate(ctx context.Context, cl *caller, st mesos.TaskStatus) error {
	c.metrics.taskUpdates.WithLabelValues(st.GetState().String()).Inc()
	c.mu.Lock()
	if isBarrier(st.TaskID.Value) {
		if st.TaskID.Value == c.sub.barrierID && !c.sub.reconciled {
			c.sub.reconciled = true
			c.log.Info("reconciliation answered; launches may proceed", "tasks", len(c.live))
		}
		c.mu.Unlock()
		return nil
	}
	changed := c.recordStatusLocked(st, time.Now())
	c.mu.Unlock()
	if changed {
		c.notify()
	}
	if len(st.UUID) == 0 {
		return nil // from the master itself (reconciliation, invalid launch): no ack
	}
	return cl.call(ctx, calls.Acknowledge(st.GetAgentID().GetValue(), st.TaskID.Value, st.UUID), nil)
}

// recordStatusLocked folds a status into the task records; it reports whether what the
// controller sees changed. A second live task under a name that already has one is a
// duplicate left by an earlier incarnation of the operator: the task already reported
// stays, the newcomer is killed.
func (c *cluster) recordStatusLocked(st mesos.TaskStatus, now time.Time) bool {
	id := st.TaskID.Value
	prev, ok := c.live[id]
	if !ok {
		for _, t := range c.tasks {
			if t.TaskID == id {
				prev = t
				break
			}
		}
	}
	o := observeStatus(prev, st, now)
	if o.Name == "" {
		c.log.Info("update for a task that is not the bridge's", "taskID", id, "state", o.State)
		return false
	}
	// A KILL already sent is sent again only when the task's state moved: the master
	// answers the KILL of a task on an unreachable agent with TASK_UNREACHABLE (by
	// reconciliation), and sending it again for that answer would loop as fast as the
	// round trip for as long as the partition lasts; once the agent is back, the KILL
	// that reached nobody is sent again.
	_, queued := c.kills[id]
	_, sent := c.killsSent[id]
	killAgain := !queued && (!sent || prev.State != o.State)
	if o.State.Terminal() {
		delete(c.live, id)
		delete(c.kills, id)
		delete(c.killsSent, id)
		delete(c.abandoned, id)
	} else {
		c.live[id] = o
		if c.abandoned[id] && o.State != TaskUnreachable && killAgain {
			// Its agent is back, and its name may already have a replacement (or get
			// one: pendingLocked ignores abandoned tasks), so it must die now.
			c.log.Info("abandoned task is back; killing it", "task", o.Name, "taskID", id, "state", o.State)
			c.kills[id] = killOrder{agentID: o.AgentID, grace: c.graceLocked(o.Name)}
			c.poke()
		}
	}
	cur, has := c.tasks[o.Name]
	if has && duplicateOf(cur, o) {
		if killAgain {
			c.log.Info("duplicate task; killing it", "task", o.Name, "kept", cur.TaskID, "killing", id)
			c.kills[id] = killOrder{agentID: o.AgentID, grace: c.graceLocked(o.Name)}
			c.poke()
		}
		return false
	}
	if has && !supersedes(cur, o) {
		return false
	}
	c.tasks[o.Name] = o
	if o.State.Terminal() {
		c.endedAt[o.Name] = c.ensures
	}
	if o.State.Terminal() && o.State != TaskFinished {
		c.log.Info("task ended", "task", o.Name, "taskID", id, "state", o.State, "reason", o.Reason, "message", o.Message)
	}
	return true
}
