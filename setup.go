package main

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mesosk3s/mesosk3s/controllers"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// setupControllers starts the Mesos bridge (as a leader-elected runnable: only the
// leader drives the frameworks) and the K3sCluster reconciler on top of it.
func setupControllers(mgr ctrl.Manager, o options) error {
	bridge, err := mesosbridge.New(mesosbridge.Options{
		Logger:  ctrl.Log.WithName("mesosbridge"),
		Metrics: metrics.Registry,
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(bridge); err != nil {
		return fmt.Errorf("adding the Mesos bridge: %w", err)
	}
	r := &controllers.K3sClusterReconciler{
		Client:                  mgr.GetClient(),
		Recorder:                mgr.GetEventRecorder("mesosk3s"),
		Bridge:                  bridge,
		DefaultMesosMaster:      o.mesosMaster,
		MaxConcurrentReconciles: o.maxConcurrentWorkers,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the K3sCluster controller: %w", err)
	}
	return nil
}
