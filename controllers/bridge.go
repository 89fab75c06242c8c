package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// Bridge is what the reconciler needs of Mesos: the scheduler bridge's interface plus a
// cheap look at what it observed, so that a pass decides on the newest task states
// (a failure must be counted before the task is offered for relaunch).
type Bridge interface {
	mesosbridge.Bridge
	// Observe returns the bridge's current view of a cluster; false when the bridge has
	// not seen the cluster since it started.
	Observe(cluster mesosbridge.ClusterKey) (mesosbridge.Observed, bool)
	// Config is the framework config the bridge runs the cluster with, credentials
	// included: a delete can tear the framework down after its Secrets went (a namespace
	// being deleted takes them with the cluster).
	Config(cluster mesosbridge.ClusterKey) (mesosbridge.FrameworkConfig, bool)
}

// bridgeSource turns the bridge's "this cluster changed" events into reconcile requests,
// so reconciles follow Mesos events instead of polling.
type bridgeSource struct {
	events <-chan mesosbridge.ClusterKey
}

var _ source.Source = bridgeSource{}

// Start forwards events until ctx ends. The workqueue collapses bursts for one cluster
// into a single reconcile.
func (s bridgeSource) Start(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case key, ok := <-s.events:
				if !ok {
					return
				}
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: key.Namespace, Name: key.Name}})
			}
		}
	}()
	return nil
}

// requeueSource is a source whose Enqueue reconciles a cluster: the operator's own checks
// (probe.go) requeue a cluster through it when their result changes.
type requeueSource struct {
	mu sync.Mutex
	q  workqueue.TypedRateLimitingInterface[reconcile.Request]
}

var _ source.Source = (*requeueSource)(nil)

func (s *requeueSource) Start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q = q
	return nil
}

// Enqueue requeues the cluster; before the controller started there is nothing to requeue.
func (s *requeueSource) Enqueue(key mesosbridge.ClusterKey) {
	s.mu.Lock()
	q := s.q
	s.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: key.Namespace, Name: key.Name}})
	}
}
