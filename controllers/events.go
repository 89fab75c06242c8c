package controllers

import (
	"strings"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// event records a Kubernetes event on the cluster when a recorder is configured.
func (r *K3sClusterReconciler) event(c *v1alpha1.K3sCluster, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(c, nil, typ, reason, action, note, args...)
	}
}

// eventEach records one event for several things of the same kind that happened in one
// pass, their notes joined. One each would lose all but the first: the events API's
// recorder (k8s.io/client-go/tools/events, getKey) folds events with the same reason,
// action and regarding object into a series of the first one, whatever their notes say.
func (r *K3sClusterReconciler) eventEach(c *v1alpha1.K3sCluster, typ, reason, action string, notes []string) {
	if len(notes) > 0 {
		r.event(c, typ, reason, action, "%s", strings.Join(notes, "; "))
	}
}
