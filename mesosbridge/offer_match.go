package mesosbridge

import (
	"fmt"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// placedTask is a sibling that already occupies an agent: an active task of the cluster.
// Constraints count it; the event loop fills Attributes from the offers it has seen from
// that agent (unknown attributes simply do not count for attribute constraints).
type placedTask struct {
	Name       string
	Role       TaskRole
	AgentID    string
	Hostname   string
	Attributes map[string]string
}

// matchInput is one offer round for one cluster.
type matchInput struct {
	Framework FrameworkConfig
	// Pending are the tasks to launch now, in plan order (see TaskSpec.Order).
	Pending []TaskSpec
	// Active are the cluster's tasks that are staging, starting or running.
	Active []placedTask
	// NewTaskID mints the ID of a task about to be launched (newTaskID in production).
	NewTaskID func(name string) string
	// Occupied are, per HostExclusive class, the hosts where other clusters run a task
	// of that class (see host_exclusive.go).
	Occupied map[string]map[string]bool
}

// launchedTask is a task the round decided to launch: the event loop records it as
// TASK_STAGING before sending the ACCEPT, so a fast status update always finds it.
type launchedTask struct {
	Name     string
	TaskID   string
	Role     TaskRole
	Index    int
	SpecHash string
	AgentID  string
	Hostname string
	Ports    map[string]uint32
}

// offerAccept is one ACCEPT call: every operation for one offer.
type offerAccept struct {
	OfferID    mesos.OfferID
	AgentID    mesos.AgentID
	Operations []mesos.Offer_Operation
	Launched   []launchedTask
}

// matchResult is what one round decided.
type matchResult struct {
	Accepts  []offerAccept
	Declines []mesos.OfferID
	// Unplaced says, for every pending task not launched, why (for status and logs).
	Unplaced map[string]string
}

// matchOffers assigns as many pending tasks as possible to a batch of offers in one pass:
// tasks in plan order, each to the first offer that fits (resources, ports, role, volume,
// constraints), several tasks per offer. It is pure and deterministic: the same input
// gives the same operations, which the tests and the benchmark rely on.
func matchOffers(in matchInput, offers []mesos.Offer) matchResult {
	role := in.Framework.Role
	states := make([]*offerState, len(offers))
	volumeAt := map[string]int{} // persistence ID -> index of the offer holding it
	for i := range offers {
		states[i] = newOfferState(&offers[i], role)
		for id := range states[i].volume {
			volumeAt[id] = i
		}
	}

	pending := make([]TaskSpec, len(in.Pending))
	copy(pending, in.Pending)
	sort.SliceStable(pending, func(i, j int) bool { return pending[i].Order < pending[j].Order })

	siblings := newSiblingTracker(in.Active)
	accepts := make([]*offerAccept, len(offers))
	// Per offer: its RESERVE/CREATE operations first, then one LAUNCH for its plain tasks
	// and one LAUNCH_GROUP per task group.
	launches := make([][]mesos.TaskInfo, len(offers))
	groups := make([][]mesos.Offer_Operation, len(offers))
	unplaced := map[string]string{}
	seen := make(map[string]bool, len(pending))
	// The plan stops at the order of the first task that could not be placed: tasks of
	// that order still get their chance, later orders wait for the next round.
	stopOrder, stoppedBy := 0, ""
	stop := func(spec TaskSpec) {
		if stoppedBy == "" {
			stopOrder, stoppedBy = spec.Order, spec.Name
		}
	}

	for _, spec := range pending {
		if seen[spec.Name] {
			continue // one task per name; the first in plan order counts
		}
		seen[spec.Name] = true
		if stoppedBy != "" && spec.Order > stopOrder {
			unplaced[spec.Name] = "waiting for " + stoppedBy + " (earlier in the launch plan)"
			continue
		}
		err := ValidateTaskSpec(spec)
		var cs []compiledConstraint
		if err == nil {
			cs, err = compileConstraints(spec.Constraints)
		}
		if err != nil {
			unplaced[spec.Name] = "invalid task spec: " + err.Error()
			stop(spec)
			continue
		}
		idx := siblings.index(spec.Role, cs)
		need := needsOf(in.Framework, spec)
		var why misfits

		first, end := 0, len(states)
		if spec.Volume != nil {
			if i, ok := volumeAt[need.volumeID]; ok {
				// The data is there: that agent is the only right place for the task.
				first, end = i, i+1
			}
		}
		placed := false
		for i := first; i < end; i++ {
			s := states[i]
			if reason := need.fits(s); reason != "" {
				why.add(reason, nil)
				continue
			}
			if spec.HostExclusive != "" && in.Occupied[spec.HostExclusive][s.offer.GetHostname()] {
				why.add("host runs a "+spec.HostExclusive+" task of another cluster", nil)
				continue
			}
			if ok, c := allowAll(cs, s.facts(), idx); !ok {
				why.add("", c)
				continue
			}
			launched, launch, ops := place(in, spec, need, s)
			if accepts[i] == nil {
				accepts[i] = &offerAccept{OfferID: s.offer.ID, AgentID: s.offer.AgentID}
			}
			accepts[i].Operations = append(accepts[i].Operations, ops...)
			accepts[i].Launched = append(accepts[i].Launched, launched)
			if launch.Type == mesos.Offer_Operation_LAUNCH {
				launches[i] = append(launches[i], launch.Launch.TaskInfos...)
			} else {
				groups[i] = append(groups[i], launch)
			}
			siblings.add(spec.Role, s.facts())
			placed = true
			break
		}
		if !placed {
			unplaced[spec.Name] = why.String(end - first)
			stop(spec)
		}
	}

	var res matchResult
	res.Unplaced = unplaced
	for i, a := range accepts {
		if a == nil {
			res.Declines = append(res.Declines, offers[i].ID)
			continue
		}
		if len(launches[i]) > 0 {
			a.Operations = append(a.Operations, mesos.Offer_Operation{
				Type:   mesos.Offer_Operation_LAUNCH,
				Launch: &mesos.Offer_Operation_Launch{TaskInfos: launches[i]},
			})
		}
		a.Operations = append(a.Operations, groups[i]...)
		res.Accepts = append(res.Accepts, *a)
	}
	return res
}

// taskNeeds is a TaskSpec reduced to what fitting an offer looks at.
type taskNeeds struct {
	cpus, mem, disk float64
	// executorCPUs, executorMem, executorDisk are the default executor's share of a task group.
	executorCPUs, executorMem, executorDisk float64
	ports                                   int
	volumeID                                string  // persistence ID of the task's volume, "" without one
	volumeMiB                               float64 // size of a volume to create when the offer does not hold it
	pinnedAgent                             string
}

func needsOf(fw FrameworkConfig, spec TaskSpec) taskNeeds {
	n := taskNeeds{
		cpus:  roundScalar(spec.Resources.CPUs),
		mem:   roundScalar(spec.Resources.MemMiB),
		disk:  roundScalar(spec.Resources.DiskMiB),
		ports: len(spec.Ports),
	}
	if inTaskGroup(spec) {
		n.executorCPUs, n.executorMem, n.executorDisk = executorCPUs, executorMemMiB, executorDiskMiB
	}
	if spec.Volume != nil {
		n.volumeID = persistenceID(fw.ClusterUID, spec.Name)
		n.volumeMiB = roundScalar(spec.Volume.SizeMiB)
		n.pinnedAgent = spec.Volume.AgentID
	}
	return n
}

// persistenceID names a task's volume: stable across relaunches of the same task name,
// distinct between clusters and between incarnations of a cluster.
func persistenceID(clusterUID, taskName string) string {
	return "mesosk3s-" + clusterUID + "-" + taskName
}

// fits checks resources, ports and volume placement and says what is missing, "" when
// nothing is; constraints come after because they are the dearer check.
func (n taskNeeds) fits(s *offerState) string {
	if n.pinnedAgent != "" && s.offer.AgentID.Value != n.pinnedAgent {
		return "volume is on another agent"
	}
	if n.cpus+n.executorCPUs > s.cpusLeft+scalarEpsilon {
		return "not enough cpus"
	}
	if n.mem+n.executorMem > s.memLeft+scalarEpsilon {
		return "not enough mem"
	}
	if uint64(n.ports) > s.portsLeft || !portRunFits(s.ports, n.ports) {
		return "not enough consecutive ports"
	}
	disk := n.disk + n.executorDisk
	if n.volumeID != "" && s.volume[n.volumeID] == nil {
		if volumePool(s.disk, n.volumeMiB) < 0 {
			return "no disk for the volume"
		}
		disk += n.volumeMiB
	}
	if disk > s.diskLeft+scalarEpsilon {
		return "not enough disk"
	}
	return ""
}

// volumePool is the index of the first disk pool (reserved for the role first) that can
// hold a new volume whole, or -1. A volume cannot span two resources.
func volumePool(pools []scalarPool, size float64) int {
	for i, p := range pools {
		if p.left+scalarEpsilon >= size {
			return i
		}
	}
	return -1
}

// place carves the task's resources out of the offer and returns the launched task, its
// TaskInfo and the RESERVE/CREATE operations its volume needs.
func place(in matchInput, spec TaskSpec, need taskNeeds, s *offerState) (launchedTask, mesos.Offer_Operation, []mesos.Offer_Operation) {
	fw := in.Framework
	var ops []mesos.Offer_Operation
	var resources []mesos.Resource
	volumePath := ""

	if need.volumeID != "" {
		if vol := s.volume[need.volumeID]; vol != nil {
			resources = append(resources, *vol)
			volumePath = vol.GetDisk().GetVolume().GetContainerPath()
			delete(s.volume, need.volumeID) // one task per volume
		} else {
			pool := &s.disk[volumePool(s.disk, need.volumeMiB)]
			disk := scalarLike(pool.res, need.volumeMiB)
			pool.left = roundScalar(pool.left - need.volumeMiB)
			s.diskLeft = roundScalar(s.diskLeft - need.volumeMiB)
			if reservationRole(&disk) == "" {
				disk = reserved(disk, fw, spec.Name)
				ops = append(ops, mesos.Offer_Operation{
					Type:    mesos.Offer_Operation_RESERVE,
					Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{disk}},
				})
			}
			volume := withVolume(disk, need.volumeID, spec.Volume.ContainerPath, fw.Principal)
			ops = append(ops, mesos.Offer_Operation{
				Type:   mesos.Offer_Operation_CREATE,
				Create: &mesos.Offer_Operation_Create{Volumes: []mesos.Resource{volume}},
			})
			resources = append(resources, volume)
			volumePath = spec.Volume.ContainerPath
		}
	}

	resources = append(resources, takeScalar(s.cpus, need.cpus)...)
	resources = append(resources, takeScalar(s.mem, need.mem)...)
	if need.disk > 0 {
		resources = append(resources, takeScalar(s.disk, need.disk)...)
	}
	s.cpusLeft = roundScalar(s.cpusLeft - need.cpus)
	s.memLeft = roundScalar(s.memLeft - need.mem)
	s.diskLeft = roundScalar(s.diskLeft - need.disk)
	ports, portResources := takePorts(s.ports, spec.Ports)
	s.portsLeft -= uint64(need.ports)
	resources = append(resources, portResources...)
	var executorResources []mesos.Resource
	if need.executorCPUs > 0 || need.executorMem > 0 || need.executorDisk > 0 {
		executorResources = append(takeScalar(s.cpus, need.executorCPUs), takeScalar(s.mem, need.executorMem)...)
		executorResources = append(executorResources, takeScalar(s.disk, need.executorDisk)...)
		s.cpusLeft = roundScalar(s.cpusLeft - need.executorCPUs)
		s.memLeft = roundScalar(s.memLeft - need.executorMem)
		s.diskLeft = roundScalar(s.diskLeft - need.executorDisk)
	}

	p := placement{
		TaskID:     in.NewTaskID(spec.Name),
		AgentID:    s.offer.AgentID.Value,
		Hostname:   s.offer.Hostname,
		Resources:  resources,
		Ports:      ports,
		VolumePath: volumePath,
	}
	info := taskInfoFor(fw, spec, p) // the spec was validated before matching
	return launchedTask{
		Name: spec.Name, TaskID: p.TaskID, Role: spec.Role, Index: spec.Index, SpecHash: spec.SpecHash,
		AgentID: p.AgentID, Hostname: p.Hostname, Ports: ports,
	}, launchOperation(fw, spec, info, executorResources), ops
}

