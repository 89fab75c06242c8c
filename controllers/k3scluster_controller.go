package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// K3sClusterReconciler makes K3sClusters real on Mesos and reports what it observed.
type K3sClusterReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Bridge   Bridge
	// DefaultMesosMaster is used when spec.mesos.master is empty (--mesos-master).
	DefaultMesosMaster string
	// Probes run the operator's own checks of each cluster (probe.go); nil starts the
	// HTTP checks with the manager.
	Probes HealthProber
	// Now is the clock (tests move it); nil means time.Now.
	Now func() time.Time
	// MaxConcurrentReconciles bounds the clusters reconciled in parallel.
	MaxConcurrentReconciles int
	// APIReader reads the cluster at the start of each pass from the API server, not the
	// cache: a pass right after another (a Mesos event) must see the status that pass
	// wrote, or a failure count, a restart count or a framework ID would go back. Nil
	// takes the manager's (SetupWithManager), or the Client.
	APIReader client.Reader

	// announcedRemovals holds, per cluster, the removed framework ID already announced:
	// the next pass may read a status from the cache that still carries it.
	announcedRemovals sync.Map
}

func (r *K3sClusterReconciler) reader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

func (r *K3sClusterReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager watches K3sClusters, their Secrets and the bridge's events.
func (r *K3sClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	requeue := &requeueSource{}
	if r.Probes == nil {
		probes := newHTTPProbes(context.Background(), requeue.Enqueue)
		if err := mgr.Add(probes); err != nil {
			return err
		}
		r.Probes = probes
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.K3sCluster{}).
		Owns(&corev1.Secret{}).
		WatchesRawSource(bridgeSource{events: r.Bridge.Events()}).
		WatchesRawSource(requeue).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("k3scluster").
		Complete(r)
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete

// Reconcile is the one skeleton every pass follows: get → finalizer → paused → scope →
// deferred status patch → reconcileDelete or reconcile.
func (r *K3sClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	cluster := &v1alpha1.K3sCluster{}
	if err := r.reader().Get(ctx, req.NamespacedName, cluster); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	// The finalizer goes on before anything exists on Mesos, so nothing can be orphaned.
	// The pass then goes on, so every condition is set by the first reconcile.
	if cluster.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(cluster, v1alpha1.Finalizer) {
		patch := client.MergeFrom(cluster.DeepCopy())
		controllerutil.AddFinalizer(cluster, v1alpha1.Finalizer)
		if err := r.Patch(ctx, cluster, patch); err != nil {
			return ctrl.Result{}, err
		}
	}

	// A delete goes ahead even while paused: pausing stops the operator changing a
	// cluster, not a person removing it.
	if isPaused(cluster) && cluster.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcilePaused(ctx, cluster)
	}

	scope := newScope(cluster, log)
	defer func() {
		if err := r.patchStatus(ctx, scope, retErr == nil); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()

	if !cluster.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, scope)
	}
	return r.reconcile(ctx, scope)
}

func isPaused(c *v1alpha1.K3sCluster) bool {
	_, annotated := c.Annotations[v1alpha1.PausedAnnotation]
	return c.Spec.Paused || annotated
}

// reconcilePaused records the Paused condition and touches nothing else on Kubernetes.
// On Mesos it withdraws the cluster's pending launches from the bridge once (an Ensure
// with nothing desired: the bridge suppresses offers), so no task is launched or killed
// until the pause ends; running tasks keep running.
func (r *K3sClusterReconciler) reconcilePaused(ctx context.Context, c *v1alpha1.K3sCluster) error {
	if obs, known := r.Bridge.Observe(clusterKey(c)); known && c.Status.FrameworkID != "" && obs.FrameworkID == c.Status.FrameworkID {
		if cfg, problem, err := r.frameworkConfig(ctx, c); err == nil && problem == nil {
			if _, err := r.Bridge.Ensure(ctx, cfg, nil, knownTasks(c.Status.Tasks)); err != nil {
				return err
			}
		}
	}
	before := c.DeepCopy()
	if !meta.SetStatusCondition(&c.Status.Conditions, withGeneration(pausedCondition(true), c.Generation)) {
		return nil
	}
	return r.Status().Patch(ctx, c, client.MergeFrom(before))
}

// patchStatus writes the pass's status in one patch. observedGeneration moves only when
// the pass succeeded, so it means "the operator acted on this generation".
func (r *K3sClusterReconciler) patchStatus(ctx context.Context, s *clusterScope, succeeded bool) error {
	c := s.cluster
	if succeeded {
		c.Status.ObservedGeneration = c.Generation
	}
	conds, ph := conditions(s.obs)
	conds = append(conds, pausedCondition(false))
	if !c.DeletionTimestamp.IsZero() {
		ph = v1alpha1.PhaseDeleting
		conds = append(conds, condition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleting, "the cluster is being deleted"))
	}
	for _, cond := range conds {
		meta.SetStatusCondition(&c.Status.Conditions, withGeneration(cond, c.Generation))
	}
	c.Status.Phase = ph
	return r.Status().Patch(ctx, c, client.MergeFrom(s.original))
}

func withGeneration(c metav1.Condition, gen int64) metav1.Condition {
	c.ObservedGeneration = gen
	return c
}
