package mesosbridge

import (
	"context"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// killOrder is a KILL to send.
type killOrder struct {
	agentID string
	grace   time.Duration
}

// requestKill queues a KILL for every live task under the names (the reported one and
// any duplicate); names without a live task are ignored. A task on an unreachable or
// unknown agent is also abandoned: its name may be relaunched at once.
func (c *cluster) requestKill(names ...string) {
	c.mu.Lock()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for id, t := range c.live {
		if want[t.Name] {
			c.kills[id] = killOrder{agentID: t.AgentID, grace: c.graceLocked(t.Name)}
			// TASK_UNKNOWN: the master does not know the agent any more (it was removed),
			// so no update will ever end the task either.
			if t.State == TaskUnreachable || t.State == TaskUnknown {
				c.abandoned[id] = true
			}
		}
	}
	c.mu.Unlock()
	c.poke()
}

// graceLocked is the kill grace period of a task name: the one its spec last asked for
// (kept after the task stops being desired: a teardown or scale-down kills it with the
// grace it was launched with), else the default of the TaskInfo builder.
func (c *cluster) graceLocked(name string) time.Duration {
	return c.graces[name]
}

// sendKills sends the queued KILLs, each with the task's kill policy so Mesos honours the
// grace period even for tasks launched by an earlier incarnation of the operator.
func (c *cluster) sendKills(ctx context.Context, cl *caller) error {
	c.mu.Lock()
	ids := make([]string, 0, len(c.kills))
	for id := range c.kills {
		ids = append(ids, id)
	}
	orders := make([]killOrder, len(ids))
	sort.Strings(ids)
	for i, id := range ids {
		orders[i] = c.kills[id]
	}
	c.mu.Unlock()
	for i, id := range ids {
		k := orders[i]
		call := &scheduler.Call{Type: scheduler.Call_KILL, Kill: &scheduler.Call_Kill{
			TaskID: mesos.TaskID{Value: id}, KillPolicy: killPolicy(k.grace),
		}}
		if k.agentID != "" {
			call.Kill.AgentID = &mesos.AgentID{Value: k.agentID}
		}
		if err := cl.call(ctx, call, nil); err != nil {
			return err
		}
		c.log.Info("kill sent", "taskID", id)
		c.mu.Lock()
		if cur, queued := c.kills[id]; queued && cur == k {
			delete(c.kills, id)
		}
		if _, live := c.live[id]; live {
			c.killsSent[id] = k
		}
		c.mu.Unlock()
	}
	return nil
}
