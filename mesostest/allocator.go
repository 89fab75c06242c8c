package mesostest

import (
	"fmt"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// defaultRefuseSeconds is Filters.refuse_seconds' default in mesos.proto.
const defaultRefuseSeconds = 5.0

// offer is an outstanding resource offer.
type offer struct {
	id        string
	fw        *framework
	agent     *agent
	role      string
	resources mesos.Resources // carry AllocationInfo for role
}

type filterKey struct {
	agentID string
	role    string
}

// offerFilter is a decline filter: the framework does not want these
// resources (or less) from this agent for this role until expiry. Like the
// hierarchical allocator's refused-resources filter, more resources than
// were declined are offered again.
type offerFilter struct {
	resources mesos.Resources
	expires   time.Time
}

// triggerAllocation records that something changed that may allow new
// offers (resources freed, a framework subscribed or revived, an agent
// came) and asks the allocation loop for a round soon, without waiting for
// the interval. Rounds are still batched, as in the Mesos allocator.
// Called with s.mu held.
func (s *Server) triggerAllocation() {
	s.allocationDirty = true
	select {
	case s.allocNow <- struct{}{}:
	default:
	}
}

func (s *Server) allocationLoop() {
	ticker := time.NewTicker(s.opts.AllocationInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ticker.C:
		case <-s.allocNow:
		}
		s.mu.Lock()
		if !s.closed {
			s.allocateLocked(time.Now())
		}
		s.mu.Unlock()
	}
}

type allocationCandidate struct {
	fw    *framework
	role  string
	share float64
}

// allocateLocked runs one allocation round: every reachable agent's free
// resources go to the (framework, role) pairs with the lowest dominant
// share first, honouring suppression and decline filters; each framework
// then gets one OFFERS event with everything it was offered.
func (s *Server) allocateLocked(now time.Time) {
	if s.leader == nil || s.noLeader {
		return
	}
	// Nothing changed and no filter expired since the last round: the same
	// round would offer nothing, so an idle cluster costs nothing.
	filterExpired := !s.nextFilterExpiry.IsZero() && !now.Before(s.nextFilterExpiry)
	if !s.allocationDirty && !filterExpired {
		return
	}
	s.allocationDirty = false
	if filterExpired {
		s.nextFilterExpiry = s.earliestFilterExpiryLocked(now)
	}
	defer s.allocationRounds.Add(1)
	candidates := s.allocationCandidatesLocked()
	if len(candidates) == 0 {
		return
	}
	made := map[*framework][]mesos.Offer{}
	var order []*framework
	for _, a := range s.agentOrder {
		if !a.registeredWithMaster() || len(a.free) == 0 {
			continue
		}
		for _, c := range candidates {
			offerable := allocatableTo(a.free, c.role)
			if len(offerable) == 0 || !worthOffering(offerable) {
				continue
			}
			if c.fw.filteredLocked(a.id, c.role, offerable, now) {
				continue
			}
			o := s.newOfferLocked(c.fw, a, c.role, offerable)
			if _, seen := made[c.fw]; !seen {
				order = append(order, c.fw)
			}
			made[c.fw] = append(made[c.fw], s.offerMessage(o))
			if len(a.free) == 0 {
				break
			}
		}
	}
	for _, fw := range order {
		offers := made[fw]
		s.log.V(1).Info("sending offers", "frameworkID", fw.id, "offers", len(offers))
		fw.send(&scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offers}})
	}
}

// allocationCandidatesLocked lists subscribed (framework, role) pairs that
// want offers, lowest dominant share first (DRF).
func (s *Server) allocationCandidatesLocked() []allocationCandidate {
	var subscribed []*framework
	for _, fw := range s.frameworks {
		if fw.stream != nil {
			subscribed = append(subscribed, fw)
		}
	}
	// Shares only matter when frameworks compete; computing them walks
	// every task, so a lone framework skips it.
	compete := len(subscribed) > 1
	var totalCPUs, totalMem float64
	if compete {
		for _, a := range s.agentOrder {
			if a.registeredWithMaster() {
				totalCPUs += a.cfg.CPUs
				totalMem += a.cfg.MemMiB
			}
		}
	}
	var out []allocationCandidate
	for _, fw := range subscribed {
		if !compete {
			for _, role := range fw.roles {
				if !fw.suppressed[role] {
					out = append(out, allocationCandidate{fw: fw, role: role})
				}
			}
			continue
		}
		var cpus, mem float64
		for _, t := range fw.tasks {
			if !t.terminal() {
				cpus += scalarOf(t.resources, "cpus")
				mem += scalarOf(t.resources, "mem")
			}
		}
		for _, o := range fw.offers {
			cpus += scalarOf(o.resources, "cpus")
			mem += scalarOf(o.resources, "mem")
		}
		share := 0.0
		if totalCPUs > 0 {
			share = cpus / totalCPUs
		}
		if totalMem > 0 && mem/totalMem > share {
			share = mem / totalMem
		}
		for _, role := range fw.roles {
			if fw.suppressed[role] {
				continue
			}
			out = append(out, allocationCandidate{fw: fw, role: role, share: share})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].share != out[j].share {
			return out[i].share < out[j].share
		}
		if out[i].fw.id != out[j].fw.id {
			return out[i].fw.id < out[j].fw.id
		}
		return out[i].role < out[j].role
	})
	return out
}

func (fw *framework) filteredLocked(agentID, role string, offerable mesos.Resources, now time.Time) bool {
	key := filterKey{agentID, role}
	filters := fw.filters[key]
	if len(filters) == 0 {
		return false
	}
	live := filters[:0]
	filtered := false
	for _, f := range filters {
		if now.After(f.expires) {
			continue
		}
		live = append(live, f)
		if !filtered && contains(f.resources, offerable) {
			filtered = true
		}
	}
	if len(live) == 0 {
		delete(fw.filters, key)
	} else {
		fw.filters[key] = live
	}
	return filtered
}

