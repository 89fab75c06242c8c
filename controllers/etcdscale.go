package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// etcdScaleDown narrows a scale-down to what embedded etcd allows: one server per pass,
// its etcd member removed before its task is killed, and only while every member is
// healthy and the quorum survives the step. Servers run without a kubelet
// (--disable-agent), so K3s itself, which removes the member of a deleted Node, never
// removes the member of a server that went: killing servers without this would leave
// dead members behind, and a 3 → 1 scale-down would leave one live member of three, no
// quorum, and a dead control plane. Other kills pass through.
func (r *K3sClusterReconciler) etcdScaleDown(ctx context.Context, s *clusterScope, kills []string, known map[string]mesosbridge.ObservedTask, ready readiness) ([]string, string) {
	var servers, out []string
	for _, name := range kills {
		if role, _, _ := mesosbridge.ParseTaskName(name); role == roleServer {
			servers = append(servers, name)
		} else {
			out = append(out, name)
		}
	}
	if len(servers) == 0 {
		return kills, ""
	}
	victim, wait := etcdScaleDownStep(servers[0], known, ready)
	if victim == "" {
		return out, wait
	}
	if ready.probe != nil && ready.probe.etcd != nil {
		if ready.probe.etcd.leader == victim {
			if moved, err := r.Probes.MoveEtcdLeader(ctx, s.key(), victim); err == nil && moved {
				r.event(s.cluster, corev1.EventTypeNormal, "EtcdLeaderMoved", "ScaleDown", "moved etcd leadership from %s to another member before removing it", victim)
				return out, fmt.Sprintf("moved etcd leadership away from %s before removing it", victim)
			}
		}
		if err := r.Probes.RemoveEtcdMember(ctx, s.key(), victim); err != nil {
			return out, fmt.Sprintf("removing the etcd member of %s before it stops: %v", victim, err)
		}
		r.event(s.cluster, corev1.EventTypeNormal, "EtcdMemberRemoved", "ScaleDown", "removed the etcd member of %s; stopping it", victim)
	}
	return append(out, victim), ""
}

// etcdScaleDownStep says whether server victim may leave now, and if not, why. Without
// the operator's view of etcd (no checks reach the cluster) the step goes ahead one server
// at a time, as Mesos alone allows.
func etcdScaleDownStep(victim string, known map[string]mesosbridge.ObservedTask, ready readiness) (string, string) {
	for name, t := range known {
		if t.Role == roleServer && t.State == mesosbridge.TaskKilling {
			return "", fmt.Sprintf("server scale-down: waiting for %s to stop before the next server leaves", name)
		}
	}
	if ready.probe == nil || ready.probe.etcd == nil {
		return victim, ""
	}
	e := ready.probe.etcd
	if e.problem != "" {
		return "", fmt.Sprintf("server scale-down of %s waits: etcd membership is unknown (%s)", victim, e.problem)
	}
	healthy := 0
	for task := range e.memberOf {
		if ready.probe.servers[task].etcdHealthy {
			healthy++
		}
	}
	members := len(e.members)
	if healthy < members {
		return "", fmt.Sprintf("server scale-down of %s waits for every etcd member to be healthy (%d of %d: %v)", victim, healthy, members, e.members)
	}
	_, isMember := e.memberOf[victim]
	after := members
	if isMember {
		after--
	}
	if after < 1 || healthy-btoi(isMember) < after/2+1 {
		return "", fmt.Sprintf("removing %s would leave etcd without a quorum (%d healthy of %d members)", victim, healthy, members)
	}
	return victim, ""
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// removeEtcdMember asks a healthy member other than task's to remove task's member (etcd's
// MemberRemove, POST /v3/cluster/member/remove). A task without a member has nothing to
// remove.
func (w *probeWorker) removeEtcdMember(ctx context.Context, task string) error {
	w.mu.Lock()
	t, last := w.target, w.last
	w.mu.Unlock()
	if t.etcd == nil || last == nil || last.etcd == nil {
		return nil
	}
	if last.etcd.problem != "" {
		return fmt.Errorf("etcd membership is unknown: %s", last.etcd.problem)
	}
	id, ok := last.etcd.memberOf[task]
	if !ok {
		// A server that no longer runs (its agent is gone): its member is found by name.
		for _, m := range last.etcd.listed {
			if strings.HasPrefix(m.Name, nodeName(t.key.Name, task)+"-") {
				id, ok = m.ID, true
			}
		}
	}
	if !ok {
		return nil
	}
	var via string
	for _, other := range slices.Sorted(maps.Keys(last.etcd.memberOf)) {
		if other != task && last.servers[other].etcdHealthy {
			via = other
			break
		}
	}
	if via == "" {
		return fmt.Errorf("no other healthy etcd member to ask")
	}
	c, err := w.etcdClient(t, time.Now())
	if err != nil {
		return err
	}
	base, err := etcdURL(t.servers[via].url)
	if err != nil {
		return err
	}
	var answer struct{}
	if err := etcdPostBody(ctx, c, base+"/v3/cluster/member/remove", `{"ID":"`+id+`"}`, 2*w.probes.timeout, &answer); err != nil {
		return err
	}
	w.forgetMember(task)
	return nil
}

// forgetMember drops task's member from the last result, so nothing relies on it before
// the next round has listed the members again.
func (w *probeWorker) forgetMember(task string) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil || w.last.etcd == nil {
		return
	}
	e := *w.last.etcd
	e.memberOf = maps.Clone(e.memberOf)
	delete(e.memberOf, task)
	e.problem = "a member was just removed; listing the members again"
	res := *w.last
	res.etcd = &e
	w.last = &res
}

// RemoveEtcdMember removes the etcd member of server task of the cluster before its task
// is killed by a scale-down (see removeEtcdMember).
func (p *httpProbes) RemoveEtcdMember(ctx context.Context, key mesosbridge.ClusterKey, task string) error {
	p.mu.Lock()
	w := p.workers[key]
	p.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.removeEtcdMember(ctx, task)
}
