package mesosbridge

import (
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Refuse filters on declined (and the unused rest of accepted) offers. While work is
// pending a short filter brings the resources back soon, in case a task finishes or a
// constraint frees up; with nothing to do a long filter hands the resources to the other
// frameworks, and the SUPPRESS/REVIVE pair below takes care of new demand.
const (
	refuseWhilePending = 5 * time.Second
	refuseWhenIdle     = 300 * time.Second
)

// refuseFor is the refuse filter after a round that left pending tasks unplaced.
func refuseFor(pending int) time.Duration {
	if pending > 0 {
		return refuseWhilePending
	}
	return refuseWhenIdle
}

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

// offerDecision is everything one OFFERS event turns into: the event loop sends one
// ACCEPT per entry of Accepts and one DECLINE for Declines, all with Filters, records
// Launched as TASK_STAGING first, and then applies Interest.
type offerDecision struct {
	Accepts  []offerAccept
	Declines []mesos.OfferID
	Filters  mesos.Filters
	Launched []launchedTask
	// Unplaced says why each pending task was not launched this round.
	Unplaced map[string]string
	Interest offerInterest
}

// decideOffers matches the offers and applies the refuse and suppress policies.
func decideOffers(in matchInput, offers []mesos.Offer, suppressed bool) offerDecision {
	r := matchOffers(in, offers)
	d := offerDecision{
		Accepts:  r.Accepts,
		Declines: r.Declines,
		Filters:  mesos.Filters{RefuseSeconds: ptr(refuseFor(len(r.Unplaced)).Seconds())},
		Unplaced: r.Unplaced,
		Interest: nextOfferInterest(len(r.Unplaced), suppressed),
	}
	for _, a := range r.Accepts {
		d.Launched = append(d.Launched, a.Launched...)
	}
	return d
}
