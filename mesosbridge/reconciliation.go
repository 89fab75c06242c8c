package mesosbridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// barrierPrefix marks the task ID of a reconciliation barrier: a task that never exists,
// asked about last in an explicit reconciliation. The master answers the tasks of a
// RECONCILE call in order, after those of the implicit RECONCILE sent before it, so when
// the barrier's answer (TASK_UNKNOWN) arrives every task the master knows has been
// reported, and a launch can no longer duplicate a task that was running unbeknown to
// the bridge. The ID has no dot, so it can never be mistaken for a task of the cluster.
const barrierPrefix = "mesosk3s-reconcile-barrier-"

func newBarrierID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return barrierPrefix + hex.EncodeToString(b[:])
}

func isBarrier(taskID string) bool { return strings.HasPrefix(taskID, barrierPrefix) }

// reconcile asks the master for the state of every task of the framework (implicit
// reconciliation) and, when explicit, for each live task the bridge knows (the
// controller's memory after a restart among them) followed by the barrier.
func (c *cluster) reconcile(ctx context.Context, cl *caller, explicit bool) error {
	implicit := &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{}}
	if err := cl.call(ctx, implicit, nil); err != nil {
		return err
	}
	if !explicit {
		return nil
	}
	c.mu.Lock()
	tasks := make([]scheduler.Call_Reconcile_Task, 0, len(c.live)+1)
	for id, t := range c.live {
		task := scheduler.Call_Reconcile_Task{TaskID: mesos.TaskID{Value: id}}
		if t.AgentID != "" {
			task.AgentID = &mesos.AgentID{Value: t.AgentID}
		}
		tasks = append(tasks, task)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].TaskID.Value < tasks[j].TaskID.Value })
	tasks = append(tasks, scheduler.Call_Reconcile_Task{TaskID: mesos.TaskID{Value: c.sub.barrierID}})
	c.mu.Unlock()
	return cl.call(ctx, &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{Tasks: tasks}}, nil)
}

// reconcileUnreachable asks the master about the tasks last reported unreachable. Mesos
// tells a framework nothing when a partitioned agent comes back, so without this the
// bridge would see those tasks again only at the next periodic reconciliation: a server
// that is running again would look lost, and the old copy of a replaced task would not be
// killed, for up to ReconcileInterval.
func (c *cluster) reconcileUnreachable(ctx context.Context, cl *caller) error {
	c.mu.Lock()
	var tasks []scheduler.Call_Reconcile_Task
	for id, t := range c.live {
		if t.State != TaskUnreachable {
			continue
		}
		task := scheduler.Call_Reconcile_Task{TaskID: mesos.TaskID{Value: id}}
		if t.AgentID != "" {
			task.AgentID = &mesos.AgentID{Value: t.AgentID}
		}
		tasks = append(tasks, task)
	}
	c.mu.Unlock()
	if len(tasks) == 0 {
		return nil
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].TaskID.Value < tasks[j].TaskID.Value })
	return cl.call(ctx, &scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{Tasks: tasks}}, nil)
}
