package mesosbridge

import "sort"

// pendingOf is what an offer round should try to launch: the desired tasks without a live
// task under their name. A task being killed (TASK_KILLING) is still live, so its
// replacement waits for the terminal update instead of racing it for the volume and ports.
func pendingOf(desired []TaskSpec, tasks map[string]ObservedTask) []TaskSpec {
	var pending []TaskSpec
	for _, spec := range desired {
		if t, ok := tasks[spec.Name]; ok && t.TaskID != "" && !t.State.Terminal() {
			continue
		}
		pending = append(pending, spec)
	}
	return pending
}

// activeOf lists the live tasks as constraint siblings, sorted by name for determinism,
// with the attributes of their agents as last seen in offers (agentAttrs by agent ID).
func activeOf(tasks map[string]ObservedTask, agentAttrs map[string]map[string]string) []placedTask {
	var active []placedTask
	for _, t := range tasks {
		if t.TaskID == "" || t.State.Terminal() {
			continue
		}
		active = append(active, placedTask{
			Name: t.Name, Role: t.Role, AgentID: t.AgentID, Hostname: t.Hostname, Attributes: agentAttrs[t.AgentID],
		})
	}
	sort.Slice(active, func(i, j int) bool { return active[i].Name < active[j].Name })
	return active
}
