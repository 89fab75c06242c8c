package controllers

import (
	"context"
	"testing"

	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// A reconcile that still runs while the manager stops may ask to watch a cluster: once
// the probes' Start has returned, Watch starts no worker (one would leak, and its wg.Add
// would race Start's wg.Wait).
func TestProbesStartNoWorkerAfterStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := newHTTPProbes(context.Background(), func(mesosbridge.ClusterKey) {})
	done := make(chan error)
	go func() { done <- p.Start(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	key := mesosbridge.ClusterKey{Namespace: "default", Name: "late"}
	p.Watch(probeTarget{key: key})
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.workers) != 0 {
		t.Fatalf("a worker was started after Stop: %v", p.workers)
	}
}
