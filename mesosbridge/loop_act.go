package mesosbridge

import (
	"context"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// act carries out what the controller asked for and the state now calls for, before the
// loop waits for the next event: queued kills, SUPPRESS/REVIVE, and the teardown steps.
func (c *cluster) act(ctx context.Context, cl *caller, teardownTimer *time.Timer) error {
	if err := c.sendKills(ctx, cl); err != nil {
		return err
	}
	if err := c.applyOfferInterest(ctx, cl); err != nil {
		return err
	}
	return c.advanceTeardown(ctx, cl, teardownTimer)
}

// applyOfferInterest suppresses offers while nothing can be launched (nothing pending, or
// launches not allowed yet) and revives them when demand appears.
func (c *cluster) applyOfferInterest(ctx context.Context, cl *caller) error {
	c.mu.Lock()
	pending := len(c.pendingLocked())
	if c.releasingLocked() {
		pending = 1 // the release step needs offers to carry the reservations back
	}
	interest := nextOfferInterest(pending, c.sub.suppressed)
	if !c.sub.interestSent {
		// A new subscription: REVIVE clears decline filters left by the previous one,
		// which may be the long idle ones; SUPPRESS stops offers nobody wants.
		interest = interestSuppress
		if pending > 0 {
			interest = interestRevive
		}
	}
	c.mu.Unlock()
	var call *scheduler.Call
	switch interest {
	case interestSuppress:
		call = calls.Suppress()
	case interestRevive:
		call = calls.Revive()
	default:
		return nil
	}
	if err := cl.call(ctx, call, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.sub.suppressed = interest == interestSuppress
	c.sub.interestSent = true
	c.mu.Unlock()
	c.log.V(1).Info("offer interest", "interest", interest.String())
	return nil
}
