package mesostest

import (
	"errors"
	"fmt"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// acceptLocked handles ACCEPT (Master::accept): the offers are validated,
// the operations applied in order against the offered resources, and what
// is left goes back to the agent under the call's filters.
func (s *Server) acceptLocked(fw *framework, acc *scheduler.Call_Accept) {
	offers, offerErr := s.validateOffersLocked(fw, acc.OfferIDs)
	if offerErr != nil {
		s.log.Info("accept with invalid offers", "frameworkID", fw.id, "error", offerErr.Error())
		for _, o := range offers {
			s.removeOfferLocked(o, false)
		}
		// Every task of the call is dropped (TASK_LOST for frameworks that
		// are not partition-aware).
		for _, op := range acc.Operations {
			for _, ti := range operationTasks(op) {
				s.masterUpdateLocked(fw, &ti, ti.AgentID.Value, mesos.TASK_DROPPED, mesos.REASON_INVALID_OFFERS,
					"Task launched with invalid offers: "+offerErr.Error())
			}
		}
		return
	}
	a, role := offers[0].agent, offers[0].role
	var available mesos.Resources
	for _, o := range offers {
		available.Add(o.resources...)
		delete(s.offers, o.id)
		delete(fw.offers, o.id)
		delete(a.offers, o.id)
	}
	for i := range acc.Operations {
		op := &acc.Operations[i]
		var err error
		switch op.Type {
		case mesos.Offer_Operation_LAUNCH:
			s.applyLaunchLocked(fw, a, role, op.Launch, &available)
		case mesos.Offer_Operation_LAUNCH_GROUP:
			s.applyLaunchGroupLocked(fw, a, role, op.LaunchGroup, &available)
		case mesos.Offer_Operation_RESERVE:
			err = s.applyReserveLocked(fw, a, role, op.Reserve, &available)
		case mesos.Offer_Operation_UNRESERVE:
			err = s.applyUnreserveLocked(a, role, op.Unreserve, &available)
		case mesos.Offer_Operation_CREATE:
			err = s.applyCreateLocked(fw, a, role, op.Create, &available)
		case mesos.Offer_Operation_DESTROY:
			err = s.applyDestroyLocked(a, role, op.Destroy, &available)
		default:
			err = fmt.Errorf("operation %s is not supported", op.Type.String())
		}
		if err != nil {
			// Mesos drops an invalid operation (with a warning) and carries on.
			s.log.Info("dropping invalid operation", "frameworkID", fw.id, "operation", op.Type.String(), "error", err.Error())
		}
	}
	// Unused resources are recovered with the call's filters (5s default).
	remaining := unallocated(available)
	a.free.Add(remaining...)
	s.addFilterLocked(fw, a, role, remaining, acc.Filters)
	s.triggerAllocation()
}

func operationTasks(op mesos.Offer_Operation) []mesos.TaskInfo {
	switch {
	case op.Type == mesos.Offer_Operation_LAUNCH && op.Launch != nil:
		return op.Launch.TaskInfos
	case op.Type == mesos.Offer_Operation_LAUNCH_GROUP && op.LaunchGroup != nil:
		return op.LaunchGroup.TaskGroup.Tasks
	}
	return nil
}

func (s *Server) validateOffersLocked(fw *framework, ids []mesos.OfferID) ([]*offer, error) {
	if len(ids) == 0 {
		return nil, errors.New("No offers specified")
	}
	var valid []*offer
	var firstErr error
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id.Value] {
			if firstErr == nil {
				firstErr = fmt.Errorf("Duplicate offer %s in ACCEPT call", id.Value)
			}
			continue
		}
		seen[id.Value] = true
		o := fw.offers[id.Value]
		if o == nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("Offer %s is no longer valid", id.Value)
			}
			continue
		}
		valid = append(valid, o)
	}
	if firstErr == nil {
		for _, o := range valid[1:] {
			if o.agent != valid[0].agent {
				firstErr = errors.New("Aggregated offers must belong to one single agent")
			} else if o.role != valid[0].role {
				firstErr = errors.New("Aggregated offers must be allocated to the same role")
			}
		}
	}
	return valid, firstErr
}

// prepareResources normalizes resources named by an operation and tags
// them with the offer's allocation role (the master injects it for
// frameworks that are not MULTI_ROLE).
func prepareResources(rs []mesos.Resource, role string) (mesos.Resources, error) {
	norm, err := normalizeIncoming(rs)
	if err != nil {
		return nil, err
	}
	for i := range norm {
		if norm[i].AllocationInfo == nil {
			r := role
			norm[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &r}
		} else if norm[i].AllocationInfo.GetRole() != role {
			return nil, fmt.Errorf("resource %s is allocated to role '%s', not to the offer's role '%s'",
				norm[i].Name, norm[i].AllocationInfo.GetRole(), role)
		}
	}
	return norm, nil
}

