package mesosbridge

import (
	"reflect"
	"testing"
)

func TestPendingOf(t *testing.T) {
	desired := []TaskSpec{{Name: "server-0"}, {Name: "agent-0"}, {Name: "agent-1"}, {Name: "agent-2"}, {Name: "agent-3"}}
	tasks := map[string]ObservedTask{
		"server-0": {Name: "server-0", TaskID: "server-0.a", State: TaskRunning},
		"agent-0":  {Name: "agent-0", TaskID: "agent-0.a", State: TaskFailed},
		"agent-1":  {Name: "agent-1", TaskID: "agent-1.a", State: TaskKilling},
		"agent-2":  {Name: "agent-2", TaskID: "agent-2.a", State: TaskStaging},
		"agent-9":  {Name: "agent-9", TaskID: "agent-9.a", State: TaskRunning},
	}
	var got []string
	for _, s := range pendingOf(desired, tasks) {
		got = append(got, s.Name)
	}
	if want := []string{"agent-0", "agent-3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pending %v, want %v", got, want)
	}
}

func TestActiveOf(t *testing.T) {
	tasks := map[string]ObservedTask{
		"server-1": {Name: "server-1", TaskID: "server-1.a", Role: "server", AgentID: "a2", Hostname: "h2", State: TaskRunning},
		"server-0": {Name: "server-0", TaskID: "server-0.a", Role: "server", AgentID: "a1", Hostname: "h1", State: TaskStarting},
		"agent-0":  {Name: "agent-0", TaskID: "agent-0.a", Role: "agent", AgentID: "a1", Hostname: "h1", State: TaskLost},
	}
	attrs := map[string]map[string]string{"a1": {"rack": "r1"}}
	want := []placedTask{
		{Name: "server-0", Role: "server", AgentID: "a1", Hostname: "h1", Attributes: map[string]string{"rack": "r1"}},
		{Name: "server-1", Role: "server", AgentID: "a2", Hostname: "h2"},
	}
	if got := activeOf(tasks, attrs); !reflect.DeepEqual(got, want) {
		t.Errorf("active %+v, want %+v", got, want)
	}
}
