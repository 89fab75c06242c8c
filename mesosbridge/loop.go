package mesosbridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Reasons a subscription ended that are not failures of the connection.
var (
	errConfigChanged = errors.New("framework config changed")
	errTornDown      = errors.New("framework torn down")
)

// heartbeatMissed is the watchdog's verdict: the stream went quiet.
type heartbeatMissed struct {
	quiet, interval time.Duration
	misses          int
}

func (e *heartbeatMissed) Error() string {
	return fmt.Sprintf("no event from the master for %s (%d heartbeat intervals of %s); reconnecting",
		e.quiet.Round(time.Millisecond), e.misses, e.interval)
}

// reconnectReason labels the reconnects metric with why a subscription ended.
func reconnectReason(err error) string {
	var se *subscribeError
	var hb *heartbeatMissed
	var ce *callError
	switch {
	case errors.As(err, &se):
		return strings.ToLower(string(se.reason))
	case errors.As(err, &hb):
		return "heartbeat"
	case errors.As(err, &ce):
		return "call"
	}
	return "stream"
}

// run is the cluster's event loop: subscribe, serve the subscription until it ends,
// back off, again; until the context ends or the framework is torn down. It is the only
// goroutine that talks to Mesos for the cluster, and each subscription's reader
// goroutine ends before the next subscription starts.
func (c *cluster) run(ctx context.Context) {
	defer close(c.done)
	backoff := newBackoffState(c.opts.ReconnectBackoff)
	var tr *transport
	var trGen uint64
	defer func() {
		if tr != nil {
			tr.close()
		}
	}()
	master := 0
	for ctx.Err() == nil {
		if c.teardownWithoutFramework() {
			return
		}
		cfg, gen := c.subscribeConfig()
		if tr == nil || trGen != gen {
			if tr != nil {
				tr.close()
			}
			var err error
			if tr, err = newTransport(cfg, c.opts.HTTPTimeout); err != nil {
				tr = nil
				c.setConn(false, ConnRefused, "TLS configuration: "+err.Error())
				if !c.waitForChange(ctx, gen, time.Hour) {
					return
				}
				continue
			}
			trGen = gen
		}
		sub, idx, err := c.openStream(ctx, tr, cfg, master)
		if err == nil {
			master = idx
			err = c.serve(ctx, tr, sub, gen, backoff)
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errTornDown):
			return
		case errors.Is(err, errConfigChanged):
			c.metrics.reconnects.WithLabelValues("config").Inc()
			continue
		}
		var se *subscribeError
		if errors.As(err, &se) {
			c.setConn(false, se.reason, se.message)
			if se.reason == ConnRefused && c.teardownIfRemoved(se.message) {
				return
			}
			if c.startOverIfRemoved(se.masterError) {
				continue // at once: every task is gone, the cluster needs a new framework
			}
			if c.standDownIfFailedOver(se.masterError) {
				if !c.waitForChange(ctx, gen, standDownFor(cfg.FailoverTimeout)) {
					return
				}
				continue
			}
		} else {
			c.setConn(false, ConnUnreachable, err.Error())
		}
		c.metrics.reconnects.WithLabelValues(reconnectReason(err)).Inc()
		delay := backoff.next()
		c.log.Info("subscription ended; reconnecting", "error", err.Error(), "in", delay.String())
		if !c.waitForChange(ctx, gen, delay) {
			return
		}
	}
}

// waitForChange sleeps for d, cut short by a config change or a teardown that needs no
// Mesos; it reports false when ctx ended.
func (c *cluster) waitForChange(ctx context.Context, gen uint64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-c.wake:
			if c.configChanged(gen) || c.teardownWithoutFramework() || c.teardownRequested() {
				return true
			}
		}
	}
}

