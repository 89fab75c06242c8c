package mesostest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// State is the master's view as served by GET /state, shaped like the Mesos
// master's state endpoint (field names match its JSON).
type State struct {
	Version                string                `json:"version"`
	ID                     string                `json:"id"`
	PID                    string                `json:"pid"`
	Hostname               string                `json:"hostname"`
	Leader                 string                `json:"leader,omitempty"`
	LeaderInfo             *StateMasterInfo      `json:"leader_info,omitempty"`
	StartTime              float64               `json:"start_time"`
	ElectedTime            float64               `json:"elected_time,omitempty"`
	ActivatedSlaves        int                   `json:"activated_slaves"`
	DeactivatedSlaves      int                   `json:"deactivated_slaves"`
	UnreachableSlaves      int                   `json:"unreachable_slaves"`
	Slaves                 []StateAgent          `json:"slaves"`
	RecoveredSlaves        []StateRecoveredAgent `json:"recovered_slaves"`
	Frameworks             []StateFramework      `json:"frameworks"`
	CompletedFrameworks    []StateFramework      `json:"completed_frameworks"`
	OrphanTasks            []StateTask           `json:"orphan_tasks"`
	UnregisteredFrameworks []string              `json:"unregistered_frameworks"`
}

// StateMasterInfo describes the leading master.
type StateMasterInfo struct {
	ID       string `json:"id"`
	PID      string `json:"pid"`
	Port     int    `json:"port"`
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
}

// StateResources is the master's summary rendering of resources.
type StateResources struct {
	CPUs  float64 `json:"cpus"`
	Mem   float64 `json:"mem"`
	Disk  float64 `json:"disk"`
	GPUs  float64 `json:"gpus"`
	Ports string  `json:"ports,omitempty"`
}

// StateAgent is one agent ("slave" in the master's JSON), with the fields
// of SlaveWriter (src/master/readonly_handler.cpp). The *_full fields are
// what GET /slaves adds (SlavesWriter::writeSlave: full Resource JSON in
// the endpoint format, role and reservation plus reservations); GET /state
// leaves them out, State() fills them in.
type StateAgent struct {
	ID                      string                      `json:"id"`
	Hostname                string                      `json:"hostname"`
	Port                    int                         `json:"port"`
	Attributes              map[string]string           `json:"attributes"`
	PID                     string                      `json:"pid"`
	RegisteredTime          float64                     `json:"registered_time"`
	ReregisteredTime        float64                     `json:"reregistered_time,omitempty"`
	Resources               StateResources              `json:"resources"`
	UsedResources           StateResources              `json:"used_resources"`
	OfferedResources        StateResources              `json:"offered_resources"`
	ReservedResources       map[string]StateResources   `json:"reserved_resources"`
	UnreservedResources     StateResources              `json:"unreserved_resources"`
	Active                  bool                        `json:"active"`
	Deactivated             bool                        `json:"deactivated"`
	Version                 string                      `json:"version"`
	Capabilities            []string                    `json:"capabilities"`
	ReservedResourcesFull   map[string][]mesos.Resource `json:"reserved_resources_full,omitempty"`
	UnreservedResourcesFull []mesos.Resource            `json:"unreserved_resources_full,omitempty"`
	UsedResourcesFull       []mesos.Resource            `json:"used_resources_full,omitempty"`
	OfferedResourcesFull    []mesos.Resource            `json:"offered_resources_full,omitempty"`
}

// StateRecoveredAgent is an agent a restarted master knows from its
// registry that has not reregistered yet (json(SlaveInfo)).
type StateRecoveredAgent struct {
	ID         string            `json:"id"`
	Hostname   string            `json:"hostname"`
	Port       int               `json:"port"`
	Attributes map[string]string `json:"attributes"`
}

