package mesosbridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// teardownState tracks Teardown: kill everything, wait (bounded, see Options.KillWait)
// for terminal states, release the volumes and reservations, TEARDOWN.
type teardownState struct {
	requested bool
	// killDeadline is when the wait for killed tasks ends; zero until the kills went out.
	// killWait is how long that wait is (see Options.KillWait).
	killDeadline time.Time
	killWait     time.Duration
	// releaseDeadline bounds the release of the cluster's reservations (see release.go);
	// zero until every task is terminal. released: an offer round showed none left.
	releaseDeadline time.Time
	released        bool
	done            bool
}

// requestTeardown starts the teardown (idempotent) and reports whether it is done, or
// why it cannot proceed while the master is out of reach.
func (c *cluster) requestTeardown(cfg FrameworkConfig) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.teardown.requested {
		c.teardown.requested = true
		c.applyConfigLocked(cfg)
		c.desired = nil
		c.log.Info("teardown requested", "frameworkID", c.frameworkID)
		c.poke()
	}
	if c.teardown.done {
		return true, nil
	}
	if !c.conn.Connected && c.frameworkID != "" {
		switch c.conn.Reason {
		case ConnUnreachable, ConnUnauthorized, ConnRefused:
			return false, fmt.Errorf("framework %s cannot be torn down yet: %s", c.frameworkID, c.conn.Message)
		}
	}
	return false, nil
}

// teardownWithoutFramework finishes a teardown that needs no Mesos: the cluster never got
// a framework ID (it never subscribed, so nothing was launched).
func (c *cluster) teardownWithoutFramework() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.teardown.requested || c.frameworkID != "" {
		return false
	}
	if c.teardown.done {
		return true
	}
	c.finishTeardownLocked("no framework was ever subscribed; nothing to tear down")
	return true
}

// teardownIfRemoved finishes a teardown when the master says the framework is already
// gone (its failover timeout ran out while the operator was away, or someone else tore
// it down): Mesos answers a resubscription with "Framework has been removed".
func (c *cluster) teardownIfRemoved(message string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.teardown.requested || !strings.Contains(message, "has been removed") {
		return false
	}
	c.finishTeardownLocked("the master had already removed the framework")
	return true
}

func (c *cluster) finishTeardownLocked(message string) {
	c.teardown.done = true
	c.setConnLocked(false, ConnTornDown, message)
	c.log.Info("framework torn down", "frameworkID", c.frameworkID, "message", message)
	c.notify() // never blocks, takes no cluster lock
}

// advanceTeardown takes the next teardown step once the reconciliation has shown every
// task: queue a KILL for each live task, then, when all are terminal or the kill wait is over,
// send TEARDOWN (which makes Mesos kill whatever is left).
func (c *cluster) advanceTeardown(ctx context.Context, cl *caller, timer *time.Timer) error {
	c.mu.Lock()
	if !c.teardown.requested || !c.sub.reconciled {
		c.mu.Unlock()
		return nil
	}
	now := time.Now()
	if c.teardown.killDeadline.IsZero() {
		wait := c.opts.KillWait
		for id, t := range c.live {
			k := killOrder{agentID: t.AgentID, grace: c.graceLocked(t.Name)}
			c.kills[id] = k
			wait = max(wait, effectiveGrace(k.grace)+c.opts.KillWaitMargin)
		}
		c.teardown.killWait = wait
		c.teardown.killDeadline = now.Add(wait)
		timer.Reset(wait)
		c.mu.Unlock()
		if err := c.sendKills(ctx, cl); err != nil {
			return err
		}
		c.mu.Lock()
	}
	remaining, deadline := len(c.live), c.teardown.killDeadline
	if remaining == 0 && c.teardown.releaseDeadline.IsZero() {
		// Every task is gone: free the volumes and reservations before TEARDOWN. Offers
		// come back through the REVIVE that releasingLocked makes applyOfferInterest send.
		c.teardown.releaseDeadline = now.Add(c.opts.ReleaseWait)
		timer.Reset(c.opts.ReleaseWait)
		c.mu.Unlock()
		c.poke()
		return nil
	}
	releasing, releaseDeadline := c.releasingLocked(), c.teardown.releaseDeadline
	c.mu.Unlock()
	if remaining > 0 && now.Before(deadline) {
		return nil
	}
	if releasing && now.Before(releaseDeadline) {
		return nil
	}
	if releasing {
		c.log.Info("reservations not all seen released within the release wait; tearing down anyway", "releaseWait", c.opts.ReleaseWait.String())
	}
	if remaining > 0 {
		c.log.Info("tasks not terminal after the kill wait; tearing down anyway", "tasks", remaining, "killWait", c.teardown.killWait.String())
	}
	if err := cl.call(ctx, &scheduler.Call{Type: scheduler.Call_TEARDOWN}, nil); err != nil {
		return err
	}
	c.mu.Lock()
	released := c.teardown.released
	c.mu.Unlock()
	message := fmt.Sprintf("framework %s torn down", cl.frameworkID)
	if !released {
		// What the release step could not free before TEARDOWN (a task that outlived the
		// kill wait held its volume) is freed now, without a framework.
		if err := c.releaseThroughOperatorAPI(ctx, cl); err != nil {
			c.log.Error(err, "the cluster's volumes or reservations could not be released; release them with the master's /destroy-volumes and /unreserve endpoints")
			message += "; some of its volumes or reservations could not be released: " + err.Error()
		}
	}
	c.mu.Lock()
	c.finishTeardownLocked(message)
	c.mu.Unlock()
	return errTornDown
}

func (c *cluster) teardownRequested() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.teardown.requested
}
