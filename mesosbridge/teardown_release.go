package mesosbridge

import (
	"context"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// Releasing a torn-down cluster's reservations: the servers' persistent volumes and the
// disk reserved for them stay on their agents after the tasks end, and Mesos frees them
// only when asked (DESTROY, then UNRESERVE) through an offer that carries them. So before
// TEARDOWN the bridge revives offers and releases what they show of this cluster, which it
// recognises by the cluster UID in the reservation labels.

// ownedReservations finds, in an offer, the resources reserved for this cluster, and the
// operations that free them: DESTROY for each volume, then UNRESERVE for the disk.
func ownedReservations(offer mesos.Offer, fw FrameworkConfig) []mesos.Offer_Operation {
	volumes, reservedRes := ownedOf(offer.Resources, fw)
	var ops []mesos.Offer_Operation
	if len(volumes) > 0 {
		ops = append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_DESTROY, Destroy: &mesos.Offer_Operation_Destroy{Volumes: volumes}})
	}
	if len(reservedRes) > 0 {
		ops = append(ops, mesos.Offer_Operation{Type: mesos.Offer_Operation_UNRESERVE, Unreserve: &mesos.Offer_Operation_Unreserve{Resources: reservedRes}})
	}
	return ops
}

// ownedOf splits the resources reserved for this cluster into its persistent volumes and
// what UNRESERVE must name once they are destroyed (the volumes' disk without its
// persistence, and the other reserved resources).
func ownedOf(resources []mesos.Resource, fw FrameworkConfig) (volumes, reservedRes []mesos.Resource) {
	for _, r := range resources {
		if !reservedForCluster(r, fw) {
			continue
		}
		if r.GetDisk().GetPersistence() != nil {
			volumes = append(volumes, r)
			plain := r
			plain.Disk = nil // what the volume is once destroyed: reserved disk
			reservedRes = append(reservedRes, plain)
			continue
		}
		reservedRes = append(reservedRes, r)
	}
	return volumes, reservedRes
}

// reservedForCluster: dynamically reserved for the framework's role with this cluster's
// UID in the reservation labels (see reserved), or a volume named after the cluster.
func reservedForCluster(r mesos.Resource, fw FrameworkConfig) bool {
	// Offers carry the pre-refinement format (role + reservation) to a framework without
	// RESERVATION_REFINEMENT; the master's own endpoints show the refined one (reservations).
	info := r.GetReservation()
	if n := len(r.Reservations); n > 0 {
		info = &r.Reservations[n-1]
	}
	if reservationRole(&r) != fw.Role || info == nil {
		return false
	}
	for _, l := range info.GetLabels().GetLabels() {
		if l.Key == LabelClusterUID && l.GetValue() == fw.ClusterUID {
			return true
		}
	}
	id := r.GetDisk().GetPersistence().GetID()
	return id != "" && strings.HasPrefix(id, persistenceID(fw.ClusterUID, ""))
}

// releasingLocked: the teardown's tasks are gone and its reservations are being freed.
func (c *cluster) releasingLocked() bool {
	t := c.teardown
	return t.requested && !t.releaseDeadline.IsZero() && !t.released
}

// releaseReservations answers an OFFERS event during the release step: one ACCEPT per
// offer that carries the cluster's reservations, a DECLINE for the rest. An event whose
// offers carry none ends the step.
func (c *cluster) releaseReservations(ctx context.Context, cl *caller, offers []mesos.Offer) error {
	c.mu.Lock()
	fw := c.cfg
	c.mu.Unlock()
	var declines []mesos.OfferID
	released := 0
	for _, o := range offers {
		ops := ownedReservations(o, fw)
		if len(ops) == 0 {
			declines = append(declines, o.ID)
			continue
		}
		call := &scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
			OfferIDs: []mesos.OfferID{o.ID}, Operations: ops, Filters: &mesos.Filters{RefuseSeconds: ptr(0.0)},
		}}
		if err := cl.call(ctx, call, nil); err != nil {
			return err
		}
		released++
		c.log.Info("released reservations", "agent", o.Hostname, "operations", len(ops))
	}
	if released == 0 {
		c.mu.Lock()
		c.teardown.released = true
		c.mu.Unlock()
		c.poke()
	}
	return c.decline(ctx, cl, declines, 0)
}
