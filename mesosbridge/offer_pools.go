package mesosbridge

import (
	"math"
	"sort"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Mesos stores scalars as fixed point with three decimals; accounting in the same unit
// avoids float drift turning "exactly enough" into "not enough".
const scalarEpsilon = 0.0005

func roundScalar(v float64) float64 { return math.Round(v*1000) / 1000 }

// scalarPool is one offered scalar resource (one reservation, one allocation role) and how
// much of it this round has not handed out yet.
type scalarPool struct {
	res  *mesos.Resource
	left float64
}

// rangePool is one offered ranges resource (ports) and its ranges still free.
type rangePool struct {
	res  *mesos.Resource
	left mesos.Ranges
}

// offerState is an offer parsed once per round into what the framework's role may use,
// with reserved pools before unreserved ones so reservations are used up first.
type offerState struct {
	offer     *mesos.Offer
	lazyFacts *agentFacts // rendered on first use: most offers of a big batch never get that far
	cpus      []scalarPool
	mem       []scalarPool
	disk      []scalarPool // plain (root) disk: sandbox space and room for new volumes
	ports     []rangePool
	volume    map[string]*mesos.Resource // persistent volumes by persistence ID

	// totals of the pools above, so most misfits are rejected without walking pools
	cpusLeft, memLeft, diskLeft float64
	portsLeft                   uint64
}

// reservationRole is the role a resource is reserved for, "" when unreserved. It reads
// both the pre-refinement format (role + reservation) and the refined one (reservations).
func reservationRole(r *mesos.Resource) string {
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].GetRole()
	}
	if r.Role != nil && *r.Role != "*" {
		return *r.Role
	}
	return ""
}

// usableBy reports whether the framework subscribed with role may use the resource in a
// task: allocated to that role (MULTI_ROLE), unreserved or reserved for it, and not a
// revocable, shared or provider resource the bridge does not ask for.
func usableBy(r *mesos.Resource, role string) bool {
	if r.AllocationInfo != nil && r.AllocationInfo.GetRole() != role {
		return false
	}
	if r.Revocable != nil || r.Shared != nil || r.ProviderID != nil {
		return false
	}
	rr := reservationRole(r)
	return rr == "" || rr == role
}

func newOfferState(o *mesos.Offer, role string) *offerState {
	s := &offerState{offer: o}
	for i := range o.Resources {
		r := &o.Resources[i]
		if !usableBy(r, role) {
			continue
		}
		switch r.Name {
		case "cpus":
			s.cpus = append(s.cpus, scalarPool{r, r.GetScalar().GetValue()})
		case "mem":
			s.mem = append(s.mem, scalarPool{r, r.GetScalar().GetValue()})
		case "disk":
			switch {
			case r.Disk == nil:
				s.disk = append(s.disk, scalarPool{r, r.GetScalar().GetValue()})
			case r.Disk.Persistence != nil:
				if s.volume == nil {
					s.volume = map[string]*mesos.Resource{}
				}
				s.volume[r.Disk.Persistence.ID] = r
			}
			// Other disk sources (PATH, MOUNT, provider disks) are left alone.
		case "ports":
			if r.Ranges != nil {
				s.ports = append(s.ports, rangePool{r, mesos.Ranges(r.Ranges.Range).Clone().Sort().Squash()})
			}
		}
	}
	for _, pools := range [][]scalarPool{s.cpus, s.mem, s.disk} {
		sortReservedFirst(pools)
	}
	if len(s.ports) > 1 {
		sort.SliceStable(s.ports, func(i, j int) bool {
			return reservationRole(s.ports[i].res) != "" && reservationRole(s.ports[j].res) == ""
		})
	}
	s.cpusLeft, s.memLeft, s.diskLeft = sum(s.cpus), sum(s.mem), sum(s.disk)
	for _, p := range s.ports {
		s.portsLeft += p.left.Size()
	}
	return s
}

func sortReservedFirst(pools []scalarPool) {
	if len(pools) < 2 {
		return // the usual case: one unreserved resource of each kind
	}
	sort.SliceStable(pools, func(i, j int) bool {
		return reservationRole(pools[i].res) != "" && reservationRole(pools[j].res) == ""
	})
}

