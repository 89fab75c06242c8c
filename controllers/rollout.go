package controllers

import (
	"sort"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// rolloutKills names the out-of-date tasks (spec hash differs from the current spec's)
// to replace now. Servers go one at a time and only while every server is ready, so the
// control plane never loses two members; agents go up to maxUnavailable at once, counting
// the agents already down. The bridge relaunches a killed task that is still desired with
// the new spec once it is terminal.
func rolloutKills(desired []mesosbridge.TaskSpec, observed map[string]mesosbridge.ObservedTask, maxUnavailable *intstr.IntOrString, r readiness) []string {
	var staleServers, staleAgents []mesosbridge.ObservedTask
	serversReady, agentsUnavailable, agents := true, 0, 0
	for _, t := range desired {
		o, ok := observed[t.Name]
		ready := ok && r.serves(o)
		switch t.Role {
		case roleServer:
			serversReady = serversReady && ready
		case roleAgent:
			agents++
			if !ready {
				agentsUnavailable++
			}
		}
		if !taskLive(o, ok) || o.State == mesosbridge.TaskKilling || o.SpecHash == "" || o.SpecHash == t.SpecHash {
			continue
		}
		if t.Role == roleServer {
			staleServers = append(staleServers, o)
		} else if t.Role == roleAgent {
			staleAgents = append(staleAgents, o)
		}
	}
	byIndexDesc := func(ts []mesosbridge.ObservedTask) {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Index > ts[j].Index })
	}
	var kills []string
	if serversReady && len(staleServers) > 0 {
		byIndexDesc(staleServers)
		kills = append(kills, staleServers[0].Name)
	}
	budget := maxUnavailableAgents(maxUnavailable, agents) - agentsUnavailable
	byIndexDesc(staleAgents)
	for i := 0; i < len(staleAgents) && i < budget; i++ {
		kills = append(kills, staleAgents[i].Name)
	}
	return kills
}

// maxUnavailableAgents resolves rollout.maxUnavailable against the agent count; a
// percentage rounds down but never to zero, so a rollout always moves.
func maxUnavailableAgents(v *intstr.IntOrString, agents int) int {
	if v == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, agents, false)
	if err != nil || n < 1 {
		return 1
	}
	return n
}