// reserved turns unreserved disk into disk dynamically reserved for the framework's role,
// labelled with the cluster and task so an operator can tell what holds it. It uses the
// pre-refinement format (role + reservation) because the framework does not declare the
// RESERVATION_REFINEMENT capability, and Mesos then speaks that format both ways.
func reserved(r mesos.Resource, fw FrameworkConfig, taskName string) mesos.Resource {
	r.Role = ptr(fw.Role)
	info := &mesos.Resource_ReservationInfo{
		Labels: mesosLabels(map[string]string{LabelClusterUID: fw.ClusterUID, LabelTaskName: taskName}),
	}
	if fw.Principal != "" {
		info.Principal = ptr(fw.Principal)
	}
	r.Reservation = info
	r.Reservations = nil
	return r
}

// withVolume makes reserved disk into a persistent volume mounted read-write at path.
func withVolume(r mesos.Resource, id, path, principal string) mesos.Resource {
	persistence := &mesos.Resource_DiskInfo_Persistence{ID: id}
	if principal != "" {
		persistence.Principal = ptr(principal)
	}
	r.Disk = &mesos.Resource_DiskInfo{
		Persistence: persistence,
		Volume:      &mesos.Volume{ContainerPath: path, Mode: mesos.RW.Enum()},
	}
	return r
}

