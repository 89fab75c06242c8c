package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// deleteRetry is how often a delete that waits for Mesos is retried.
const deleteRetry = 2 * time.Second

// reconcileDelete kills every task, waits (bounded, in the bridge) for terminal states,
// tears the framework down, removes the Secrets and then the finalizer. If Mesos cannot
// be reached the condition says so and the delete is retried; the force-delete annotation
// lets a person give up on Mesos.
func (r *K3sClusterReconciler) reconcileDelete(ctx context.Context, s *clusterScope) (ctrl.Result, error) {
	c := s.cluster
	s.obs.datastoreType = c.Spec.Datastore.Type
	_, force := c.Annotations[v1alpha1.ForceDeleteAnnotation]
	r.Probes.Forget(s.key())

	done, teardownErr := r.teardown(ctx, s)
	switch {
	case teardownErr == nil && !done:
		return ctrl.Result{RequeueAfter: deleteRetry}, nil
	case teardownErr != nil && !force:
		s.obs.connectionErr = &conditionProblem{v1alpha1.ReasonMesosUnreachable, fmt.Sprintf(
			"cannot tear the Mesos framework down: %v; retrying. To give up on Mesos (its tasks may keep running), annotate the cluster with %s=true",
			teardownErr, v1alpha1.ForceDeleteAnnotation)}
		return ctrl.Result{RequeueAfter: deleteRetry}, nil
	case teardownErr != nil && force:
		// The bridge goes on with the teardown it was asked for (it never launches for
		// the cluster again): when the master answers, the tasks are killed and the
		// framework torn down, while this operator runs.
		r.event(c, corev1.EventTypeWarning, "ForceDeleted", "Delete", "gave up on Mesos (%v) because of %s; tasks of framework %s may still run", teardownErr, v1alpha1.ForceDeleteAnnotation, c.Status.FrameworkID)
	default:
		r.event(c, corev1.EventTypeNormal, "FrameworkTornDown", "Delete", "killed every task and tore down Mesos framework %s", c.Status.FrameworkID)
	}

	if err := r.deleteOwnedSecrets(ctx, c); err != nil {
		return ctrl.Result{}, err
	}
	patch := client.MergeFrom(c.DeepCopy())
	controllerutil.RemoveFinalizer(c, v1alpha1.Finalizer)
	return ctrl.Result{}, r.Patch(ctx, c, patch)
}

// teardown asks the bridge to end the framework. The bridge takes the whole config, so
// after an operator restart it re-subscribes with the stored framework ID to find the
// tasks; a cluster whose Mesos config cannot even be built never reached Mesos unless it
// has a framework ID.
func (r *K3sClusterReconciler) teardown(ctx context.Context, s *clusterScope) (bool, error) {
	c := s.cluster
	cfg, problem, err := r.frameworkConfig(ctx, c)
	if err != nil {
		return false, err
	}
	if problem != nil {
		if c.Status.FrameworkID == "" {
			return true, nil
		}
		// The Secrets the config comes from may be gone with the namespace being deleted:
		// the bridge still has what it connected with.
		if running, ok := r.Bridge.Config(s.key()); ok && running.FrameworkID != "" {
			return r.Bridge.Teardown(ctx, running)
		}
		return false, errors.New(problem.message)
	}
	return r.Bridge.Teardown(ctx, cfg)
}
