package controllers

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// rollout is what a pass of a rolling update does: the out-of-date tasks (spec hash
// differs from the current spec's, e.g. after a change of spec.version) to replace now,
// and the step it is at, for the status.
type rollout struct {
	kills []string
	// step names where the rollout is ("server-1 of 3 updated; waiting for etcd: ..."),
	// empty when every task is up to date.
	step string
}

// planRollout picks the out-of-date tasks to replace now. Servers go first, one at a
// time, each only while every server serves and, with embedded etcd, etcd has all its
// members and every one is healthy, so the control plane never loses two members. Agents
// follow once every server is updated and serving (an agent never runs a newer K3s than
// the servers), up to maxUnavailable at once, counting the agents already down; each is
// drained before its kill (drainBeforeKill). The bridge relaunches a killed task that is
// still desired with the new spec once it is terminal.
func planRollout(desired []mesosbridge.TaskSpec, observed map[string]mesosbridge.ObservedTask, maxUnavailable *intstr.IntOrString, r readiness) rollout {
	var staleServers, staleAgents []mesosbridge.ObservedTask
	var notServing string
	servers, agents, agentsUnavailable := 0, 0, 0
	for _, t := range desired {
		o, ok := observed[t.Name]
		ready := ok && r.serves(o)
		switch t.Role {
		case roleServer:
			servers++
			if !ready && notServing == "" {
				notServing = t.Name
			}
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
	if len(staleServers) == 0 && len(staleAgents) == 0 {
		return rollout{}
	}
	byIndexDesc := func(ts []mesosbridge.ObservedTask) {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Index > ts[j].Index })
	}
	serverStep := fmt.Sprintf("%d of %d servers updated", servers-len(staleServers), servers)
	etcdOK, etcdWhy := r.etcdComplete(servers)
	switch {
	case len(staleServers) > 0 && notServing != "":
		return rollout{step: serverStep + "; waiting for " + notServing + " to serve"}
	case len(staleServers) > 0 && !etcdOK:
		return rollout{step: serverStep + "; waiting for etcd: " + etcdWhy}
	case len(staleServers) > 0:
		byIndexDesc(staleServers)
		next := staleServers[0].Name
		return rollout{kills: []string{next}, step: serverStep + "; replacing " + next}
	case notServing != "":
		return rollout{step: "servers updated; waiting for " + notServing + " to serve before the agents"}
	}
	agentStep := fmt.Sprintf("servers updated, %d of %d agents updated", agents-len(staleAgents), agents)
	budget := maxUnavailableAgents(maxUnavailable, agents) - agentsUnavailable
	byIndexDesc(staleAgents)
	var kills []string
	for i := 0; i < len(staleAgents) && i < budget; i++ {
		kills = append(kills, staleAgents[i].Name)
	}
	if len(kills) == 0 {
		return rollout{step: fmt.Sprintf("%s; waiting: %d agents unavailable, maxUnavailable %d", agentStep, agentsUnavailable, maxUnavailableAgents(maxUnavailable, agents))}
	}
	return rollout{kills: kills, step: fmt.Sprintf("%s; draining and replacing %v", agentStep, kills)}
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

// etcdLeaderFirst holds back the kill of a server whose etcd member leads and moves the
// leadership to another member first: the next pass replaces it without an election, so
// the remaining servers' API keeps answering. If leadership cannot be moved, the server
// is replaced anyway (etcd elects a new leader, as when a server fails).
func (r *K3sClusterReconciler) etcdLeaderFirst(ctx context.Context, s *clusterScope, roll rollout) rollout {
	for i, name := range roll.kills {
		role, _, _ := mesosbridge.ParseTaskName(name)
		if role != roleServer {
			continue
		}
		moved, err := r.Probes.MoveEtcdLeader(ctx, s.key(), name)
		switch {
		case err != nil:
			s.log.Info("could not move etcd leadership before replacing the server; replacing it anyway", "server", name, "error", err.Error())
		case moved:
			roll.kills = append(roll.kills[:i:i], roll.kills[i+1:]...)
			roll.step += "; moved etcd leadership away from " + name + " first"
			r.event(s.cluster, corev1.EventTypeNormal, "EtcdLeaderMoved", "Rollout", "moved etcd leadership from %s to another member before replacing it", name)
			return roll
		}
	}
	return roll
}