// StateFramework is one framework with its tasks and offers.
type StateFramework struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	User             string         `json:"user"`
	Hostname         string         `json:"hostname,omitempty"`
	Principal        string         `json:"principal,omitempty"`
	FailoverTimeout  float64        `json:"failover_timeout"`
	Checkpoint       bool           `json:"checkpoint"`
	Role             string         `json:"role,omitempty"`
	Roles            []string       `json:"roles,omitempty"`
	Capabilities     []string       `json:"capabilities"`
	Active           bool           `json:"active"`
	Connected        bool           `json:"connected"`
	Recovered        bool           `json:"recovered"`
	RegisteredTime   float64        `json:"registered_time"`
	ReregisteredTime float64        `json:"reregistered_time,omitempty"`
	UnregisteredTime float64        `json:"unregistered_time,omitempty"`
	Labels           []StateLabel   `json:"labels,omitempty"`
	Resources        StateResources `json:"resources"`
	UsedResources    StateResources `json:"used_resources"`
	OfferedResources StateResources `json:"offered_resources"`
	Tasks            []StateTask    `json:"tasks"`
	UnreachableTasks []StateTask    `json:"unreachable_tasks"`
	CompletedTasks   []StateTask    `json:"completed_tasks"`
	Offers           []StateOffer   `json:"offers"`
}

// StateLabel is a key/value label.
type StateLabel struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// StateTask is a task as the master reports it: json(Task) of
// src/common/http.cpp, in its order. No CommandInfo, no kill policy; the
// container and the health check are rendered in full (JSON::Protobuf),
// secrets and all, as Mesos does.
type StateTask struct {
	ID          string               `json:"id"`
	Name        string               `json:"name"`
	FrameworkID string               `json:"framework_id"`
	ExecutorID  string               `json:"executor_id"`
	SlaveID     string               `json:"slave_id"`
	State       string               `json:"state"`
	Resources   StateResources       `json:"resources"`
	Role        string               `json:"role"`
	Statuses    []StateTaskStatus    `json:"statuses"`
	User        string               `json:"user,omitempty"`
	Labels      []StateLabel         `json:"labels,omitempty"`
	Discovery   *mesos.DiscoveryInfo `json:"discovery,omitempty"`
	Container   *mesos.ContainerInfo `json:"container,omitempty"`
	HealthCheck *mesos.HealthCheck   `json:"health_check,omitempty"`
	// Sandbox is the task's sandbox directory in process mode. It is an
	// emulator addition (Mesos shows sandboxes through the agent's state),
	// named mesostest_sandbox in the JSON.
	Sandbox string `json:"mesostest_sandbox,omitempty"`
}

// StateTaskStatus is one entry of a task's status history (json(TaskStatus)).
type StateTaskStatus struct {
	State           string                 `json:"state"`
	Timestamp       float64                `json:"timestamp"`
	Labels          []StateLabel           `json:"labels,omitempty"`
	ContainerStatus *mesos.ContainerStatus `json:"container_status,omitempty"`
	Healthy         *bool                  `json:"healthy,omitempty"`
}

// StateOffer is an outstanding offer.
type StateOffer struct {
	ID          string         `json:"id"`
	FrameworkID string         `json:"framework_id"`
	SlaveID     string         `json:"slave_id"`
	Resources   StateResources `json:"resources"`
}

// State returns the same data as GET /state (the leader's view), plus the
// agents' *_full resources of GET /slaves.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(true)
}

// serveState implements GET /state. Like Master::Http::state, a master
// that does not lead redirects to the leader (503 when there is none).
func (s *Server) serveState(m *master, w http.ResponseWriter, r *http.Request) {
	if s.answerIfNotLeader(m, w, r) {
		return
	}
	s.mu.Lock()
	st := s.stateLocked(false)
	s.mu.Unlock()
	writeJSONBody(w, st)
}

