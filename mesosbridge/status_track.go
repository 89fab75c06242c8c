package mesosbridge

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// observed is the record of a task the round just launched, in TASK_STAGING: what Mesos
// will never tell again (ports, spec hash) is kept from the launch.
func (l launchedTask) observed(now time.Time) ObservedTask {
	return ObservedTask{
		Name: l.Name, TaskID: l.TaskID, AgentID: l.AgentID, Hostname: l.Hostname,
		State: TaskStaging, Ports: l.Ports, SpecHash: l.SpecHash, Role: l.Role, Index: l.Index,
		LastUpdate: now, StateSince: now,
	}
}

// observeStatus folds a status update into what was known about the task. prev is the
// record for the same task ID, or the zero value for a task the bridge did not launch in
// this process (adopted through reconciliation): its name, role and index then come from
// the task ID, and its ports and spec hash stay unknown.
func observeStatus(prev ObservedTask, st mesos.TaskStatus, now time.Time) ObservedTask {
	o := prev
	if o.TaskID != st.TaskID.Value {
		o = ObservedTask{TaskID: st.TaskID.Value}
		if name, ok := taskNameFromID(st.TaskID.Value); ok {
			o.Name = name
			o.Role, o.Index, _ = ParseTaskName(name)
		}
	}
	state := TaskState(st.GetState().String())
	if state != o.State || o.StateSince.IsZero() {
		o.StateSince = now
		if ut := st.GetUnreachableTime(); state == TaskUnreachable && ut != nil {
			o.StateSince = time.Unix(0, ut.Nanoseconds) // when the master lost the agent
		}
	}
	o.State = state
	o.Reason, o.Message = "", st.GetMessage()
	if st.Reason != nil {
		o.Reason = st.Reason.String()
	}
	if st.AgentID != nil && st.AgentID.Value != "" {
		o.AgentID = st.AgentID.Value
	}
	if st.Healthy != nil {
		o.Healthy = ptr(st.GetHealthy())
	} else if o.State.Terminal() {
		o.Healthy = nil // a dead task has no health
	}
	o.LastUpdate = now
	return o
}

// supersedes reports whether next should replace current as the task reported under
// their shared name. Updates for the same task always do. Of two different tasks an
// active one beats a terminal one (a relaunch replaces its dead predecessor, and a late
// update of the predecessor does not hide the relaunch); between two tasks in the same
// class the newer update wins. Two active tasks for one name are a duplicate the event
// loop must kill; see duplicateOf.
func supersedes(current, next ObservedTask) bool {
	if current.TaskID == "" || current.TaskID == next.TaskID {
		return true
	}
	ca, na := !current.State.Terminal(), !next.State.Terminal()
	if ca != na {
		return na
	}
	return !next.LastUpdate.Before(current.LastUpdate)
}

// duplicateOf reports whether two records are different live tasks for one name, which
// only happens if an earlier incarnation of the operator launched one the current one does
// not know about; one of them has to be killed.
func duplicateOf(a, b ObservedTask) bool {
	return a.Name == b.Name && a.TaskID != b.TaskID && !a.State.Terminal() && !b.State.Terminal()
}
