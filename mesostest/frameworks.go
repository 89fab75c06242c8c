package mesostest

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// framework is a registered scheduler.
type framework struct {
	id    string
	info  mesos.FrameworkInfo
	roles []string

	partitionAware bool
	killingState   bool
	multiRole      bool

	// stream is the current subscription; nil while disconnected (the
	// framework then waits out its failover timeout).
	stream     *stream
	suppressed map[string]bool
	filters    map[filterKey][]offerFilter
	offers     map[string]*offer

	tasks       map[string]*task // launched and not yet removed
	unreachable map[string]*task // tasks on unreachable agents
	completed   []*task          // bounded history, oldest first

	// registered: the (current) master knows the framework; after a master
	// restart it does once the scheduler resubscribes or an agent running
	// its tasks reregisters.
	registered       bool
	registeredTime   time.Time
	reregisteredTime time.Time
	unregisteredTime time.Time
	failoverTimer    *time.Timer
}

func (fw *framework) hasCapability(c mesos.FrameworkInfo_Capability_Type) bool {
	return infoHasCapability(&fw.info, c)
}

// send queues an event on the framework's stream; events for a
// disconnected framework are dropped, as the master does.
func (fw *framework) send(ev *scheduler.Event) bool {
	if fw.stream == nil {
		return false
	}
	return fw.stream.send(ev)
}

var roleNamePattern = regexp.MustCompile(`^[^/\s\x00-\x1f\x7f]+(/[^/\s\x00-\x1f\x7f]+)*$`)

// validateRole mirrors roles::validate: no empty name, ".", "..", leading
// "-", whitespace, control characters or empty path components.
func validateRole(role string) error {
	if role == "*" {
		return nil
	}
	if role == "" {
		return fmt.Errorf("Empty role name is invalid")
	}
	if !roleNamePattern.MatchString(role) || strings.Contains(role, "*") {
		return fmt.Errorf("Role '%s' contains invalid characters", role)
	}
	for _, part := range strings.Split(role, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") {
			return fmt.Errorf("Role '%s' cannot contain '.', '..' or start with '-'", role)
		}
	}
	return nil
}

// validateFrameworkInfo mirrors validation::framework::validate plus the
// master's own checks in validateFramework.
func (s *Server) validateFrameworkInfoLocked(info *mesos.FrameworkInfo) error {
	if infoHasCapability(info, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
		if info.Role != nil {
			return fmt.Errorf("'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable")
		}
		seen := map[string]bool{}
		for _, r := range info.Roles {
			if seen[r] {
				return fmt.Errorf("'FrameworkInfo.roles' contains duplicate items: {%s}", r)
			}
			seen[r] = true
			if err := validateRole(r); err != nil {
				return fmt.Errorf("'FrameworkInfo.roles' contains invalid role: %v", err)
			}
		}
	} else {
		if len(info.Roles) > 0 {
			return fmt.Errorf("'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable")
		}
		if err := validateRole(info.GetRole()); err != nil {
			return fmt.Errorf("'FrameworkInfo.role' is not a valid role: %v", err)
		}
	}
	if id := info.GetID().GetValue(); id != "" {
		if strings.ContainsAny(id, "/\\ \t\n") || id == "." || id == ".." {
			return fmt.Errorf("'%s' contains invalid characters", id)
		}
	}
	if ft := info.GetFailoverTimeout(); math.IsNaN(ft) || math.IsInf(ft, 0) || ft < 0 || ft > float64(math.MaxInt64)/1e9 {
		return fmt.Errorf("The framework failover_timeout (%v) is invalid", ft)
	}
	if id := info.GetID().GetValue(); id != "" && s.isCompletedFrameworkLocked(id) {
		return fmt.Errorf("Framework has been removed")
	}
	return nil
}

func frameworkRoles(info *mesos.FrameworkInfo, multiRole bool) []string {
	if multiRole {
		return append([]string(nil), info.Roles...)
	}
	return []string{info.GetRole()}
}

func (s *Server) isCompletedFrameworkLocked(id string) bool {
	for _, fw := range s.completedFrameworks {
		if fw.id == id {
			return true
		}
	}
	return false
}