// serve runs one subscription: it waits for SUBSCRIBED, reconciles, and then handles
// events and the controller's requests until the stream fails, the heartbeat watchdog
// fires, the config changes or the framework is torn down.
func (c *cluster) serve(ctx context.Context, tr *transport, sub *subscription, gen uint64, backoff *backoffState) error {
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan receivedEvent, 64)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sub.read(ctx, events)
	}()
	defer func() {
		cancel()
		sub.close()
		<-readerDone // the reader never outlives its subscription
		c.endSubscription()
	}()

	cl, heartbeat, err := c.awaitSubscribed(ctx, tr, sub, events)
	if err != nil {
		return err
	}
	backoff.reset()
	if err := c.reconcile(ctx, cl, true); err != nil {
		return err
	}

	silence := time.Duration(c.opts.HeartbeatMisses) * heartbeat
	watchdog := time.NewTimer(silence)
	defer watchdog.Stop()
	periodic := time.NewTicker(c.opts.ReconcileInterval)
	defer periodic.Stop()
	partitioned := time.NewTicker(c.opts.UnreachableReconcileInterval)
	defer partitioned.Stop()
	barrierRetry := time.NewTimer(time.Second)
	defer barrierRetry.Stop()
	barrierWait := time.Second
	// teardownTimer wakes the loop when the wait for killed tasks is over; it is armed by
	// advanceTeardown.
	teardownTimer := time.NewTimer(time.Hour)
	teardownTimer.Stop()
	defer teardownTimer.Stop()

	for {
		if c.configChanged(gen) {
			return errConfigChanged
		}
		if err := c.act(ctx, cl, teardownTimer); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case re, ok := <-events:
			if !ok {
				return sub.readErr
			}
			if err := c.handle(ctx, cl, re); err != nil {
				return err
			}
		case <-c.wake:
		case <-watchdog.C:
			quiet := time.Since(time.Unix(0, sub.lastEvent.Load()))
			if quiet >= silence && len(events) == 0 {
				return &heartbeatMissed{quiet: quiet, interval: heartbeat, misses: c.opts.HeartbeatMisses}
			}
			// Events waiting in the channel mean the stream is alive and the loop was busy.
			watchdog.Reset(max(silence-quiet, heartbeat))
		case <-periodic.C:
			if err := c.reconcile(ctx, cl, false); err != nil {
				return err
			}
		case <-partitioned.C:
			if err := c.reconcileUnreachable(ctx, cl); err != nil {
				return err
			}
		case <-barrierRetry.C:
			if !c.reconciled() {
				// The master drops explicit reconciliation while agents are still
				// re-registering after a failover; ask again, less and less often.
				c.log.Info("reconciliation not answered yet; asking again", "after", barrierWait.String())
				if err := c.reconcile(ctx, cl, true); err != nil {
					return err
				}
				barrierWait = min(2*barrierWait, c.opts.ReconcileInterval)
				barrierRetry.Reset(barrierWait)
			}
		case <-teardownTimer.C:
		}
	}
}

// awaitSubscribed reads the first event, which must be SUBSCRIBED (an ERROR means the
// master refused the framework), and records the subscription.
func (c *cluster) awaitSubscribed(ctx context.Context, tr *transport, sub *subscription, events <-chan receivedEvent) (*caller, time.Duration, error) {
	t := time.NewTimer(c.opts.HTTPTimeout)
	defer t.Stop()
	var re receivedEvent
	select {
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-t.C:
		return nil, 0, fmt.Errorf("no SUBSCRIBED event within %s", c.opts.HTTPTimeout)
	case ev, ok := <-events:
		if !ok {
			return nil, 0, sub.readErr
		}
		re = ev
	}
	switch re.ev.Type {
	case scheduler.Event_SUBSCRIBED:
	case scheduler.Event_ERROR:
		msg := re.ev.GetError().GetMessage()
		return nil, 0, &subscribeError{reason: ConnRefused, message: "master refused the framework: " + msg, masterError: msg}
	default:
		return nil, 0, fmt.Errorf("first event was %s, not SUBSCRIBED", re.ev.Type)
	}
	s := re.ev.GetSubscribed()
	id := s.GetFrameworkID().GetValue()
	heartbeat := time.Duration(s.GetHeartbeatIntervalSeconds() * float64(time.Second))
	if heartbeat <= 0 {
		heartbeat = 15 * time.Second // the master's default, should it not say
	}
	c.startSubscription(id, sub)
	c.metrics.subscriptions.Inc()
	c.log.Info("subscribed", "frameworkID", id, "master", sub.endpoint, "heartbeat", heartbeat.String())
	return &caller{tr: tr, endpoint: sub.endpoint, streamID: sub.streamID, frameworkID: id}, heartbeat, nil
}

// startSubscription records SUBSCRIBED: the framework ID goes to the controller at once
// (Observed and Events), and the per-subscription state starts afresh. Kills sent on an
// earlier subscription and not yet confirmed are sent again.
func (c *cluster) startSubscription(frameworkID string, sub *subscription) {
	c.mu.Lock()
	c.frameworkID = frameworkID
	c.sub = subscriptionState{active: true, barrierID: newBarrierID()}
	for id, k := range c.killsSent {
		if _, live := c.live[id]; live {
			c.kills[id] = k
		}
	}
	c.killsSent = map[string]killOrder{}
	c.setConnLocked(true, ConnSubscribed, fmt.Sprintf("subscribed at %s as framework %s", sub.endpoint, frameworkID))
	c.mu.Unlock()
	c.notify()
}

func (c *cluster) endSubscription() {
	c.mu.Lock()
	c.sub = subscriptionState{}
	c.mu.Unlock()
}

func (c *cluster) reconciled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sub.reconciled
}
