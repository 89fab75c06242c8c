package main

import ctrl "sigs.k8s.io/controller-runtime"

// setupControllers registers the operator's controllers with the manager. The K3sCluster
// reconciler arrives with the controller issue; until then the manager serves only its
// probes and metrics.
func setupControllers(_ ctrl.Manager, _ options) error { return nil }
