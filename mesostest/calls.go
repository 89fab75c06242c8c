package mesostest

import (
	"fmt"
	"net/http"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// dispatchLocked applies a validated call from a subscribed framework. Like
// the master, it answers 202 for calls whose effects are asynchronous even
// when they turn out to be no-ops (unknown offers, tasks or UUIDs).
func (s *Server) dispatchLocked(fw *framework, call *scheduler.Call, enc eventEncoding) (int, string, []byte) {
	s.log.V(1).Info("call", "frameworkID", fw.id, "type", call.Type.String())
	switch call.Type {
	case scheduler.Call_TEARDOWN:
		s.removeFrameworkLocked(fw, "TEARDOWN")
	case scheduler.Call_ACCEPT:
		s.acceptSafelyLocked(fw, call.Accept)
	case scheduler.Call_DECLINE:
		s.declineLocked(fw, call.Decline)
	case scheduler.Call_ACCEPT_INVERSE_OFFERS, scheduler.Call_DECLINE_INVERSE_OFFERS:
		// The emulator has no maintenance schedules, so no inverse offers
		// exist; the master ignores unknown inverse offers.
	case scheduler.Call_REVIVE:
		if err := s.reviveLocked(fw, call.Revive.GetRoles()); err != nil {
			s.log.Info("ignoring REVIVE", "frameworkID", fw.id, "error", err.Error())
		}
	case scheduler.Call_SUPPRESS:
		if err := s.suppressLocked(fw, call.Suppress.GetRoles()); err != nil {
			s.log.Info("ignoring SUPPRESS", "frameworkID", fw.id, "error", err.Error())
		}
	case scheduler.Call_KILL:
		s.killLocked(fw, call.Kill)
	case scheduler.Call_SHUTDOWN:
		s.shutdownLocked(fw, call.Shutdown)
	case scheduler.Call_ACKNOWLEDGE:
		s.acknowledgeLocked(fw, call.Acknowledge)
	case scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS:
		// Operations carry no IDs in the emulator, so there is never an
		// operation status to acknowledge.
	case scheduler.Call_RECONCILE:
		s.reconcileLocked(fw, call.Reconcile)
	case scheduler.Call_RECONCILE_OPERATIONS:
		return s.reconcileOperationsLocked(fw, call.ReconcileOperations, enc)
	case scheduler.Call_MESSAGE:
		s.messageLocked(fw, call.Message)
	case scheduler.Call_REQUEST:
		// The allocator ignores resource requests (as Mesos' does).
	case scheduler.Call_UPDATE_FRAMEWORK:
		return s.updateFrameworkLocked(fw, call.UpdateFramework)
	default:
		return http.StatusNotImplemented, "Not implemented", nil
	}
	return http.StatusAccepted, "", nil
}

// acceptSafelyLocked keeps a malformed operation from taking the emulator
// down: the resource arithmetic of mesos-go panics on some inconsistent
// inputs that validation cannot rule out up front.
func (s *Server) acceptSafelyLocked(fw *framework, acc *scheduler.Call_Accept) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error(fmt.Errorf("%v", r), "ACCEPT could not be applied", "frameworkID", fw.id)
		}
	}()
	s.acceptLocked(fw, acc)
}

func (s *Server) messageLocked(fw *framework, m *scheduler.Call_Message) {
	for _, t := range fw.tasks {
		if t.executorID == m.ExecutorID.Value && t.agent.id == m.AgentID.Value {
			// The command and default executors ignore framework messages.
			s.log.Info("framework message delivered to executor", "frameworkID", fw.id,
				"executorID", m.ExecutorID.Value, "bytes", len(m.Data))
			return
		}
	}
	s.log.Info("dropping framework message for unknown executor", "frameworkID", fw.id, "executorID", m.ExecutorID.Value)
}

// reconcileOperationsLocked answers RECONCILE_OPERATIONS synchronously.
// Operations applied by the emulator have no IDs, so every operation asked
// about is unknown.
func (s *Server) reconcileOperationsLocked(fw *framework, r *scheduler.Call_ReconcileOperations, enc eventEncoding) (int, string, []byte) {
	resp := &scheduler.Response{
		Type:                scheduler.Response_RECONCILE_OPERATIONS,
		ReconcileOperations: &scheduler.Response_ReconcileOperations{},
	}
	for _, op := range r.Operations {
		id := op.OperationID
		state := mesos.OPERATION_UNKNOWN
		resp.ReconcileOperations.OperationStatuses = append(resp.ReconcileOperations.OperationStatuses,
			mesos.OperationStatus{OperationID: &id, State: state, AgentID: op.AgentID})
	}
	var body []byte
	var err error
	if enc == mediaProtobuf {
		body, err = resp.Marshal()
	} else {
		body, err = jsonMarshal(resp)
	}
	if err != nil {
		return http.StatusInternalServerError, err.Error(), nil
	}
	return http.StatusOK, "", body
}

// updateFrameworkLocked handles UPDATE_FRAMEWORK: roles, capabilities,
// failover timeout and suppressed roles may change; the principal may not.
func (s *Server) updateFrameworkLocked(fw *framework, u *scheduler.Call_UpdateFramework) (int, string, []byte) {
	info := proto.Clone(&u.FrameworkInfo).(*mesos.FrameworkInfo)
	if info.Principal == nil {
		info.Principal = fw.info.Principal
	}
	if err := s.validateFrameworkInfoLocked(info); err != nil {
		return http.StatusBadRequest, err.Error(), nil
	}
	if info.GetPrincipal() != fw.info.GetPrincipal() {
		return http.StatusBadRequest, "Changing framework's principal is not allowed", nil
	}
	multiRole := infoHasCapability(info, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	roles := frameworkRoles(info, multiRole)
	for _, r := range u.SuppressedRoles {
		if !containsString(roles, r) {
			return http.StatusBadRequest, fmt.Sprintf("Suppressed role '%s' is not contained in the list of roles", r), nil
		}
	}
	fw.applyInfo(info, roles, multiRole, u.SuppressedRoles)
	// Offers for roles the framework dropped are rescinded.
	for _, o := range fw.offers {
		if !containsString(roles, o.role) {
			s.removeOfferLocked(o, true)
		}
	}
	s.log.Info("framework updated", "frameworkID", fw.id, "roles", roles)
	s.triggerAllocation()
	return http.StatusOK, "", nil
}
