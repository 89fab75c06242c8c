package mesosbridge

import (
	"fmt"
	"time"
)

// The master's ERROR messages that end a framework's subscription for good.
//
// src/master/master.cpp validateFrameworkSubscription refuses a SUBSCRIBE whose framework
// ID is among the completed frameworks with "Framework has been removed": its failover
// timeout ran out while no scheduler was connected, or an operator tore it down
// (TEARDOWN through the operator API, /teardown). removeFramework has by then told every
// agent to shut the framework's executors down, so every task of it is gone.
//
// master.cpp's _subscribe(http) sends "Framework failed over" to the connected scheduler
// when another one subscribes with the same framework ID (and closes its stream).
const (
	masterFrameworkRemoved = "Framework has been removed"
	masterFailedOver       = "Framework failed over"
)

// startOverIfRemoved handles the master's "Framework has been removed" outside a
// teardown: Mesos killed every task, so none may count as running (let alone healthy)
// any more; the removed ID is dropped and never subscribed with again, and the next
// subscription registers a new framework. The servers' volumes and reservations belong
// to the role, not to the framework, so relaunched servers find their data.
func (c *cluster) startOverIfRemoved(masterError string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if masterError != masterFrameworkRemoved || c.teardown.requested {
		return false
	}
	old := c.frameworkID
	if old == "" {
		old = c.cfg.FrameworkID
	}
	if old == "" {
		return false // a new framework refused so: nothing to start over from
	}
	c.removed[old] = true
	c.removedFrameworkID = old
	c.frameworkID, c.cfg.FrameworkID = "", ""
	now := time.Now()
	msg := fmt.Sprintf("killed by Mesos: the master removed framework %s", old)
	for id, t := range c.live {
		t.State, t.Reason, t.Message, t.Healthy = TaskKilled, ReasonFrameworkRemoved, msg, nil
		t.StateSince, t.LastUpdate = now, now
		delete(c.live, id)
		delete(c.kills, id)
		delete(c.killsSent, id)
		delete(c.abandoned, id)
		if cur, ok := c.tasks[t.Name]; ok && cur.TaskID == id {
			c.tasks[t.Name] = t
			c.endedAt[t.Name] = c.ensures
		}
	}
	c.connGen++
	c.setConnLocked(false, ConnFrameworkRemoved, fmt.Sprintf(
		"Mesos removed framework %s (its failover timeout ran out while no operator was connected, or a Mesos operator tore it down) and killed its tasks; registering a new framework",
		old))
	c.log.Info("framework removed by the master; starting over as a new framework", "removed", old)
	c.metrics.frameworksRemoved.Inc()
	c.notify()
	return true
}

// standDownFor is how long a bridge that lost its framework to another scheduler waits
// before it subscribes again: long enough that two operators do not fight over it, short
// enough that a framework whose other scheduler went away (a `make run` ended) is driven
// again well before Mesos' failover timeout would kill its tasks.
func standDownFor(failoverTimeout time.Duration) time.Duration {
	d := time.Minute
	if failoverTimeout > 0 {
		d = min(d, failoverTimeout/4)
	}
	return max(d, time.Second)
}

// standDownIfFailedOver handles "Framework failed over": another scheduler (a second
// operator process: a leader-election overlap, or `make run` beside a deployment) now
// holds the framework. Subscribing again at once would take it back, and the two would
// steal it from each other on every reconnect. This bridge stops driving the cluster,
// says so, and tries again after standDownFor (or on a config change).
func (c *cluster) standDownIfFailedOver(masterError string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if masterError != masterFailedOver {
		return false
	}
	c.setConnLocked(false, ConnFailedOver, fmt.Sprintf(
		"another scheduler subscribed as framework %s, so this operator stopped driving the cluster (it tries again in %s): run one operator, with --leader-elect, per management cluster",
		c.frameworkID, standDownFor(c.cfg.FailoverTimeout)))
	c.log.Info("framework failed over to another scheduler; standing down", "frameworkID", c.frameworkID)
	c.notify()
	return true
}
