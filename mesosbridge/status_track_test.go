package mesosbridge

import (
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func status(id string, state mesos.TaskState, healthy *bool) mesos.TaskStatus {
	return mesos.TaskStatus{TaskID: mesos.TaskID{Value: id}, State: state.Enum(), Healthy: healthy}
}

func TestObserveStatusKeepsLaunchFacts(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := launchedTask{Name: "server-0", TaskID: "server-0.aa", Role: "server", SpecHash: "h1", AgentID: "a1", Hostname: "n1", Ports: map[string]uint32{"api": 31000}}
	o := l.observed(t0)
	if o.State != TaskStaging {
		t.Fatalf("launched task starts as %s", o.State)
	}
	o = observeStatus(o, status("server-0.aa", mesos.TASK_RUNNING, ptr(true)), t0.Add(time.Second))
	if o.State != TaskRunning || o.Healthy == nil || !*o.Healthy || o.Ports["api"] != 31000 || o.SpecHash != "h1" || o.Hostname != "n1" {
		t.Errorf("%+v", o)
	}
	st := status("server-0.aa", mesos.TASK_FAILED, nil)
	st.Reason = mesos.REASON_COMMAND_EXECUTOR_FAILED.Enum()
	st.Message = ptr("exit 1")
	o = observeStatus(o, st, t0.Add(2*time.Second))
	if o.State != TaskFailed || !o.State.Terminal() || o.Reason != "REASON_COMMAND_EXECUTOR_FAILED" || o.Message != "exit 1" || o.Healthy != nil {
		t.Errorf("%+v", o)
	}
}

func TestObserveStatusAdoptsUnknownTask(t *testing.T) {
	st := status("agent-3.0123456789abcdef", mesos.TASK_RUNNING, nil)
	st.AgentID = &mesos.AgentID{Value: "a7"}
	o := observeStatus(ObservedTask{}, st, time.Unix(1, 0))
	if o.Name != "agent-3" || o.Role != "agent" || o.Index != 3 || o.AgentID != "a7" || o.State != TaskRunning {
		t.Errorf("%+v", o)
	}
}

func TestParseTaskName(t *testing.T) {
	tests := []struct {
		name  string
		role  TaskRole
		index int
		ok    bool
	}{
		{"server-0", "server", 0, true},
		{"agent-12", "agent", 12, true},
		{"datastore-1", "datastore", 1, true},
		{"worker-1", "worker", 1, true},
		{"agent-01", "", 0, false},
		{"agent-", "", 0, false},
		{"agent", "", 0, false},
		{"agent--1", "", 0, false},
	}
	for _, tt := range tests {
		role, index, ok := ParseTaskName(tt.name)
		if role != tt.role || index != tt.index || ok != tt.ok {
			t.Errorf("ParseTaskName(%q) = %q %d %v", tt.name, role, index, ok)
		}
	}
}

func TestSupersedes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rec := func(id string, s TaskState, at int) ObservedTask {
		return ObservedTask{Name: "agent-0", TaskID: id, State: s, LastUpdate: t0.Add(time.Duration(at) * time.Second)}
	}
	tests := []struct {
		name          string
		current, next ObservedTask
		want          bool
	}{
		{"nothing known", ObservedTask{}, rec("a", TaskRunning, 0), true},
		{"same task", rec("a", TaskRunning, 5), rec("a", TaskFailed, 1), true},
		{"relaunch replaces dead task", rec("a", TaskFailed, 5), rec("b", TaskStaging, 6), true},
		{"late update of dead task does not hide relaunch", rec("b", TaskRunning, 6), rec("a", TaskKilled, 7), false},
		{"newer of two dead tasks", rec("a", TaskFailed, 5), rec("b", TaskFailed, 6), true},
		{"older of two dead tasks", rec("b", TaskFailed, 6), rec("a", TaskLost, 5), false},
	}
	for _, tt := range tests {
		if got := supersedes(tt.current, tt.next); got != tt.want {
			t.Errorf("%s: supersedes = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !duplicateOf(rec("a", TaskRunning, 0), rec("b", TaskStarting, 0)) || duplicateOf(rec("a", TaskRunning, 0), rec("b", TaskFailed, 0)) {
		t.Errorf("duplicateOf")
	}
}
