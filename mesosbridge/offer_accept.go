package mesosbridge

import (
	"context"
	"math"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// sendDecision sends a round's decision: one ACCEPT per offer with launches, in plan
// order, then one DECLINE for the rest, all with the round's refuse filter.
func (c *cluster) sendDecision(ctx context.Context, cl *caller, d offerDecision, pending []TaskSpec, received time.Time) error {
	sortAcceptsByPlan(d.Accepts, pending)
	for i, a := range d.Accepts {
		var wrote func()
		if i == 0 {
			wrote = func() { c.observeDecision(time.Since(received)) }
		}
		call := &scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
			OfferIDs: []mesos.OfferID{a.OfferID}, Operations: a.Operations, Filters: &d.Filters,
		}}
		if err := cl.call(ctx, call, wrote); err != nil {
			// Tasks recorded as staging but never launched come back TASK_GONE from the
			// reconciliation of the next subscription, and are launched again.
			return err
		}
		c.metrics.offersAccepted.Inc()
		c.metrics.launches.Add(float64(len(a.Launched)))
		for _, l := range a.Launched {
			c.log.Info("launched task", "task", l.Name, "taskID", l.TaskID, "agent", l.Hostname)
		}
	}
	if len(d.Unplaced) > 0 {
		c.log.V(1).Info("tasks left unplaced", "unplaced", d.Unplaced)
	}
	return c.decline(ctx, cl, d.Declines, time.Duration(d.Filters.GetRefuseSeconds()*float64(time.Second)))
}

// sortAcceptsByPlan orders the ACCEPT calls of a round by the earliest plan position
// they launch, so the master starts a server before the agents of the same round even
// when the agents' offer came first.
func sortAcceptsByPlan(accepts []offerAccept, pending []TaskSpec) {
	order := make(map[string]int, len(pending))
	for _, s := range pending {
		order[s.Name] = s.Order
	}
	first := func(a offerAccept) int {
		m := math.MaxInt
		for _, l := range a.Launched {
			m = min(m, order[l.Name])
		}
		return m
	}
	sort.SliceStable(accepts, func(i, j int) bool { return first(accepts[i]) < first(accepts[j]) })
}

func (c *cluster) observeDecision(d time.Duration) {
	c.metrics.offerDecision.Observe(d.Seconds())
	if c.decided != nil {
		c.decided(d)
	}
}

// decline sends one DECLINE for all the offers.
func (c *cluster) decline(ctx context.Context, cl *caller, ids []mesos.OfferID, refuse time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	call := &scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
		OfferIDs: ids, Filters: &mesos.Filters{RefuseSeconds: ptr(refuse.Seconds())},
	}}
	if err := cl.call(ctx, call, nil); err != nil {
		return err
	}
	c.metrics.offersDeclined.Add(float64(len(ids)))
	return nil
}

func offerIDs(offers []mesos.Offer) []mesos.OfferID {
	ids := make([]mesos.OfferID, len(offers))
	for i, o := range offers {
		ids[i] = o.ID
	}
	return ids
}
