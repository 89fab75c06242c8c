package controllers

import "github.com/mesosk3s/mesosk3s/api/v1alpha1"

// event records a Kubernetes event on the cluster when a recorder is configured.
func (r *K3sClusterReconciler) event(c *v1alpha1.K3sCluster, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(c, nil, typ, reason, action, note, args...)
	}
}