func (s *Server) applyLaunchLocked(fw *framework, a *agent, role string, launch *mesos.Offer_Operation_Launch, available *mesos.Resources) {
	if launch == nil {
		return
	}
	for i := range launch.TaskInfos {
		info := *proto.Clone(&launch.TaskInfos[i]).(*mesos.TaskInfo)
		// The master fills in what older schedulers leave out
		// (Master::accept): the executor's framework ID and the type of
		// an untyped health check.
		if info.Executor != nil && info.Executor.FrameworkID == nil {
			info.Executor.FrameworkID = &mesos.FrameworkID{Value: fw.id}
		}
		adaptHealthCheckType(info.HealthCheck)
		rs, err := s.validateLaunchTaskLocked(fw, a, role, &info, *available)
		if err != nil {
			s.masterUpdateLocked(fw, &info, a.id, mesos.TASK_ERROR, mesos.REASON_TASK_INVALID, err.Error())
			continue
		}
		available.Subtract(rs...)
		info.Resources = rs
		s.launchTaskLocked(fw, a, info, role, nil)
	}
}

// validateLaunchTaskLocked is validation::task::validate for a LAUNCH
// task; it returns the task's resources (with its custom executor's, when
// that executor is not running yet) as the master accounts them.
func (s *Server) validateLaunchTaskLocked(fw *framework, a *agent, role string, info *mesos.TaskInfo, available mesos.Resources) (mesos.Resources, error) {
	if err := s.validateTaskFields(fw, a, info); err != nil {
		return nil, err
	}
	if (info.Command == nil) == (info.Executor == nil) {
		return nil, errors.New("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present")
	}
	rs, err := prepareResources(info.Resources, role)
	if err != nil {
		return nil, fmt.Errorf("Task uses invalid resources: %v", err)
	}
	if e := info.Executor; e != nil {
		if err := s.validateExecutorInfo(fw, a, e); err != nil {
			return nil, err
		}
		if e.Type != mesos.ExecutorInfo_UNKNOWN && e.Type != mesos.ExecutorInfo_CUSTOM {
			return nil, errors.New("'ExecutorInfo.type' must be 'CUSTOM'")
		}
		if e.Command == nil {
			return nil, errors.New("'ExecutorInfo.command' must be set")
		}
		if s.runningExecutorLocked(fw, a, e.ExecutorID.Value) == nil {
			ers, err := prepareResources(e.Resources, role)
			if err != nil {
				return nil, fmt.Errorf("Executor uses invalid resources: %v", err)
			}
			rs.Add(ers...)
		}
	}
	if info.Container != nil && info.Container.LinuxInfo != nil && info.Container.LinuxInfo.ShareCgroups != nil &&
		!info.Container.LinuxInfo.GetShareCgroups() {
		return nil, errors.New("Only tasks in a task group may have 'share_cgroups' set to 'false'")
	}
	if !contains(available, rs) {
		return nil, fmt.Errorf("Total resources %s required by task and its executor is more than available %s", rs.String(), available.String())
	}
	return rs, nil
}

func (s *Server) applyLaunchGroupLocked(fw *framework, a *agent, role string, lg *mesos.Offer_Operation_LaunchGroup, available *mesos.Resources) {
	if lg == nil || len(lg.TaskGroup.Tasks) == 0 {
		return // no task to launch, nor to report an error for
	}
	infos := make([]mesos.TaskInfo, len(lg.TaskGroup.Tasks))
	for i := range lg.TaskGroup.Tasks {
		infos[i] = *proto.Clone(&lg.TaskGroup.Tasks[i]).(*mesos.TaskInfo)
	}
	fail := func(err error) {
		for i := range infos {
			s.masterUpdateLocked(fw, &infos[i], a.id, mesos.TASK_ERROR, mesos.REASON_TASK_GROUP_INVALID, err.Error())
		}
	}
	exec := *proto.Clone(&lg.Executor).(*mesos.ExecutorInfo)
	ids := map[string]bool{}
	for i := range infos {
		info := &infos[i]
		adaptHealthCheckType(info.HealthCheck)
		if err := s.validateGroupTaskLocked(fw, a, info); err != nil {
			fail(groupTaskError(info, err))
			return
		}
		if ids[info.TaskID.Value] {
			fail(groupTaskError(info, fmt.Errorf("Task has duplicate ID: %s", info.TaskID.Value)))
			return
		}
		ids[info.TaskID.Value] = true
	}
	if err := s.validateGroupExecutor(fw, a, &exec, infos); err != nil {
		fail(err)
		return
	}
	// A running executor of the same ID takes the new tasks (its
	// resources are already accounted for); otherwise the executor's
	// resources come from the offer too.
	var group *taskGroup
	for t := range a.tasks {
		if t.fw == fw && t.group != nil && t.group.executorID == exec.ExecutorID.Value && !t.group.released {
			group = t.group
		}
	}
	var total, execResources mesos.Resources
	if group == nil {
		rs, err := prepareResources(exec.Resources, role)
		if err != nil {
			fail(fmt.Errorf("Executor uses invalid resources: %v", err))
			return
		}
		execResources = rs
		total.Add(rs...)
	}
	taskResources := make([]mesos.Resources, len(infos))
	for i := range infos {
		rs, err := prepareResources(infos[i].Resources, role)
		if err != nil {
			fail(groupTaskError(&infos[i], fmt.Errorf("Task uses invalid resources: %v", err)))
			return
		}
		taskResources[i] = rs
		total.Add(rs...)
	}
	if !contains(*available, total) {
		fail(fmt.Errorf("Total resources %s required by task group and its executor are more than available %s",
			total.String(), available.String()))
		return
	}
	available.Subtract(total...)
	if group == nil {
		group = &taskGroup{executorID: exec.ExecutorID.Value, info: exec, resources: execResources, containerID: newContainerID()}
	}
	for i := range infos {
		// The master records the executor in each task of the group.
		if infos[i].Executor == nil {
			infos[i].Executor = proto.Clone(&exec).(*mesos.ExecutorInfo)
		}
		infos[i].Resources = taskResources[i]
		s.launchTaskLocked(fw, a, infos[i], role, group)
	}
}