// subscribeLocked handles a SUBSCRIBE on stream st. A refused subscription
// gets an ERROR event and the stream is closed; nil is returned.
func (s *Server) subscribeLocked(sub *scheduler.Call_Subscribe, principal string, st *stream) *framework {
	info := proto.Clone(sub.FrameworkInfo).(*mesos.FrameworkInfo)
	if principal != "" && info.Principal == nil {
		info.Principal = proto.String(principal)
	}
	refuse := func(msg string) *framework {
		s.log.Info("refusing subscription", "framework", info.Name, "reason", msg)
		st.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: msg}})
		st.close()
		return nil
	}
	if err := s.validateFrameworkInfoLocked(info); err != nil {
		return refuse(err.Error())
	}
	multiRole := infoHasCapability(info, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	roles := frameworkRoles(info, multiRole)
	for _, r := range sub.SuppressedRoles {
		if !containsString(roles, r) {
			return refuse(fmt.Sprintf("Suppressed role '%s' is not contained in the list of roles", r))
		}
	}

	now := time.Now()
	var fw *framework
	if id := info.GetID().GetValue(); id != "" {
		fw = s.frameworks[id]
		if fw != nil && fw.info.GetPrincipal() != info.GetPrincipal() {
			return refuse(fmt.Sprintf("Changing framework's principal is not allowed (from '%s' to '%s')",
				fw.info.GetPrincipal(), info.GetPrincipal()))
		}
	}
	if fw == nil {
		if info.GetID().GetValue() == "" {
			info.ID = &mesos.FrameworkID{Value: fmt.Sprintf("%s-%04d", s.masterID, s.nextFramework)}
			s.nextFramework++
		}
		// A framework ID the master does not know (but has not removed) is
		// re-admitted with that ID, as after a master failover.
		fw = &framework{
			id:             info.GetID().GetValue(),
			filters:        map[filterKey][]offerFilter{},
			offers:         map[string]*offer{},
			tasks:          map[string]*task{},
			unreachable:    map[string]*task{},
			registeredTime: now,
		}
		fw.registered = true
		s.frameworks[fw.id] = fw
		s.log.Info("framework subscribed", "frameworkID", fw.id, "name", info.Name, "roles", roles)
	} else {
		if !fw.registered {
			// Unknown to this master (it restarted or took over): admitted
			// again with its ID, its tasks where its agents reregistered.
			fw.registered = true
			fw.registeredTime = now
		}
		fw.reregisteredTime = now
		s.stopTimerLocked(fw.failoverTimer)
		fw.failoverTimer = nil
		if fw.stream != nil {
			// Always fail over the old connection (MESOS-4712).
			old := fw.stream
			fw.stream = nil
			old.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework failed over"}})
			old.close()
		}
		s.removeFrameworkOffersLocked(fw, false)
		s.log.Info("framework resubscribed", "frameworkID", fw.id, "name", info.Name, "roles", roles)
	}
	fw.applyInfo(info, roles, multiRole, sub.SuppressedRoles)
	fw.stream = st

	interval := s.opts.HeartbeatInterval.Seconds()
	fw.send(&scheduler.Event{
		Type: scheduler.Event_SUBSCRIBED,
		Subscribed: &scheduler.Event_Subscribed{
			FrameworkID:              &mesos.FrameworkID{Value: fw.id},
			HeartbeatIntervalSeconds: &interval,
			MasterInfo:               s.masterInfoLocked(),
		},
	})
	// The master's heartbeater sends its first HEARTBEAT right away.
	fw.send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT})
	// Agents resend pending status updates at once when a framework
	// (re)subscribes (Slave::updateFramework resumes the update manager).
	for _, t := range sortedTasks(fw.tasks) {
		s.resendPendingUpdateLocked(t)
	}
	s.triggerAllocation()
	return fw
}

