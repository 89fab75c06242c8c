package mesosbridge

import (
	"context"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// offerInterest is what the framework should tell the master about offers.
type offerInterest int

const (
	interestUnchanged offerInterest = iota
	// interestSuppress: nothing to launch; stop sending offers (SUPPRESS).
	interestSuppress
	// interestRevive: demand is back; send offers again and forget earlier refuse
	// filters, which may be the long idle ones (REVIVE).
	interestRevive
)

func (i offerInterest) String() string {
	switch i {
	case interestSuppress:
		return "suppress"
	case interestRevive:
		return "revive"
	}
	return "unchanged"
}

// nextOfferInterest decides SUPPRESS/REVIVE from the number of tasks the plan wants
// launched now and whether offers are suppressed. The event loop calls it after every
// round and whenever the desired tasks change; a new subscription starts unsuppressed.
// Because the framework suppresses as soon as nothing is pending, any offer declined with
// the long idle filter is followed by a SUPPRESS, so demand always finds it suppressed and
// revives, which also clears that filter.
func nextOfferInterest(pending int, suppressed bool) offerInterest {
	switch {
	case pending > 0 && suppressed:
		return interestRevive
	case pending == 0 && !suppressed:
		return interestSuppress
	}
	return interestUnchanged
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