// addFilterLocked records a decline (or accept-remainder) filter.
func (s *Server) addFilterLocked(fw *framework, a *agent, role string, rs mesos.Resources, filters *mesos.Filters) {
	seconds := defaultRefuseSeconds
	if filters != nil && filters.RefuseSeconds != nil {
		seconds = filters.GetRefuseSeconds()
	}
	if seconds <= 0 || len(rs) == 0 || fw.filters == nil {
		return
	}
	d := time.Duration(seconds * float64(time.Second))
	if seconds > 365*24*3600 {
		d = 365 * 24 * time.Hour
	}
	key := filterKey{a.id, role}
	expires := time.Now().Add(d)
	fw.filters[key] = append(fw.filters[key], offerFilter{resources: unallocated(rs), expires: expires})
	if s.nextFilterExpiry.IsZero() || expires.Before(s.nextFilterExpiry) {
		s.nextFilterExpiry = expires
	}
}

// earliestFilterExpiryLocked finds the next decline filter to expire after
// now (zero when none), so the allocator wakes up for it.
func (s *Server) earliestFilterExpiryLocked(now time.Time) time.Time {
	var next time.Time
	for _, fw := range s.frameworks {
		for _, filters := range fw.filters {
			for _, f := range filters {
				if f.expires.After(now) && (next.IsZero() || f.expires.Before(next)) {
					next = f.expires
				}
			}
		}
	}
	return next
}

func (s *Server) newOfferLocked(fw *framework, a *agent, role string, rs mesos.Resources) *offer {
	s.nextOffer++
	o := &offer{
		id:        fmt.Sprintf("%s-O%d", s.masterID, s.nextOffer),
		fw:        fw,
		agent:     a,
		role:      role,
		resources: allocated(rs, role),
	}
	a.free.Subtract(rs...)
	s.offers[o.id] = o
	fw.offers[o.id] = o
	a.offers[o.id] = o
	return o
}

// offerMessage renders an offer the way the framework expects it: with
// allocation info for MULTI_ROLE frameworks, without for the others.
func (s *Server) offerMessage(o *offer) mesos.Offer {
	role := o.role
	msg := mesos.Offer{
		ID:          mesos.OfferID{Value: o.id},
		FrameworkID: mesos.FrameworkID{Value: o.fw.id},
		AgentID:     mesos.AgentID{Value: o.agent.id},
		Hostname:    o.agent.hostname,
		Resources:   cloneResources(o.resources),
		Attributes:  o.agent.attributes,
		URL:         o.agent.url,
	}
	if o.fw.multiRole {
		msg.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	} else {
		msg.Resources = stripAllocation(msg.Resources)
	}
	for t := range o.agent.tasks {
		if t.fw == o.fw && t.executorID != "" && !t.terminal() && t.group != nil {
			msg.ExecutorIDs = append(msg.ExecutorIDs, mesos.ExecutorID{Value: t.executorID})
			break
		}
	}
	return msg
}

// removeOfferLocked withdraws an offer, returning its resources to the
// agent. With rescind, the framework gets a RESCIND event.
func (s *Server) removeOfferLocked(o *offer, rescind bool) {
	delete(s.offers, o.id)
	delete(o.fw.offers, o.id)
	delete(o.agent.offers, o.id)
	o.agent.free.Add(unallocated(o.resources)...)
	if rescind {
		o.fw.send(&scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: o.id}}})
	}
	s.triggerAllocation()
}

func (s *Server) removeFrameworkOffersLocked(fw *framework, rescind bool) {
	for _, o := range fw.offers {
		s.removeOfferLocked(o, rescind)
	}
}

// declineLocked handles DECLINE: the offers' resources go back to their
// agents, filtered for refuse_seconds (default 5s).
func (s *Server) declineLocked(fw *framework, d *scheduler.Call_Decline) {
	for _, id := range d.OfferIDs {
		o := fw.offers[id.Value]
		if o == nil {
			// Mesos ignores declines of unknown offers (logs a warning).
			s.log.V(1).Info("ignoring decline of unknown offer", "frameworkID", fw.id, "offerID", id.Value)
			continue
		}
		s.addFilterLocked(fw, o.agent, o.role, o.resources, d.Filters)
		s.removeOfferLocked(o, false)
	}
}

// reviveLocked clears decline filters and suppression for the given roles
// (all roles when none are given).
func (s *Server) reviveLocked(fw *framework, roles []string) error {
	if err := checkRoles(fw, roles); err != nil {
		return err
	}
	if len(roles) == 0 {
		roles = fw.roles
	}
	for _, role := range roles {
		delete(fw.suppressed, role)
		for key := range fw.filters {
			if key.role == role {
				delete(fw.filters, key)
			}
		}
	}
	s.log.V(1).Info("framework revived", "frameworkID", fw.id, "roles", roles)
	s.triggerAllocation()
	return nil
}

// suppressLocked stops offers for the given roles (all when none given).
func (s *Server) suppressLocked(fw *framework, roles []string) error {
	if err := checkRoles(fw, roles); err != nil {
		return err
	}
	if len(roles) == 0 {
		roles = fw.roles
	}
	for _, role := range roles {
		fw.suppressed[role] = true
	}
	s.log.V(1).Info("framework suppressed offers", "frameworkID", fw.id, "roles", roles)
	return nil
}

func checkRoles(fw *framework, roles []string) error {
	for _, r := range roles {
		if !containsString(fw.roles, r) {
			return fmt.Errorf("role '%s' is not one of the framework's roles", r)
		}
	}
	return nil
}
