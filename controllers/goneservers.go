package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// goneForGood says the task's agent will never come back, and any persistent volume on
// it is lost: an operator marked the agent gone (TASK_GONE_BY_OPERATOR), or the master
// no longer knows the agent at all (TASK_UNKNOWN to an explicit reconciliation,
// src/master/master.cpp _reconcileTasks cases 5 and 6). A task that is merely
// unreachable may come back and keeps its pin.
func goneForGood(state mesosbridge.TaskState) bool {
	return state == mesosbridge.TaskGoneByOp || state == mesosbridge.TaskUnknown
}

// goneServers are the desired servers whose agent is gone for good, by name.
func goneServers(desired []mesosbridge.TaskSpec, known map[string]mesosbridge.ObservedTask) []string {
	var out []string
	for _, t := range desired {
		if o, ok := known[t.Name]; ok && t.Role == roleServer && goneForGood(o.State) {
			out = append(out, t.Name)
		}
	}
	return out
}

// rejoinURL is where server-0 of embedded etcd joins instead of starting a new etcd
// cluster should its data be gone: another server that has run (so the cluster has
// other members) and whose address is known. Empty while no other server ever ran.
func rejoinURL(c *v1alpha1.K3sCluster, known map[string]mesosbridge.ObservedTask) string {
	if c.Spec.Datastore.Type != v1alpha1.DatastoreEmbeddedEtcd {
		return ""
	}
	var names []string
	for name, o := range known {
		if o.Role == roleServer && name != firstServer {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		o := known[name]
		if taskLive(o, true) && o.Hostname != "" && o.Ports[k3s.PortAPI] != 0 {
			return serverURL(o.Hostname, o.Ports[k3s.PortAPI])
		}
	}
	return ""
}

// replaceGoneServers decides what happens to servers whose agent is gone for good. While
// another server has the cluster's data, each gone one is launched elsewhere (its pin is
// dropped by agentIDs) as a new member, once its old etcd member is removed. When every
// server is gone, the data is gone: nothing is launched and the cluster is Stalled with
// DataLost, unless a person accepted the loss (AcceptDataLossAnnotation). It returns the
// servers to hold back, and why.
func (r *K3sClusterReconciler) replaceGoneServers(ctx context.Context, s *clusterScope, desired []mesosbridge.TaskSpec, known map[string]mesosbridge.ObservedTask) (hold map[string]bool, why string) {
	c := s.cluster
	gone := goneServers(desired, known)
	if len(gone) == 0 {
		return nil, ""
	}
	hold = map[string]bool{}
	servers := 0
	for _, t := range desired {
		if t.Role == roleServer {
			servers++
		}
	}
	if len(gone) == servers {
		if _, accepted := c.Annotations[v1alpha1.AcceptDataLossAnnotation]; !accepted {
			o := known[gone[0]]
			s.obs.dataLost = fmt.Sprintf("the Mesos agent of %s is gone for good (%s: %s), and with it the persistent volume that held the cluster's datastore: the cluster's data is lost. "+
				"Restore a backup into a new cluster, or annotate this one with %s=true to start empty servers with the same CAs and tokens",
				strings.Join(gone, ", "), o.State, o.Message, v1alpha1.AcceptDataLossAnnotation)
			for _, name := range gone {
				hold[name] = true
			}
			return hold, s.obs.dataLost
		}
		r.eventEach(c, corev1.EventTypeWarning, "DataLossAccepted", "Replace", []string{fmt.Sprintf("starting %s empty on new agents: their agents and volumes are gone and %s is set", strings.Join(gone, ", "), v1alpha1.AcceptDataLossAnnotation)})
		return nil, ""
	}
	var replacing, unknown []string
	for _, name := range gone {
		if c.Spec.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd {
			if err := r.Probes.RemoveEtcdMember(ctx, s.key(), name); err != nil {
				hold[name] = true
				if why == "" {
					why = fmt.Sprintf("%s's agent is gone for good; removing its etcd member before a new member replaces it: %v", name, err)
				}
				continue
			}
		}
		if known[name].State == mesosbridge.TaskUnknown {
			unknown = append(unknown, name) // not terminal to Mesos: killing frees the name
		}
		replacing = append(replacing, fmt.Sprintf("%s's agent is gone for good (%s); launching it on another agent as a new member, with an empty volume it fills from the other servers", name, known[name].State))
	}
	if len(unknown) > 0 {
		if err := r.Bridge.Kill(ctx, s.key(), unknown...); err != nil {
			return hold, fmt.Sprintf("abandoning %v on agents the master no longer knows: %v", unknown, err)
		}
	}
	r.eventEach(c, corev1.EventTypeWarning, "ServerReplaced", "Replace", replacing)
	return hold, why
}
