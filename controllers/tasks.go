package controllers

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// Converting between status.tasks, the operator's memory of a cluster's tasks, and what
// the Mesos bridge observes.

// knownTasks hands status.tasks back to the bridge: after an operator restart they are
// its only memory of what runs, so nothing is launched twice.
func knownTasks(ts []v1alpha1.TaskStatus) []mesosbridge.ObservedTask {
	out := make([]mesosbridge.ObservedTask, 0, len(ts))
	for _, t := range ts {
		if t.TaskID == "" {
			continue
		}
		_, index, _ := mesosbridge.ParseTaskName(t.Name)
		o := mesosbridge.ObservedTask{
			Name: t.Name, TaskID: t.TaskID, AgentID: t.AgentID, Hostname: t.AgentHost,
			State: mesosbridge.TaskState(t.State), Healthy: t.Healthy, SpecHash: t.SpecHash,
			Role: mesosbridge.TaskRole(t.Role), Index: index,
		}
		for k, v := range t.Ports {
			if o.Ports == nil {
				o.Ports = map[string]uint32{}
			}
			o.Ports[k] = uint32(v)
		}
		out = append(out, o)
	}
	return out
}

// mergeObserved copies the bridge's view of a task into its status entry. After an
// operator restart the bridge may not know a task's spec hash or ports (Mesos reports
// neither on reconciliation); the previous status keeps them for the same task ID.
func mergeObserved(st v1alpha1.TaskStatus, obs mesosbridge.ObservedTask, spec mesosbridge.TaskSpec, isDesired bool, version string) v1alpha1.TaskStatus {
	sameTask := st.TaskID == obs.TaskID
	st.TaskID = obs.TaskID
	st.Role = string(obs.Role)
	st.State = string(obs.State)
	st.Healthy = obs.Healthy
	if obs.Hostname != "" || !sameTask {
		st.AgentHost = obs.Hostname
	}
	if obs.AgentID != "" || !sameTask {
		st.AgentID = obs.AgentID
	}
	if len(obs.Ports) > 0 || !sameTask {
		st.Ports = nil
		for k, v := range obs.Ports {
			if st.Ports == nil {
				st.Ports = map[string]int32{}
			}
			st.Ports[k] = int32(v)
		}
	}
	if obs.SpecHash != "" || !sameTask {
		st.SpecHash = obs.SpecHash
	}
	if isDesired && st.SpecHash == spec.SpecHash {
		st.Version = version
	}
	st.Message = explainExit(obs.Message)
	if obs.Reason != "" {
		st.Message = fmt.Sprintf("%s: %s", obs.Reason, st.Message)
	}
	return st
}

// wrongVersionExit is how the executors report the task script's refusal to run a K3s of
// another release ("Command exited with status 78", src/launcher/executor.cpp and
// default_executor.cpp word it so).
var wrongVersionExit = fmt.Sprintf("exited with status %d", k3s.ExitWrongVersion)

// explainExit adds what a status of the task script means; Mesos passes on the exit
// status only, the script's own words are in the task's stderr.
func explainExit(msg string) string {
	if strings.HasSuffix(msg, wrongVersionExit) {
		return msg + " (the K3s executable is not the release spec.version names: check binaryURL or image; the task's stderr says which it is)"
	}
	return msg
}

var roleRank = map[string]int{string(roleServer): 0, string(roleAgent): 1}

func sortTaskStatuses(ts []v1alpha1.TaskStatus) {
	sort.Slice(ts, func(i, j int) bool {
		if ri, rj := roleRank[ts[i].Role], roleRank[ts[j].Role]; ri != rj {
			return ri < rj
		}
		return taskNameLess(ts[i].Name, ts[j].Name)
	})
}

// taskNameLess orders task names by role, then index: agent-2 before agent-10.
func taskNameLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func sortTaskNames(names []string) {
	sort.Slice(names, func(i, j int) bool { return taskNameLess(names[i], names[j]) })
}

// withStatusKnowledge fills in what the bridge lost across an operator restart (spec
// hash, ports, agent) from status.tasks, for the same Mesos task ID, so that adopted
// tasks are neither rolled needlessly nor moved away from their volume.
func withStatusKnowledge(observed map[string]mesosbridge.ObservedTask, prev []v1alpha1.TaskStatus) map[string]mesosbridge.ObservedTask {
	out := make(map[string]mesosbridge.ObservedTask, len(observed))
	for k, v := range observed {
		out[k] = v
	}
	for _, p := range prev {
		o, ok := out[p.Name]
		if !ok || o.TaskID != p.TaskID {
			continue
		}
		if o.SpecHash == "" {
			o.SpecHash = p.SpecHash
		}
		if len(o.Ports) == 0 && len(p.Ports) > 0 {
			o.Ports = map[string]uint32{}
			for k, v := range p.Ports {
				o.Ports[k] = uint32(v)
			}
		}
		if o.Hostname == "" {
			o.Hostname = p.AgentHost
		}
		if o.AgentID == "" {
			o.AgentID = p.AgentID
		}
		out[p.Name] = o
	}
	return out
}
