package controllers

import (
	"github.com/go-logr/logr"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// clusterScope carries one reconcile pass: the object as read (for the status patch),
// the object being changed, and what the pass observed.
type clusterScope struct {
	cluster  *v1alpha1.K3sCluster
	original *v1alpha1.K3sCluster
	log      logr.Logger

	// framework is the Mesos framework configuration derived from the spec.
	framework mesosbridge.FrameworkConfig
	// observed is the bridge's view, refreshed by the pass.
	observed mesosbridge.Observed
	// pki is the cluster's CAs once loaded or created.
	pki *clusterPKI
	// token is the K3s server token; agentToken what agents join with.
	token, agentToken string

	obs observation
}

func newScope(c *v1alpha1.K3sCluster, log logr.Logger) *clusterScope {
	return &clusterScope{cluster: c, original: c.DeepCopy(), log: log}
}

func (s *clusterScope) key() mesosbridge.ClusterKey { return clusterKey(s.cluster) }

func clusterKey(c *v1alpha1.K3sCluster) mesosbridge.ClusterKey {
	return mesosbridge.ClusterKey{Namespace: c.Namespace, Name: c.Name}
}

// Names of the Secrets the operator owns for a cluster.
func kubeconfigSecretName(cluster string) string { return cluster + "-kubeconfig" }
func caSecretName(cluster string) string         { return cluster + "-ca" }
func tokenSecretName(cluster string) string      { return cluster + "-token" }
