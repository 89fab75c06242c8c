package mesosbridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Manager is the Bridge: one framework, with its own event loop, per cluster. It is a
// controller-runtime Runnable (mgr.Add(bridge)); the loops run until Start's context
// ends or Stop is called.
type Manager struct {
	opts     Options
	metrics  *metrics
	notifier *notifier

	ctx    context.Context // parent of every framework loop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	clusters map[ClusterKey]*cluster
	// tornDown are the framework IDs this bridge tore down, so that a repeated Teardown
	// (say, the finalizer update conflicted) is done at once instead of resubscribing.
	tornDown map[string]bool
	stopped  bool
	// claims keeps host-exclusive tasks of different clusters apart.
	claims *hostClaims

	// decided, when set before the first Ensure, observes each offer round's
	// OFFERS-to-ACCEPT latency (the benchmark reads it).
	decided func(time.Duration)
}

var _ Bridge = (*Manager)(nil)

// ErrStopped is returned by the Bridge methods once the Manager has stopped.
var ErrStopped = errors.New("mesos bridge stopped")

// New returns a Manager with its metrics registered on opts.Metrics.
func New(opts Options) (*Manager, error) {
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("registering mesos bridge metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Manager{
		opts: opts, metrics: m, notifier: newNotifier(),
		ctx: ctx, cancel: cancel, clusters: map[ClusterKey]*cluster{}, tornDown: map[string]bool{},
	}
	b.claims = &hostClaims{m: b}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.notifier.run(ctx)
	}()
	return b, nil
}

// Start blocks until ctx ends, then stops every framework loop (manager.Runnable). The
// frameworks are not torn down: Mesos keeps their tasks for the failover timeout and
// the next operator resubscribes.
func (m *Manager) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-m.ctx.Done():
	}
	m.Stop()
	return nil
}

// NeedLeaderElection: only the elected operator replica may drive the frameworks, or
// two replicas would fail each other's subscriptions over.
func (m *Manager) NeedLeaderElection() bool { return true }

// Stop ends every framework loop and waits for all the bridge's goroutines.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// Events implements Bridge.
func (m *Manager) Events() <-chan ClusterKey { return m.notifier.out }

// lookup is the cluster's state, nil when the bridge does not know the cluster.
func (m *Manager) lookup(key ClusterKey) *cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clusters[key]
}

// Observe returns what the bridge knows of a cluster, without changing anything.
func (m *Manager) Observe(key ClusterKey) (Observed, bool) {
	c := m.lookup(key)
	if c == nil {
		return Observed{}, false
	}
	return c.observed(), true
}

// Ensure implements Bridge.
func (m *Manager) Ensure(_ context.Context, cfg FrameworkConfig, desired []TaskSpec, known []ObservedTask) (Observed, error) {
	if err := cfg.Validate(); err != nil {
		return Observed{}, fmt.Errorf("framework config: %w", err)
	}
	c, err := m.clusterFor(cfg, true)
	if err != nil {
		return Observed{}, err
	}
	c.mu.Lock()
	tearingDown := c.teardown.requested
	c.mu.Unlock()
	if tearingDown {
		return c.observed(), fmt.Errorf("cluster %s is being torn down", cfg.Key())
	}
	obs := c.update(cfg, desired, known)
	c.poke()
	return obs, nil
}

// Kill implements Bridge.
func (m *Manager) Kill(_ context.Context, key ClusterKey, names ...string) error {
	m.mu.Lock()
	c, stopped := m.clusters[key], m.stopped
	m.mu.Unlock()
	if stopped {
		return ErrStopped
	}
	if c == nil {
		return fmt.Errorf("cluster %s has no framework in the bridge (Ensure it first)", key)
	}
	c.requestKill(names...)
	return nil
}

// Teardown implements Bridge.
func (m *Manager) Teardown(_ context.Context, cfg FrameworkConfig) (bool, error) {
	key := cfg.Key()
	m.mu.Lock()
	c, stopped := m.clusters[key], m.stopped
	m.mu.Unlock()
	if stopped {
		return false, ErrStopped
	}
	if c == nil {
		if cfg.FrameworkID == "" || m.wasTornDown(cfg.FrameworkID) {
			return true, nil // never subscribed by this bridge, nothing persisted: nothing on Mesos
		}
		if err := cfg.Validate(); err != nil {
			return false, fmt.Errorf("framework config: %w", err)
		}
		var err error
		if c, err = m.clusterFor(cfg, false); err != nil {
			return false, err
		}
	}
	done, err := c.requestTeardown(cfg)
	if !done {
		return false, err
	}
	<-c.done // the loop has ended: nothing of the framework is left behind
	frameworkID := c.observed().FrameworkID
	m.mu.Lock()
	if m.clusters[key] == c {
		delete(m.clusters, key)
	}
	if frameworkID != "" {
		m.tornDown[frameworkID] = true
	}
	m.mu.Unlock()
	return true, nil
}

// Config is the framework config the bridge runs the cluster with: what it subscribed
// with, credentials included, even once the Secrets it came from are gone.
func (m *Manager) Config(key ClusterKey) (FrameworkConfig, bool) {
	c := m.lookup(key)
	if c == nil {
		return FrameworkConfig{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg, true
}

func (m *Manager) wasTornDown(frameworkID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tornDown[frameworkID]
}

// clusterFor returns the cluster's state, creating it and starting its loop if needed;
// a cluster whose teardown finished is replaced when ensure asks for it again.
func (m *Manager) clusterFor(cfg FrameworkConfig, ensure bool) (*cluster, error) {
	key := cfg.Key()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, ErrStopped
	}
	if c := m.clusters[key]; c != nil {
		c.mu.Lock()
		finished := c.teardown.done
		c.mu.Unlock()
		if !finished || !ensure {
			return c, nil
		}
		<-c.done
	}
	c := newCluster(key, m.opts, m.metrics, m.notifier.notify)
	c.decided = m.decided
	c.exclusiveHosts = m.claims
	c.mu.Lock()
	c.applyConfigLocked(cfg)
	c.mu.Unlock()
	m.clusters[key] = c
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		c.run(m.ctx)
	}()
	return c, nil
}