// streamEndedLocked is called when a subscription's HTTP response ends.
// If that stream was the framework's current one, the framework is
// disconnected: its offers are withdrawn and its failover timeout starts.
func (s *Server) streamEndedLocked(fw *framework, st *stream) {
	if fw.stream != st || s.closed {
		return
	}
	s.disconnectLocked(fw, "stream closed")
}

func (s *Server) disconnectLocked(fw *framework, why string) {
	if fw.stream != nil {
		fw.stream.close()
		fw.stream = nil
	}
	fw.unregisteredTime = time.Now()
	s.removeFrameworkOffersLocked(fw, false)
	timeout := time.Duration(fw.info.GetFailoverTimeout() * float64(time.Second))
	s.log.Info("framework disconnected", "frameworkID", fw.id, "reason", why, "failoverTimeout", timeout.String())
	s.stopTimerLocked(fw.failoverTimer)
	fw.failoverTimer = s.afterLocked(timeout, func() {
		if s.frameworks[fw.id] != fw || fw.stream != nil {
			return
		}
		s.log.Info("framework failover timeout elapsed", "frameworkID", fw.id)
		s.removeFrameworkLocked(fw, "Framework failover timeout")
	})
}

// removeFrameworkLocked removes a framework (TEARDOWN or failover timeout):
// its tasks are killed, its offers withdrawn, its stream closed.
func (s *Server) removeFrameworkLocked(fw *framework, why string) {
	s.log.Info("removing framework", "frameworkID", fw.id, "reason", why, "tasks", len(fw.tasks))
	s.stopTimerLocked(fw.failoverTimer)
	fw.failoverTimer = nil
	s.removeFrameworkOffersLocked(fw, false)
	for _, t := range sortedTasks(fw.tasks) {
		s.abandonTaskLocked(t)
	}
	for _, t := range fw.unreachable {
		s.abandonTaskLocked(t)
	}
	fw.unreachable = map[string]*task{}
	if fw.stream != nil {
		fw.stream.close()
		fw.stream = nil
	}
	fw.unregisteredTime = time.Now()
	fw.filters = nil
	delete(s.frameworks, fw.id)
	s.completedFrameworks = append(s.completedFrameworks, fw)
	if over := len(s.completedFrameworks) - s.opts.MaxCompletedFrameworks; over > 0 {
		s.completedFrameworks = append([]*framework(nil), s.completedFrameworks[over:]...)
	}
	s.triggerAllocation()
}

func (s *Server) masterInfoLocked() *mesos.MasterInfo {
	port := uint32(0)
	if s.leader != nil {
		port = uint32(s.leader.port)
	}
	host := s.opts.Hostname
	return &mesos.MasterInfo{
		ID:       s.masterID,
		IP:       0x7f000001,
		Port:     &port,
		Hostname: &host,
		Version:  proto.String(emulatedMesosVersion),
		Address:  &mesos.Address{Hostname: &host, IP: proto.String("127.0.0.1"), Port: int32(port)},
	}
}

// emulatedMesosVersion is the Mesos release whose behaviour is emulated.
const emulatedMesosVersion = "1.12.0"

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedTasks(m map[string]*task) []*task {
	out := make([]*task, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// infoHasCapability reports whether a FrameworkInfo declares a capability.
func infoHasCapability(info *mesos.FrameworkInfo, c mesos.FrameworkInfo_Capability_Type) bool {
	for _, have := range info.Capabilities {
		if have.Type == c {
			return true
		}
	}
	return false
}

// applyInfo takes a (re)subscription's or UPDATE_FRAMEWORK's FrameworkInfo, with the
// roles derived from it and the roles whose offers are suppressed.
func (fw *framework) applyInfo(info *mesos.FrameworkInfo, roles []string, multiRole bool, suppressedRoles []string) {
	fw.info = *info
	fw.roles = roles
	fw.multiRole = multiRole
	fw.partitionAware = fw.hasCapability(mesos.FrameworkInfo_Capability_PARTITION_AWARE)
	fw.killingState = fw.hasCapability(mesos.FrameworkInfo_Capability_TASK_KILLING_STATE)
	fw.suppressed = map[string]bool{}
	for _, r := range suppressedRoles {
		fw.suppressed[r] = true
	}
}