// validateGroupTaskLocked is validation::task::group::internal::validateTask
// (the executor is the group's, injected by the master).
func (s *Server) validateGroupTaskLocked(fw *framework, a *agent, info *mesos.TaskInfo) error {
	if err := s.validateTaskFields(fw, a, info); err != nil {
		return err
	}
	if c := info.Container; c != nil {
		if len(c.NetworkInfos) > 0 && info.HealthCheck != nil &&
			(info.HealthCheck.Type == mesos.HealthCheck_HTTP || info.HealthCheck.Type == mesos.HealthCheck_TCP) {
			return errors.New("HTTP and TCP health checks are not supported for nested containers not joining parent's network")
		}
		if c.GetType() == mesos.ContainerInfo_DOCKER {
			return errors.New("Docker ContainerInfo is not supported on the task")
		}
	}
	return nil
}
func (s *Server) applyReserveLocked(fw *framework, a *agent, role string, op *mesos.Offer_Operation_Reserve, available *mesos.Resources) error {
	if op == nil || len(op.Resources) == 0 {
		return errors.New("Invalid RESERVE Operation: no resources")
	}
	reserved, err := prepareResources(op.Resources, role)
	if err != nil {
		return err
	}
	for _, r := range reserved {
		if r.IsUnreserved() || r.Reservation == nil {
			return errors.New("Invalid RESERVE Operation: resources must be dynamically reserved")
		}
		if r.GetRole() != role {
			return fmt.Errorf("Invalid RESERVE Operation: the reserved role '%s' does not match the allocated role '%s'", r.GetRole(), role)
		}
		if p := r.Reservation.Principal; p != nil && fw.info.Principal != nil && *p != fw.info.GetPrincipal() {
			return fmt.Errorf("Invalid RESERVE Operation: principal '%s' does not match the framework's principal '%s'", *p, fw.info.GetPrincipal())
		}
		if r.IsPersistentVolume() {
			return errors.New("Invalid RESERVE Operation: a persistent volume cannot be reserved")
		}
	}
	source := asUnreserved(reserved)
	if !contains(*available, source) {
		return fmt.Errorf("Invalid RESERVE Operation: %s is not available in %s", source.String(), available.String())
	}
	available.Subtract(source...)
	available.Add(reserved...)
	a.total.Subtract(unallocated(source)...)
	a.total.Add(unallocated(reserved)...)
	s.log.Info("resources reserved", "frameworkID", fw.id, "agent", a.hostname, "role", role, "resources", unallocated(reserved).String())
	return nil
}

func (s *Server) applyUnreserveLocked(a *agent, role string, op *mesos.Offer_Operation_Unreserve, available *mesos.Resources) error {
	if op == nil || len(op.Resources) == 0 {
		return errors.New("Invalid UNRESERVE Operation: no resources")
	}
	reserved, err := prepareResources(op.Resources, role)
	if err != nil {
		return err
	}
	for _, r := range reserved {
		if r.Reservation == nil {
			return errors.New("Invalid UNRESERVE Operation: resources are not dynamically reserved")
		}
		if r.IsPersistentVolume() {
			return errors.New("Invalid UNRESERVE Operation: a persistent volume cannot be unreserved; destroy it first")
		}
	}
	if !contains(*available, reserved) {
		return fmt.Errorf("Invalid UNRESERVE Operation: %s is not available in %s", reserved.String(), available.String())
	}
	unreserved := asUnreserved(reserved)
	available.Subtract(reserved...)
	available.Add(unreserved...)
	a.total.Subtract(unallocated(reserved)...)
	a.total.Add(unallocated(unreserved)...)
	s.log.Info("resources unreserved", "agent", a.hostname, "role", role, "resources", unallocated(reserved).String())
	return nil
}

