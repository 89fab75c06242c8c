package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// tracker watches the K3sClusters of the namespace and keeps the newest of each, with
// when each was first seen ready: a watch gives the moment a status changed without
// polling a list of 100 clusters and their tasks.
type tracker struct {
	c  client.WithWatch
	ns string

	mu      sync.Mutex
	objs    map[string]*v1alpha1.K3sCluster
	ready   map[string]time.Time // Ready=True (servers serve, kubeconfig written)
	full    map[string]time.Time // fullyReady: Ready, AgentsReady, every agent ready, generation current
	changed chan struct{}
}

func newTracker(c client.WithWatch, ns string) *tracker {
	return &tracker{c: c, ns: ns, objs: map[string]*v1alpha1.K3sCluster{},
		ready: map[string]time.Time{}, full: map[string]time.Time{}, changed: make(chan struct{})}
}

func condTrue(c *v1alpha1.K3sCluster, t string) bool {
	cond := meta.FindStatusCondition(c.Status.Conditions, t)
	return cond != nil && cond.Status == metav1.ConditionTrue
}

// fullyReady: Ready and AgentsReady at the current generation with every agent ready.
func fullyReady(c *v1alpha1.K3sCluster) bool {
	return c.Status.ObservedGeneration == c.Generation && condTrue(c, v1alpha1.ConditionReady) &&
		condTrue(c, v1alpha1.ConditionAgentsReady) && c.Status.Agents.ReadyReplicas == c.Spec.Agents.Replicas
}

// run lists and watches until ctx ends, listing again whenever the watch ends.
func (t *tracker) run(ctx context.Context) {
	for ctx.Err() == nil {
		list := &v1alpha1.K3sClusterList{}
		if err := t.c.List(ctx, list, client.InNamespace(t.ns)); err != nil {
			time.Sleep(time.Second)
			continue
		}
		for i := range list.Items {
			t.update(&list.Items[i])
		}
		w, err := t.c.Watch(ctx, &v1alpha1.K3sClusterList{}, client.InNamespace(t.ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			c, ok := ev.Object.(*v1alpha1.K3sCluster)
			if !ok {
				continue
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				t.update(c)
			case watch.Deleted:
				t.mu.Lock()
				delete(t.objs, c.Name)
				t.notifyLocked()
				t.mu.Unlock()
			}
		}
		w.Stop()
	}
}

func (t *tracker) update(c *v1alpha1.K3sCluster) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.objs[c.Name] = c
	if _, ok := t.ready[c.Name]; !ok && condTrue(c, v1alpha1.ConditionReady) {
		t.ready[c.Name] = now
	}
	if _, ok := t.full[c.Name]; !ok && fullyReady(c) {
		t.full[c.Name] = now
	}
	t.notifyLocked()
}

func (t *tracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *tracker) get(name string) *v1alpha1.K3sCluster {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.objs[name]
}

func (t *tracker) readyTimes() (ready, full map[string]time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ready, full = map[string]time.Time{}, map[string]time.Time{}
	for k, v := range t.ready {
		ready[k] = v
	}
	for k, v := range t.full {
		full[k] = v
	}
	return ready, full
}

// waitFor waits until cond holds for the tracked objects (or ctx ends, or timeout passes;
// progress is then what cond said last).
func (t *tracker) waitFor(ctx context.Context, timeout time.Duration, cond func(map[string]*v1alpha1.K3sCluster) (bool, string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		ok, progress := cond(t.objs)
		ch := t.changed
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not after %s: %s", timeout, progress)
		}
	}
}