func writeJSONBody(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Server) stateLocked(full bool) State {
	st := State{
		Version:                emulatedMesosVersion,
		ID:                     s.masterID,
		Hostname:               s.opts.Hostname,
		StartTime:              unixSeconds(s.started),
		Slaves:                 []StateAgent{},
		RecoveredSlaves:        []StateRecoveredAgent{},
		Frameworks:             []StateFramework{},
		CompletedFrameworks:    []StateFramework{},
		OrphanTasks:            []StateTask{},
		UnregisteredFrameworks: []string{},
	}
	if s.leader != nil && !s.noLeader {
		pid := fmt.Sprintf("master@%s:%d", s.opts.Hostname, s.leader.port)
		st.PID, st.Leader = pid, pid
		st.ElectedTime = unixSeconds(s.started)
		st.LeaderInfo = &StateMasterInfo{ID: s.masterID, PID: pid, Port: s.leader.port,
			Hostname: s.opts.Hostname, Version: emulatedMesosVersion}
	}
	for _, a := range s.agentOrder {
		switch {
		case a.recovered:
			st.RecoveredSlaves = append(st.RecoveredSlaves, StateRecoveredAgent{ID: a.id, Hostname: a.hostname,
				Port: agentPort, Attributes: attributesOf(a)})
		case a.reachable:
			st.ActivatedSlaves++
			st.Slaves = append(st.Slaves, s.agentStateLocked(a, full))
		default:
			st.UnreachableSlaves++
		}
	}
	ids := make([]string, 0, len(s.frameworks))
	for id, fw := range s.frameworks {
		if fw.registered {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		st.Frameworks = append(st.Frameworks, s.frameworkStateLocked(s.frameworks[id], true))
	}
	for _, fw := range s.completedFrameworks {
		st.CompletedFrameworks = append(st.CompletedFrameworks, s.frameworkStateLocked(fw, false))
	}
	return st
}

func attributesOf(a *agent) map[string]string {
	out := map[string]string{}
	for k, v := range a.cfg.Attributes {
		out[k] = v
	}
	return out
}

// agentUsedLocked is Resources::sum(slave->usedResources): what the
// agent's tasks and executors use, reservations and volumes included.
func agentUsedLocked(a *agent) mesos.Resources {
	var used mesos.Resources
	groups := map[*taskGroup]bool{}
	for t := range a.tasks {
		if !t.released {
			used.Add(t.resources...)
		}
		if g := t.group; g != nil && !g.released && !groups[g] {
			groups[g] = true
			used.Add(g.resources...)
		}
	}
	return used
}

func (s *Server) agentStateLocked(a *agent, full bool) StateAgent {
	used := agentUsedLocked(a)
	var offered mesos.Resources
	for _, o := range a.offers {
		offered.Add(o.resources...)
	}
	sa := StateAgent{
		ID:                  a.id,
		Hostname:            a.hostname,
		Port:                agentPort,
		Attributes:          attributesOf(a),
		PID:                 fmt.Sprintf("slave(1)@%s:%d", agentIP(a), agentPort),
		RegisteredTime:      unixSeconds(a.registered),
		Resources:           summarize(a.total),
		UsedResources:       summarize(used),
		OfferedResources:    summarize(offered),
		ReservedResources:   map[string]StateResources{},
		UnreservedResources: summarize(unreservedOf(a.total)),
		Active:              a.reachable,
		Version:             emulatedMesosVersion,
		// What the emulated agents do; real 1.12 agents also claim
		// RESERVATION_REFINEMENT, RESOURCE_PROVIDER, RESIZE_VOLUME,
		// AGENT_OPERATION_FEEDBACK, AGENT_DRAINING, TASK_RESOURCE_LIMITS.
		Capabilities: []string{"HIERARCHICAL_ROLE", "MULTI_ROLE"},
	}
	if !a.reregistered.IsZero() {
		sa.ReregisteredTime = unixSeconds(a.reregistered)
	}
	byRole := reservationsOf(a.total)
	for role, rs := range byRole {
		sa.ReservedResources[role] = summarize(rs)
	}
	if full {
		sa.ReservedResourcesFull = map[string][]mesos.Resource{}
		for role, rs := range byRole {
			sa.ReservedResourcesFull[role] = endpointFormat(rs)
		}
		sa.UnreservedResourcesFull = endpointFormat(unreservedOf(a.total))
		sa.UsedResourcesFull = endpointFormat(used)
		sa.OfferedResourcesFull = endpointFormat(offered)
	}
	return sa
}

// reservationsOf is Resources::reservations(): the reserved resources by
// reservation role.
func reservationsOf(rs mesos.Resources) map[string]mesos.Resources {
	out := map[string]mesos.Resources{}
	for _, r := range unallocated(rs) {
		if !r.IsUnreserved() {
			out[r.GetRole()] = append(out[r.GetRole()], r)
		}
	}
	return out
}

func unreservedOf(rs mesos.Resources) mesos.Resources {
	var out mesos.Resources
	for _, r := range unallocated(rs) {
		if r.IsUnreserved() {
			out = append(out, r)
		}
	}
	return out
}

// endpointFormat renders resources as convertResourceFormat(ENDPOINT)
// does (src/common/resources_utils.cpp): "role" and "reservation" as
// before reservation refinement, and the "reservations" stack as well.
func endpointFormat(rs mesos.Resources) []mesos.Resource {
	out := make([]mesos.Resource, 0, len(rs))
	for _, r := range rs {
		r.Reservations = nil
		if role := r.GetRole(); role != "*" && role != "" {
			ri := mesos.Resource_ReservationInfo{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: proto.String(role)}
			if r.Reservation != nil {
				ri.Type = mesos.Resource_ReservationInfo_DYNAMIC.Enum()
				ri.Principal = r.Reservation.Principal
				ri.Labels = r.Reservation.Labels
			}
			r.Reservations = []mesos.Resource_ReservationInfo{ri}
		} else {
			r.Role = proto.String("*")
		}
		out = append(out, r)
	}
	return out
}

func (s *Server) frameworkStateLocked(fw *framework, current bool) StateFramework {
	info := fw.info
	fs := StateFramework{
		ID:               fw.id,
		Name:             info.Name,
		User:             info.User,
		Hostname:         info.GetHostname(),
		Principal:        info.GetPrincipal(),
		FailoverTimeout:  info.GetFailoverTimeout(),
		Checkpoint:       info.GetCheckpoint(),
		Capabilities:     []string{},
		Active:           current && fw.stream != nil,
		Connected:        current && fw.stream != nil,
		RegisteredTime:   unixSeconds(fw.registeredTime),
		Tasks:            []StateTask{},
		UnreachableTasks: []StateTask{},
		CompletedTasks:   []StateTask{},
		Offers:           []StateOffer{},
	}
	if fw.multiRole {
		fs.Roles = append([]string(nil), fw.roles...)
	} else {
		fs.Role = info.GetRole()
	}
	if !fw.reregisteredTime.IsZero() {
		fs.ReregisteredTime = unixSeconds(fw.reregisteredTime)
	}
	if !fw.unregisteredTime.IsZero() {
		fs.UnregisteredTime = unixSeconds(fw.unregisteredTime)
	}
	for _, c := range info.Capabilities {
		fs.Capabilities = append(fs.Capabilities, c.Type.String())
	}
	fs.Labels = labelsOf(info.Labels)
	var used, offered mesos.Resources
	for _, t := range s.visibleTasksLocked(fw) {
		fs.Tasks = append(fs.Tasks, taskState(t))
		if !t.released {
			used.Add(unallocated(t.resources)...)
		}
	}
	for _, t := range sortedTasks(fw.unreachable) {
		fs.UnreachableTasks = append(fs.UnreachableTasks, taskState(t))
	}
	for _, t := range fw.completed {
		fs.CompletedTasks = append(fs.CompletedTasks, taskState(t))
	}
	offerIDs := make([]string, 0, len(fw.offers))
	for id := range fw.offers {
		offerIDs = append(offerIDs, id)
	}
	sort.Strings(offerIDs)
	for _, id := range offerIDs {
		o := fw.offers[id]
		offered.Add(unallocated(o.resources)...)
		fs.Offers = append(fs.Offers, StateOffer{ID: o.id, FrameworkID: fw.id, SlaveID: o.agent.id, Resources: summarize(o.resources)})
	}
	fs.UsedResources = summarize(used)
	fs.OfferedResources = summarize(offered)
	fs.Resources = summarize(append(cloneResources(used), offered...))
	return fs
}

func taskState(t *task) StateTask {
	ts := StateTask{
		ID:          t.id,
		Name:        t.info.Name,
		FrameworkID: t.fw.id,
		ExecutorID:  executorIDForState(t),
		SlaveID:     t.agent.id,
		State:       t.state.String(),
		Resources:   summarize(t.resources),
		Role:        t.role,
		Statuses:    []StateTaskStatus{},
		User:        taskUser(&t.info),
		Labels:      labelsOf(t.info.Labels),
		Discovery:   t.rendered.discovery,
		Container:   t.rendered.container,
		HealthCheck: t.rendered.healthCheck,
		Sandbox:     t.sandbox,
	}
	if t.fw.unreachable[t.id] == t {
		ts.State = mesos.TASK_UNREACHABLE.String()
	}
	for _, st := range t.statuses {
		ts.Statuses = append(ts.Statuses, StateTaskStatus{State: st.State.String(), Timestamp: st.GetTimestamp(),
			Labels: labelsOf(st.Labels), ContainerStatus: st.ContainerStatus, Healthy: st.Healthy})
	}
	return ts
}

// taskUser is Task.user as protobuf::createTask sets it: the command's
// user, else the executor command's.
func taskUser(info *mesos.TaskInfo) string {
	if u := info.GetCommand().GetUser(); u != "" {
		return u
	}
	return info.GetExecutor().GetCommand().GetUser()
}

// executorIDForState: Mesos reports "" for command tasks (the command
// executor is implicit) and the executor's ID otherwise.
func executorIDForState(t *task) string {
	if t.group != nil || t.info.Executor != nil {
		return t.executorID
	}
	return ""
}

func labelsOf(l *mesos.Labels) []StateLabel {
	if l == nil {
		return nil
	}
	out := make([]StateLabel, 0, len(l.Labels))
	for _, lb := range l.Labels {
		out = append(out, StateLabel{Key: lb.Key, Value: lb.GetValue()})
	}
	return out
}

// summarize renders resources as the master's JSON does: scalar sums and
// ports as "[a-b, c-d]".
func summarize(rs mesos.Resources) StateResources {
	out := StateResources{
		CPUs: scalarOf(rs, "cpus"),
		Mem:  scalarOf(rs, "mem"),
		Disk: scalarOf(rs, "disk"),
		GPUs: scalarOf(rs, "gpus"),
	}
	var ranges mesos.Ranges
	for _, r := range rs {
		if r.Name == "ports" && r.Ranges != nil {
			ranges = append(ranges, r.Ranges.Range...)
		}
	}
	if len(ranges) > 0 {
		ranges = ranges.Sort().Squash()
		parts := make([]string, len(ranges))
		for i, rg := range ranges {
			parts[i] = fmt.Sprintf("%d-%d", rg.Begin, rg.End)
		}
		out.Ports = "[" + strings.Join(parts, ", ") + "]"
	}
	return out
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// withDefaults returns a copy of a message with every unset optional field
// that has an explicit default set to it, recursively through the set
// sub-messages: JSON::Protobuf (3rdparty/stout/include/stout/protobuf.hpp)
// renders those fields ("interval_seconds": 10 for a health check that
// does not set it), so the master's JSON has them.
func withDefaults[T proto.Message](m T) T {
	if reflect.ValueOf(m).IsNil() {
		return m
	}
	c := proto.Clone(m).(T)
	fillDefaults(reflect.ValueOf(c).Elem())
	return c
}

func fillDefaults(v reflect.Value) {
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf, f := t.Field(i), v.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" {
			continue
		}
		def, hasDef := "", false
		for _, part := range strings.Split(tag, ",") {
			if strings.HasPrefix(part, "def=") {
				def, hasDef = strings.TrimPrefix(part, "def="), true
			}
		}
		switch {
		case f.Kind() == reflect.Pointer && f.IsNil():
			if hasDef && sf.Name != "Role" { // Resource.role's default is deprecated: not rendered
				if val, ok := parseDefault(sf.Type.Elem(), def); ok {
					p := reflect.New(sf.Type.Elem())
					p.Elem().Set(val)
					f.Set(p)
				}
			}
		case f.Kind() == reflect.Pointer && f.Elem().Kind() == reflect.Struct:
			fillDefaults(f.Elem())
		case f.Kind() == reflect.Struct:
			fillDefaults(f)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for j := 0; j < f.Len(); j++ {
				fillDefaults(f.Index(j))
			}
		}
	}
}

func parseDefault(t reflect.Type, def string) (reflect.Value, bool) {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(def == "1" || def == "true")
	case reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(def, 10, 64)
		if err != nil {
			return v, false
		}
		v.SetInt(n)
	case reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(def, 10, 64)
		if err != nil {
			return v, false
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(def, 64)
		if err != nil {
			return v, false
		}
		v.SetFloat(n)
	case reflect.String:
		v.SetString(def)
	default:
		return v, false
	}
	return v, true
}