func (s *Server) applyCreateLocked(fw *framework, a *agent, role string, op *mesos.Offer_Operation_Create, available *mesos.Resources) error {
	if op == nil || len(op.Volumes) == 0 {
		return errors.New("Invalid CREATE Operation: no volumes")
	}
	volumes, err := prepareResources(op.Volumes, role)
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, v := range volumes {
		if v.Name != "disk" || v.Disk == nil || v.Disk.Persistence == nil || v.Disk.Persistence.ID == "" {
			return errors.New("Invalid CREATE Operation: volumes must be disk resources with a persistence ID")
		}
		if v.Disk.Volume == nil || v.Disk.Volume.ContainerPath == "" {
			return errors.New("Invalid CREATE Operation: expecting 'volume' with a container path")
		}
		if v.IsUnreserved() {
			return errors.New("Invalid CREATE Operation: persistent volumes cannot be created from unreserved resources")
		}
		if p := v.Disk.Persistence.Principal; p != nil && fw.info.Principal != nil && *p != fw.info.GetPrincipal() {
			return fmt.Errorf("Invalid CREATE Operation: principal '%s' does not match the framework's principal", *p)
		}
		id := v.Disk.Persistence.ID
		if ids[id] || agentHasVolume(a, v.GetRole(), id) {
			return fmt.Errorf("Invalid CREATE Operation: persistence ID '%s' is already in use", id)
		}
		ids[id] = true
	}
	plain := withoutDiskInfo(volumes)
	if !contains(*available, plain) {
		return fmt.Errorf("Invalid CREATE Operation: %s is not available in %s", plain.String(), available.String())
	}
	available.Subtract(plain...)
	available.Add(volumes...)
	a.total.Subtract(unallocated(plain)...)
	a.total.Add(unallocated(volumes)...)
	for _, v := range volumes {
		s.createVolumeDir(v.GetRole(), v.Disk.Persistence.ID)
		s.log.Info("persistent volume created", "agent", a.hostname, "role", v.GetRole(), "persistenceID", v.Disk.Persistence.ID,
			"path", s.persistentVolumePath(v.GetRole(), v.Disk.Persistence.ID))
	}
	return nil
}

func (s *Server) applyDestroyLocked(a *agent, role string, op *mesos.Offer_Operation_Destroy, available *mesos.Resources) error {
	if op == nil || len(op.Volumes) == 0 {
		return errors.New("Invalid DESTROY Operation: no volumes")
	}
	volumes, err := prepareResources(op.Volumes, role)
	if err != nil {
		return err
	}
	for _, v := range volumes {
		if !v.IsPersistentVolume() {
			return errors.New("Invalid DESTROY Operation: only persistent volumes can be destroyed")
		}
	}
	if !contains(*available, volumes) {
		// A volume in use by a task is not offered, so it cannot be destroyed.
		return fmt.Errorf("Invalid DESTROY Operation: %s is not available (in use or unknown)", volumes.String())
	}
	plain := withoutDiskInfo(volumes)
	available.Subtract(volumes...)
	available.Add(plain...)
	a.total.Subtract(unallocated(volumes)...)
	a.total.Add(unallocated(plain)...)
	for _, v := range volumes {
		s.removeVolumeDir(v.GetRole(), v.Disk.Persistence.ID)
		s.log.Info("persistent volume destroyed", "agent", a.hostname, "role", v.GetRole(), "persistenceID", v.Disk.Persistence.ID)
	}
	return nil
}

func agentHasVolume(a *agent, role, id string) bool {
	for _, r := range a.total {
		if r.IsPersistentVolume() && r.GetRole() == role && r.Disk.Persistence.ID == id {
			return true
		}
	}
	return false
}

// asUnreserved drops role and reservation (keeping allocation info).
func asUnreserved(rs mesos.Resources) mesos.Resources {
	out := cloneResources(rs)
	star := "*"
	for i := range out {
		out[i].Role = &star
		out[i].Reservation = nil
		out[i].Reservations = nil
	}
	return out
}

// withoutDiskInfo turns volumes back into the reserved disk they use.
func withoutDiskInfo(rs mesos.Resources) mesos.Resources {
	out := cloneResources(rs)
	for i := range out {
		out[i].Disk = nil
	}
	return out
}
