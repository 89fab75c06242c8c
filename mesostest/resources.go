package mesostest

import (
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// The master's minimum allocatable resources (--min_allocatable_resources
// default "cpus:0.01|mem:32"): less than this is not worth an offer.
const (
	minAllocatableCPUs = 0.01
	minAllocatableMem  = 32
)

// cloneResources copies a resource list. mesos-go's arithmetic replaces
// values rather than mutating them, so copying the structs is enough.
func cloneResources(rs mesos.Resources) mesos.Resources {
	if rs == nil {
		return nil
	}
	out := make(mesos.Resources, len(rs))
	copy(out, rs)
	return out
}

// allocatableTo returns the resources of rs that may be offered to role:
// unreserved ones and those reserved for that role (or an ancestor).
func allocatableTo(rs mesos.Resources, role string) mesos.Resources {
	var out mesos.Resources
	for i := range rs {
		if rs[i].IsAllocatableTo(role) {
			out = append(out, rs[i])
		}
	}
	return out
}

func scalarOf(rs mesos.Resources, name string) float64 {
	total := 0.0
	for i := range rs {
		if rs[i].Name == name && rs[i].Scalar != nil {
			total += rs[i].Scalar.Value
		}
	}
	return total
}

// worthOffering mirrors the allocator's minimum-allocatable check; reserved
// resources and volumes are always worth offering back to their role.
func worthOffering(rs mesos.Resources) bool {
	if scalarOf(rs, "cpus") >= minAllocatableCPUs || scalarOf(rs, "mem") >= minAllocatableMem {
		return true
	}
	for i := range rs {
		if !rs[i].IsUnreserved() || rs[i].IsPersistentVolume() {
			return true
		}
	}
	return false
}

// allocated returns a copy of rs carrying AllocationInfo for role, the way
// resources in offers and in use by tasks are tagged (MULTI_ROLE).
func allocated(rs mesos.Resources, role string) mesos.Resources {
	out := cloneResources(rs)
	for i := range out {
		r := role
		out[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &r}
	}
	return out
}

// unallocated returns a copy of rs without AllocationInfo.
func unallocated(rs mesos.Resources) mesos.Resources {
	out := cloneResources(rs)
	for i := range out {
		out[i].AllocationInfo = nil
	}
	return out
}

// normalizeIncoming converts resources sent by a framework into the form the
// master keeps them in: pre-refinement reservations (role + reservation) and
// role "*" for unreserved resources. A single-level refined reservation
// (reservations[0]) is folded into that form.
func normalizeIncoming(rs []mesos.Resource) (mesos.Resources, error) {
	out := make(mesos.Resources, 0, len(rs))
	for _, r := range rs {
		if len(r.Reservations) > 1 {
			return nil, fmt.Errorf("hierarchical reservation refinement is not supported by the emulator")
		}
		if len(r.Reservations) == 1 {
			ri := r.Reservations[0]
			role := ri.GetRole()
			r.Role = &role
			if ri.GetType() == mesos.Resource_ReservationInfo_DYNAMIC || ri.Type == nil {
				r.Reservation = &mesos.Resource_ReservationInfo{Principal: ri.Principal, Labels: ri.Labels}
			}
			r.Reservations = nil
		}
		if r.Role == nil {
			star := "*"
			r.Role = &star
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("invalid resource %s: %v", r.Name, err)
		}
		if r.Scalar != nil && r.Scalar.Value < 0 {
			return nil, fmt.Errorf("invalid resource %s: negative scalar", r.Name)
		}
		if r.Ranges != nil {
			for _, rg := range r.Ranges.Range {
				if rg.Begin > rg.End {
					return nil, fmt.Errorf("invalid resource %s: range %d-%d", r.Name, rg.Begin, rg.End)
				}
			}
			sorted := mesos.Ranges(append([]mesos.Value_Range(nil), r.Ranges.Range...)).Sort().Squash()
			r.Ranges = &mesos.Value_Ranges{Range: sorted}
		}
		out = append(out, r)
	}
	return out, nil
}

// contains reports whether have contains every resource of want. It is
// resources.ContainsAll without the deep (reflective) clone of have: the
// arithmetic replaces values instead of mutating them, so a shallow copy
// is enough, and this check runs for every agent in every allocation round.
func contains(have, want mesos.Resources) bool {
	remaining := cloneResources(have)
	for i := range want {
		found := false
		for j := range remaining {
			if remaining[j].Contains(want[i]) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
		if want[i].IsPersistentVolume() {
			remaining.Subtract1(want[i])
		}
	}
	return true
}

// stripAllocation removes AllocationInfo for frameworks that are not
// MULTI_ROLE capable: the master downgrades offers for them.
func stripAllocation(rs []mesos.Resource) []mesos.Resource {
	out := make([]mesos.Resource, len(rs))
	copy(out, rs)
	for i := range out {
		out[i].AllocationInfo = nil
	}
	return out
}