func sum(pools []scalarPool) float64 {
	var t float64
	for _, p := range pools {
		t += p.left
	}
	return t
}

// facts renders the agent's host name and attributes for constraints, once per round.
func (s *offerState) facts() agentFacts {
	if s.lazyFacts == nil {
		s.lazyFacts = &agentFacts{hostname: s.offer.Hostname, attributes: attributeMap(s.offer.Attributes)}
	}
	return *s.lazyFacts
}

// attributeMap renders Mesos agent attributes as text, the way constraints compare them:
// text as is, scalars in shortest decimal form, ranges as [a-b,c-d], sets as {a,b}.
// The event loop keeps these per agent so running siblings can be placed in constraints.
func attributeMap(attrs []mesos.Attribute) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		switch a.Type {
		case mesos.TEXT:
			m[a.Name] = a.GetText().GetValue()
		case mesos.SCALAR:
			m[a.Name] = strconv.FormatFloat(a.GetScalar().GetValue(), 'f', -1, 64)
		case mesos.RANGES:
			parts := make([]string, 0, len(a.GetRanges().GetRange()))
			for _, r := range a.GetRanges().GetRange() {
				parts = append(parts, strconv.FormatUint(r.Begin, 10)+"-"+strconv.FormatUint(r.End, 10))
			}
			m[a.Name] = "[" + strings.Join(parts, ",") + "]"
		case mesos.SET:
			m[a.Name] = "{" + strings.Join(a.GetSet().GetItem(), ",") + "}"
		}
	}
	return m
}

// takeScalar carves amount out of the pools (reserved first) and returns the resources a
// task or operation must name: copies of the offered ones, same reservation and
// allocation, with the carved amount. The caller has checked the total.
func takeScalar(pools []scalarPool, amount float64) []mesos.Resource {
	amount = roundScalar(amount)
	var out []mesos.Resource
	for i := range pools {
		if amount <= scalarEpsilon {
			break
		}
		p := &pools[i]
		if p.left <= scalarEpsilon {
			continue
		}
		n := math.Min(p.left, amount)
		p.left = roundScalar(p.left - n)
		amount = roundScalar(amount - n)
		out = append(out, scalarLike(p.res, n))
	}
	return out
}

// scalarLike is a copy of r with a different amount. The pointers it shares with the
// offer (role, reservation, allocation) are never written to.
func scalarLike(r *mesos.Resource, amount float64) mesos.Resource {
	c := *r
	c.Scalar = &mesos.Value_Scalar{Value: roundScalar(amount)}
	return c
}

// takePorts assigns a task's named ports as one run of consecutive ports, the lowest
// that fits (deterministic), and returns the port resources to put in the TaskInfo. A run,
// because a program may bind ports next to the one it is given (a server that also
// listens on its port + 1), so such neighbours must be the task's too. The caller has
// checked portRunFits.
func takePorts(pools []rangePool, names []string) (map[string]uint32, []mesos.Resource) {
	if len(names) == 0 {
		return nil, nil
	}
	n := uint64(len(names))
	for i := range pools {
		p := &pools[i]
		for j, r := range p.left {
			if r.End-r.Begin+1 < n {
				continue
			}
			first := r.Begin
			// p.left is this round's own copy of the offer's ranges.
			if r.End-r.Begin+1 == n {
				p.left = append(p.left[:j:j], p.left[j+1:]...)
			} else {
				p.left[j].Begin += n
			}
			assigned := make(map[string]uint32, len(names))
			for k, name := range names {
				assigned[name] = uint32(first + uint64(k))
			}
			c := *p.res
			c.Ranges = &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: first, End: first + n - 1}}}
			return assigned, []mesos.Resource{c}
		}
	}
	return nil, nil
}

// portRunFits reports whether some pool has n consecutive free ports.
func portRunFits(pools []rangePool, n int) bool {
	if n == 0 {
		return true
	}
	for _, p := range pools {
		for _, r := range p.left {
			if r.End-r.Begin+1 >= uint64(n) {
				return true
			}
		}
	}
	return false
}
