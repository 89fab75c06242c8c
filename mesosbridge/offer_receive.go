package mesosbridge

import (
	"context"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// handleOffers answers one OFFERS event: all pending tasks are matched against all its
// offers in one pass, each offer with matches gets one ACCEPT carrying all its
// operations, and the rest one DECLINE, both with the refuse filter of the policy.
// Launched tasks are recorded as TASK_STAGING before any ACCEPT leaves, so even the
// fastest status update finds them.
func (c *cluster) handleOffers(ctx context.Context, cl *caller, offers []mesos.Offer, received time.Time) error {
	c.metrics.offersReceived.Add(float64(len(offers)))
	// Rounds that place host-exclusive tasks run one cluster at a time, from reading the
	// other clusters' hosts to recording this round's launches.
	var occupied map[string]map[string]bool
	release := func() {}
	if c.exclusiveHosts != nil && c.wantsExclusiveHosts() {
		release = sync.OnceFunc(c.exclusiveHosts.lock())
		defer release()
		occupied = c.exclusiveHosts.of(c.key)
	}
	c.mu.Lock()
	if c.releasingLocked() {
		c.mu.Unlock()
		return c.releaseReservations(ctx, cl, offers)
	}
	for _, o := range offers {
		c.agentAttrs[o.AgentID.Value] = attributeMap(o.Attributes)
	}
	pending := c.pendingLocked()
	if len(pending) == 0 {
		// Not ready yet (framework ID not handed back, reconciliation unanswered) or
		// nothing to do: the SUPPRESS that follows stops further offers, and the REVIVE that
		// demand brings back clears this filter.
		c.mu.Unlock()
		return c.decline(ctx, cl, offerIDs(offers), refuseFor(0))
	}
	in := matchInput{Framework: c.cfg, Pending: pending, Active: activeOf(c.tasks, c.agentAttrs), NewTaskID: newTaskID, Occupied: occupied}
	d := decideOffers(in, offers)
	now := time.Now()
	for _, l := range d.Launched {
		o := l.observed(now)
		c.tasks[l.Name] = o
		c.live[l.TaskID] = o
	}
	c.unplaced = d.Unplaced
	c.mu.Unlock()
	release()
	if len(d.Launched) > 0 {
		c.notify()
	}
	return c.sendDecision(ctx, cl, d, pending, received)
}