// misfits counts why a task did not fit the offers of a round. Constraint misfits keep
// the constraint and are rendered only if the task stays unplaced, so rejecting an offer
// costs no allocation.
type misfits struct {
	reasons []misfit
	counts  []int
}

type misfit struct {
	reason     string
	constraint *compiledConstraint
}

func (m *misfits) add(reason string, c *compiledConstraint) {
	k := misfit{reason, c}
	for i, r := range m.reasons {
		if r == k {
			m.counts[i]++
			return
		}
	}
	m.reasons = append(m.reasons, k)
	m.counts = append(m.counts, 1)
}

func (m misfits) String(offers int) string {
	if offers == 0 {
		return "no offers"
	}
	parts := make([]string, len(m.reasons))
	for i, r := range m.reasons {
		reason := r.reason
		if r.constraint != nil {
			reason = "constraint " + r.constraint.String()
		}
		parts[i] = fmt.Sprintf("%s (%d)", reason, m.counts[i])
	}
	return fmt.Sprintf("no fitting offer among %d: %s", offers, strings.Join(parts, ", "))
}

// siblingTracker keeps, per role, the agents the role's tasks occupy and one index per
// distinct constraint field set, updated as the round places tasks.
type siblingTracker struct {
	agents  map[TaskRole][]agentFacts
	indexes map[TaskRole]siblingIndex
}

func newSiblingTracker(active []placedTask) *siblingTracker {
	t := &siblingTracker{agents: map[TaskRole][]agentFacts{}, indexes: map[TaskRole]siblingIndex{}}
	for _, a := range active {
		t.agents[a.Role] = append(t.agents[a.Role], agentFacts{hostname: a.Hostname, attributes: a.Attributes})
	}
	return t
}

// index returns the role's sibling index covering at least the fields cs look at.
func (t *siblingTracker) index(role TaskRole, cs []compiledConstraint) siblingIndex {
	idx := t.indexes[role]
	if idx == nil {
		idx = siblingIndex{}
		t.indexes[role] = idx
	}
	for _, c := range cs {
		if idx[c.Field] != nil {
			continue
		}
		values := siblingValues{}
		for _, a := range t.agents[role] {
			if v, ok := a.field(c.Field); ok {
				values[v]++
			}
		}
		idx[c.Field] = values
	}
	return idx
}

func (t *siblingTracker) add(role TaskRole, agent agentFacts) {
	t.agents[role] = append(t.agents[role], agent)
	if idx := t.indexes[role]; idx != nil {
		idx.add(agent)
	}
}
