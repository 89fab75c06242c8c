package mesosbridge

import (
	"context"
	"time"
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
