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

// offerDecision is everything one OFFERS event turns into: the event loop sends one
// ACCEPT per entry of Accepts and one DECLINE for Declines, all with Filters, and records
// Launched as TASK_STAGING first.
type offerDecision struct {
	Accepts  []offerAccept
	Declines []mesos.OfferID
	Filters  mesos.Filters
	Launched []launchedTask
	// Unplaced says why each pending task was not launched this round.
	Unplaced map[string]string
}

// decideOffers matches the offers and applies the refuse and suppress policies.
func decideOffers(in matchInput, offers []mesos.Offer) offerDecision {
	r := matchOffers(in, offers)
	d := offerDecision{
		Accepts:  r.Accepts,
		Declines: r.Declines,
		Filters:  mesos.Filters{RefuseSeconds: ptr(refuseFor(len(r.Unplaced)).Seconds())},
		Unplaced: r.Unplaced,
	}
	for _, a := range r.Accepts {
		d.Launched = append(d.Launched, a.Launched...)
	}
	return d
}
