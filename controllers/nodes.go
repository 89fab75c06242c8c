package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// The workload cluster's Nodes follow the agent tasks. An agent leaving for good (a
// scale-down) is cordoned and drained before its task is killed, as `kubectl drain` does:
// its pods are evicted (PodDisruptionBudgets respected) and rescheduled elsewhere while the
// node still runs them. Once no task of an agent runs, its Node goes, with the password
// K3s keeps for it: an agent's data lives in its sandbox, so a relaunched agent is a new
// machine under the old name, which K3s refuses while the old password stands, and whose
// kubelet port K3s's tunnel would take from the stale Node.
const (
	// drainTimeout bounds a drain: pods that cannot be evicted by then (a budget that
	// never allows it, a kubelet that no longer answers) go with the node.
	drainTimeout = 2 * time.Minute
	// drainPoll is how soon a drain is looked at again.
	drainPoll = 2 * time.Second
	// annotationDrainStarted on a Node records when its drain began (RFC 3339), so an
	// operator restart keeps the deadline.
	annotationDrainStarted = "mesosk3s.io/drain-started"
	// annotationMirrorPod marks the kubelet's mirrors of static pods: not evictable.
	annotationMirrorPod = "kubernetes.io/config.mirror"
)

// nodePasswordSecret is where K3s keeps a node's password (kube-system/<node>.node-password.k3s).
func nodePasswordSecret(node string) string { return node + ".node-password.k3s" }

// drainBeforeKill keeps the agent kills whose Node is not drained yet out of kills, and
// drains them. It returns the kills to do now and what it waits for.
func (r *K3sClusterReconciler) drainBeforeKill(ctx context.Context, s *clusterScope, kills []string, known map[string]mesosbridge.ObservedTask, ready readiness) ([]string, string) {
	res := ready.probe
	if res == nil || res.nodes == nil || res.workload == nil {
		// The workload cluster cannot be read: there is nothing to drain through.
		return kills, ""
	}
	now := r.now()
	var out []string
	var waiting, cordoned, timedOut []string
	for _, name := range kills {
		if known[name].Role != roleAgent {
			out = append(out, name)
			continue
		}
		node := nodeName(s.cluster.Name, name)
		if _, exists := res.nodes[node]; !exists {
			out = append(out, name)
			continue
		}
		done, cordonedNow, msg, err := drainNode(ctx, res.workload, node, now)
		if cordonedNow {
			cordoned = append(cordoned, fmt.Sprintf("Node %s cordoned; evicting its pods before %s is killed", node, name))
		}
		switch {
		case err != nil:
			waiting = append(waiting, fmt.Sprintf("draining Node %s: %v", node, err))
		case done:
			if msg != "" {
				timedOut = append(timedOut, fmt.Sprintf("Node %s: %s", node, msg))
			}
			out = append(out, name)
		default:
			waiting = append(waiting, fmt.Sprintf("draining Node %s before its agent goes: %s", node, msg))
		}
	}
	r.eventEach(s.cluster, corev1.EventTypeNormal, "NodeDraining", "Drain", cordoned)
	r.eventEach(s.cluster, corev1.EventTypeWarning, "DrainTimedOut", "Drain", timedOut)
	return out, strings.Join(waiting, "; ")
}

// drainNode cordons the Node (cordoned says it did now) and evicts its pods. It is done
// when no evictable pod is left, or when drainTimeout has passed since the drain began (msg
// then says what stayed).
func drainNode(ctx context.Context, c kubernetes.Interface, node string, now time.Time) (done, cordoned bool, msg string, err error) {
	n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, false, "", nil
	}
	if err != nil {
		return false, false, "", err
	}
	started, ok := parseTime(n.Annotations[annotationDrainStarted])
	if !n.Spec.Unschedulable || !ok {
		started = now
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{annotationDrainStarted: now.UTC().Format(time.RFC3339)}},
			"spec":     map[string]any{"unschedulable": true},
		})
		if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return false, false, "", fmt.Errorf("cordoning: %w", err)
		}
		cordoned = true
	}
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return false, cordoned, "", err
	}
	var left []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if !evictable(p) {
			continue
		}
		left = append(left, p.Namespace+"/"+p.Name)
		if p.DeletionTimestamp != nil {
			continue // evicted, terminating
		}
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := c.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsTooManyRequests(err) {
			return false, cordoned, "", fmt.Errorf("evicting %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	sort.Strings(left)
	if len(left) == 0 {
		return true, cordoned, "", nil
	}
	if now.Sub(started) >= drainTimeout {
		return true, cordoned, fmt.Sprintf("pods %v not evicted within %s; the node goes with them", left, drainTimeout), nil
	}
	return false, cordoned, fmt.Sprintf("%d pods to evict (%s)", len(left), strings.Join(left, ", ")), nil
}

// evictable: a pod a drain must move (not a mirror pod, not a DaemonSet's, not finished).
func evictable(p *corev1.Pod) bool {
	if _, mirror := p.Annotations[annotationMirrorPod]; mirror {
		return false
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" && o.Controller != nil && *o.Controller {
			return false
		}
	}
	return true
}

// removeAgentNodes deletes the Nodes of this cluster's agents that no task runs for: those
// scaled away, and those whose task ended and waits for its relaunch. It returns what it
// could not remove.
func (r *K3sClusterReconciler) removeAgentNodes(ctx context.Context, s *clusterScope, known map[string]mesosbridge.ObservedTask, ready readiness) string {
	res := ready.probe
	if res == nil || res.nodes == nil || res.workload == nil {
		return ""
	}
	var problems, removed []string
	for _, node := range slices.Sorted(maps.Keys(res.nodes)) {
		task, ok := agentTaskOfNode(s.cluster.Name, node)
		if !ok {
			continue
		}
		if o, ok := known[task]; taskLive(o, ok) {
			continue
		}
		if err := removeNode(ctx, res.workload, node); err != nil {
			problems = append(problems, fmt.Sprintf("removing Node %s: %v", node, err))
			continue
		}
		removed = append(removed, fmt.Sprintf("Node %s removed: no task of %s runs", node, task))
	}
	r.eventEach(s.cluster, corev1.EventTypeNormal, "NodeRemoved", "RemoveNode", removed)
	return strings.Join(problems, "; ")
}

// removeNode deletes a Node and K3s's password for it.
func removeNode(ctx context.Context, c kubernetes.Interface, node string) error {
	if err := c.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	err := c.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, nodePasswordSecret(node), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// agentTaskOfNode is the agent task a Node of the cluster belongs to ("<cluster>-agent-<i>").
func agentTaskOfNode(cluster, node string) (string, bool) {
	task, ok := strings.CutPrefix(node, cluster+"-")
	if !ok {
		return "", false
	}
	role, _, ok := mesosbridge.ParseTaskName(task)
	return task, ok && role == roleAgent
}

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}
