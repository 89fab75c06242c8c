package mesostest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// State is the master's view as served by GET /state, shaped like the Mesos
// master's state endpoint (field names match its JSON).
type State struct {
	Version                string           `json:"version"`
	ID                     string           `json:"id"`
	PID                    string           `json:"pid"`
	Hostname               string           `json:"hostname"`
	Leader                 string           `json:"leader,omitempty"`
	LeaderInfo             *StateMasterInfo `json:"leader_info,omitempty"`
	StartTime              float64          `json:"start_time"`
	ElectedTime            float64          `json:"elected_time,omitempty"`
	ActivatedSlaves        int              `json:"activated_slaves"`
	DeactivatedSlaves      int              `json:"deactivated_slaves"`
	UnreachableSlaves      int              `json:"unreachable_slaves"`
	Slaves                 []StateAgent     `json:"slaves"`
	Frameworks             []StateFramework `json:"frameworks"`
	CompletedFrameworks    []StateFramework `json:"completed_frameworks"`
	UnregisteredFrameworks []string         `json:"unregistered_frameworks"`
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

// StateAgent is one agent ("slave" in the master's JSON).
type StateAgent struct {
	ID                    string                      `json:"id"`
	PID                   string                      `json:"pid"`
	Hostname              string                      `json:"hostname"`
	Port                  int                         `json:"port"`
	Active                bool                        `json:"active"`
	RegisteredTime        float64                     `json:"registered_time"`
	Attributes            map[string]string           `json:"attributes"`
	Resources             StateResources              `json:"resources"`
	UsedResources         StateResources              `json:"used_resources"`
	OfferedResources      StateResources              `json:"offered_resources"`
	UnreservedResources   StateResources              `json:"unreserved_resources"`
	ReservedResources     map[string]StateResources   `json:"reserved_resources"`
	ReservedResourcesFull map[string][]mesos.Resource `json:"reserved_resources_full"`
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

// StateTask is a task as the master reports it. Like Mesos, it carries no
// CommandInfo, and secrets in containers and health checks are redacted.
type StateTask struct {
	ID          string               `json:"id"`
	Name        string               `json:"name"`
	FrameworkID string               `json:"framework_id"`
	ExecutorID  string               `json:"executor_id"`
	SlaveID     string               `json:"slave_id"`
	State       string               `json:"state"`
	Role        string               `json:"role"`
	Resources   StateResources       `json:"resources"`
	Statuses    []StateTaskStatus    `json:"statuses"`
	Labels      []StateLabel         `json:"labels,omitempty"`
	Discovery   *mesos.DiscoveryInfo `json:"discovery,omitempty"`
	Container   *mesos.ContainerInfo `json:"container,omitempty"`
	HealthCheck *mesos.HealthCheck   `json:"health_check,omitempty"`
	KillPolicy  *mesos.KillPolicy    `json:"kill_policy,omitempty"`
	// Sandbox is the task's sandbox directory in process mode (an
	// emulator addition; Mesos reports it through the agent's state).
	Sandbox string `json:"sandbox,omitempty"`
}

// StateTaskStatus is one entry of a task's status history.
type StateTaskStatus struct {
	State     string  `json:"state"`
	Timestamp float64 `json:"timestamp"`
	Healthy   *bool   `json:"healthy,omitempty"`
}

// StateOffer is an outstanding offer.
type StateOffer struct {
	ID          string         `json:"id"`
	FrameworkID string         `json:"framework_id"`
	SlaveID     string         `json:"slave_id"`
	Resources   StateResources `json:"resources"`
}

// State returns the same data as GET /state (the leader's view).
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(true)
}

func (s *Server) serveState(m *master, w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.stateLocked(m == s.leader && !s.noLeader)
	if m != s.leader || s.noLeader {
		st.PID = fmt.Sprintf("master@%s:%d", s.opts.Hostname, m.port)
	}
	s.mu.Unlock()
	body, err := json.Marshal(st)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Server) stateLocked(isLeader bool) State {
	st := State{
		Version:                emulatedMesosVersion,
		ID:                     s.masterID,
		Hostname:               s.opts.Hostname,
		StartTime:              unixSeconds(s.started),
		Slaves:                 []StateAgent{},
		Frameworks:             []StateFramework{},
		CompletedFrameworks:    []StateFramework{},
		UnregisteredFrameworks: []string{},
	}
	if s.leader != nil && !s.noLeader {
		pid := fmt.Sprintf("master@%s:%d", s.opts.Hostname, s.leader.port)
		st.PID, st.Leader = pid, pid
		st.ElectedTime = unixSeconds(s.started)
		st.LeaderInfo = &StateMasterInfo{ID: s.masterID, PID: pid, Port: s.leader.port,
			Hostname: s.opts.Hostname, Version: emulatedMesosVersion}
	}
	if !isLeader {
		// A non-leading master knows no agents or frameworks.
		return st
	}
	for _, a := range s.agentOrder {
		if a.reachable {
			st.ActivatedSlaves++
		} else {
			st.UnreachableSlaves++
			continue
		}
		st.Slaves = append(st.Slaves, s.agentStateLocked(a))
	}
	ids := make([]string, 0, len(s.frameworks))
	for id := range s.frameworks {
		ids = append(ids, id)
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

func (s *Server) agentStateLocked(a *agent) StateAgent {
	var used, offered mesos.Resources
	for t := range a.tasks {
		if !t.released {
			used.Add(unallocated(t.resources)...)
		}
	}
	groups := map[*taskGroup]bool{}
	for t := range a.tasks {
		if g := t.group; g != nil && !g.released && !groups[g] {
			groups[g] = true
			used.Add(unallocated(g.resources)...)
		}
	}
	for _, o := range a.offers {
		offered.Add(unallocated(o.resources)...)
	}
	sa := StateAgent{
		ID:                    a.id,
		PID:                   fmt.Sprintf("slave(1)@%s:%d", a.hostname, agentPort),
		Hostname:              a.hostname,
		Port:                  agentPort,
		Active:                a.reachable,
		RegisteredTime:        unixSeconds(a.registered),
		Attributes:            map[string]string{},
		Resources:             summarize(a.total),
		UsedResources:         summarize(used),
		OfferedResources:      summarize(offered),
		ReservedResources:     map[string]StateResources{},
		ReservedResourcesFull: map[string][]mesos.Resource{},
	}
	for k, v := range a.cfg.Attributes {
		sa.Attributes[k] = v
	}
	var unreserved mesos.Resources
	byRole := map[string]mesos.Resources{}
	for _, r := range a.total {
		if r.IsUnreserved() {
			unreserved = append(unreserved, r)
			continue
		}
		role := r.GetRole()
		byRole[role] = append(byRole[role], r)
	}
	sa.UnreservedResources = summarize(unreserved)
	for role, rs := range byRole {
		sa.ReservedResources[role] = summarize(rs)
		sa.ReservedResourcesFull[role] = append([]mesos.Resource(nil), rs...)
	}
	return sa
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
	for _, t := range sortedTasks(fw.tasks) {
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
		Role:        t.role,
		Resources:   summarize(t.resources),
		Statuses:    []StateTaskStatus{},
		Labels:      labelsOf(t.info.Labels),
		Discovery:   t.info.Discovery,
		KillPolicy:  t.info.KillPolicy,
		Sandbox:     t.sandbox,
	}
	if t.info.Container != nil {
		ts.Container = redactContainer(t.info.Container)
	}
	if t.info.HealthCheck != nil {
		hc := proto.Clone(t.info.HealthCheck).(*mesos.HealthCheck)
		if hc.Command != nil {
			redactEnvironment(hc.Command.Environment)
		}
		ts.HealthCheck = hc
	}
	for _, st := range t.statuses {
		ts.Statuses = append(ts.Statuses, StateTaskStatus{State: st.State.String(), Timestamp: st.GetTimestamp(), Healthy: st.Healthy})
	}
	return ts
}

// executorIDForState: Mesos reports "" for command tasks (the command
// executor is implicit) and the executor's ID otherwise.
func executorIDForState(t *task) string {
	if t.group != nil || t.info.Executor != nil {
		return t.executorID
	}
	return ""
}

// redactContainer removes secret values from a ContainerInfo copy.
func redactContainer(c *mesos.ContainerInfo) *mesos.ContainerInfo {
	out := proto.Clone(c).(*mesos.ContainerInfo)
	for i := range out.Volumes {
		if src := out.Volumes[i].Source; src != nil && src.Secret != nil {
			src.Secret = redactSecret(src.Secret)
		}
	}
	return out
}

func redactEnvironment(env *mesos.Environment) {
	if env == nil {
		return
	}
	for i := range env.Variables {
		if env.Variables[i].Secret != nil {
			env.Variables[i].Secret = redactSecret(env.Variables[i].Secret)
		}
	}
}

// redactSecret keeps a secret's type and reference but never its value.
func redactSecret(sec *mesos.Secret) *mesos.Secret {
	out := &mesos.Secret{Type: sec.Type, Reference: sec.Reference}
	return out
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
