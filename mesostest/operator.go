package mesostest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// The master's operator endpoints that frameworks and tools call besides
// the scheduler API: GET /slaves and GET /tasks (master/http.cpp, rendered
// by src/master/readonly_handler.cpp), and the legacy POST
// /master/destroy-volumes and /master/unreserve (master/http.cpp
// destroyVolumes, unreserve and _operation).

// readWriteRealm is the realm of the master's read-write endpoints
// (--authenticate_http_readwrite).
const readWriteRealm = "mesos-master-readwrite"

// taskLimit is the master's TASK_LIMIT (src/master/constants.hpp), the
// default page of GET /tasks.
const taskLimit = 100

// StateAgents is GET /slaves.
type StateAgents struct {
	Slaves          []StateAgent          `json:"slaves"`
	RecoveredSlaves []StateRecoveredAgent `json:"recovered_slaves"`
}

// serveSlaves implements GET /slaves (SlavesWriter): every registered
// agent with its *_full resources, and the recovered ones; slave_id
// selects one.
func (s *Server) serveSlaves(m *master, w http.ResponseWriter, r *http.Request) {
	if s.answerIfNotLeader(m, w, r) {
		return
	}
	selected := r.URL.Query().Get("slave_id")
	s.mu.Lock()
	out := StateAgents{Slaves: []StateAgent{}, RecoveredSlaves: []StateRecoveredAgent{}}
	for _, a := range s.agentOrder {
		if selected != "" && a.id != selected {
			continue
		}
		switch {
		case a.recovered:
			out.RecoveredSlaves = append(out.RecoveredSlaves, StateRecoveredAgent{ID: a.id, Hostname: a.hostname,
				Port: agentPort, Attributes: attributesOf(a)})
		case a.reachable:
			out.Slaves = append(out.Slaves, s.agentStateLocked(a, true))
		}
	}
	s.mu.Unlock()
	writeJSONBody(w, out)
}

// serveTasks implements GET /tasks (ReadOnlyHandler::tasks): the live,
// unreachable and completed tasks of the registered and the completed
// frameworks, sorted by the timestamp of their first status (order=asc,
// descending by default; tasks without statuses first in descending
// order), limit (default 100) from offset; framework_id and task_id
// select.
func (s *Server) serveTasks(m *master, w http.ResponseWriter, r *http.Request) {
	if s.answerIfNotLeader(m, w, r) {
		return
	}
	q := r.URL.Query()
	limit, offset := taskLimit, 0
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v >= 0 {
		limit = v
	}
	if v, err := strconv.Atoi(q.Get("offset")); err == nil && v >= 0 {
		offset = v
	}
	ascending := q.Get("order") == "asc"
	frameworkID, taskID := q.Get("framework_id"), q.Get("task_id")

	s.mu.Lock()
	var frameworks []*framework
	ids := make([]string, 0, len(s.frameworks))
	for id, fw := range s.frameworks {
		if fw.registered {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		frameworks = append(frameworks, s.frameworks[id])
	}
	frameworks = append(frameworks, s.completedFrameworks...)
	var tasks []StateTask
	for _, fw := range frameworks {
		if frameworkID != "" && fw.id != frameworkID {
			continue
		}
		var all []*task
		all = append(all, s.visibleTasksLocked(fw)...)
		all = append(all, sortedTasks(fw.unreachable)...)
		all = append(all, fw.completed...)
		for _, t := range all {
			if taskID == "" || t.id == taskID {
				tasks = append(tasks, taskState(t))
			}
		}
	}
	s.mu.Unlock()
	first := func(t StateTask) (float64, bool) {
		if len(t.Statuses) == 0 {
			return 0, false
		}
		return t.Statuses[0].Timestamp, true
	}
	sort.SliceStable(tasks, func(i, j int) bool {
		ti, iok := first(tasks[i])
		tj, jok := first(tasks[j])
		if ascending {
			switch {
			case !iok && !jok:
				return false
			case !iok:
				return true
			case !jok:
				return false
			}
			return ti < tj
		}
		switch {
		case !iok && !jok:
			return false
		case !jok:
			return true
		case !iok:
			return false
		}
		return ti > tj
	})
	page := []StateTask{}
	if offset < len(tasks) {
		end := offset + limit
		if end > len(tasks) || end < offset {
			end = len(tasks)
		}
		page = tasks[offset:end]
	}
	writeJSONBody(w, struct {
		Tasks []StateTask `json:"tasks"`
	}{page})
}

// operatorRequest checks what master/http.cpp checks before an operator
// operation: authentication (when credentials are configured), leadership,
// POST, and decodes the form in the body. It reports false when it answered.
func (s *Server) operatorRequest(m *master, w http.ResponseWriter, r *http.Request, required ...string) (url.Values, bool) {
	if _, ok := s.authenticate(r); !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+readWriteRealm+`"`)
		http.Error(w, "", http.StatusUnauthorized)
		return nil, false
	}
	if s.answerIfNotLeader(m, w, r) {
		return nil, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("Expecting one of { 'POST' }, but received '%s'", r.Method), http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallBody))
	if err != nil {
		http.Error(w, "Failed to read request body: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "Unable to decode query string: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	for _, name := range required {
		if !values.Has(name) {
			http.Error(w, "Missing '"+name+"' query parameter in the request body", http.StatusBadRequest)
			return nil, false
		}
	}
	return values, true
}

// parseResourceArray parses a JSON array of Resource objects, leniently
// as stout does.
func parseResourceArray(param, text string) ([]mesos.Resource, error) {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(text), &items); err != nil {
		return nil, fmt.Errorf("Error in parsing '%s' query parameter in the request body: %v", param, err)
	}
	out := make([]mesos.Resource, 0, len(items))
	for _, item := range items {
		strict, err := normalizeProtoJSON(item, reflect.TypeOf(mesos.Resource{}))
		var r mesos.Resource
		if err == nil {
			err = json.Unmarshal(strict, &r)
		}
		if err == nil && (r.Name == "" || r.Type == nil) {
			err = errors.New("Missing required fields: name, type")
		}
		if err != nil {
			return nil, fmt.Errorf("Error in parsing '%s' query parameter in the request body: %v", param, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// serveDestroyVolumes implements POST /master/destroy-volumes: form
// parameters slaveId and volumes (a JSON array of Resource). 202 when the
// DESTROY is applied to the agent's checkpointed resources (the volume's
// data is deleted), 400 on bad input or when the volumes are not there or
// in use (validation::operation::validate), 409 when they cannot be taken
// back from the allocator.
func (s *Server) serveDestroyVolumes(m *master, w http.ResponseWriter, r *http.Request) {
	values, ok := s.operatorRequest(m, w, r, "slaveId", "volumes")
	if !ok {
		return
	}
	volumes, err := parseResourceArray("volumes", values.Get("volumes"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[values.Get("slaveId")]
	if a == nil || !a.reachable || a.recovered {
		http.Error(w, "No agent found with specified ID", http.StatusBadRequest)
		return
	}
	vols, err := normalizeIncoming(volumes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	vols = unallocated(vols)
	if err := validateDestroy(vols, a); err != nil {
		http.Error(w, "Invalid DESTROY operation: "+err.Error(), http.StatusBadRequest)
		return
	}
	plain := withoutDiskInfo(vols)
	if err := s.applyOperatorConversionLocked(a, vols, plain); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	for _, v := range vols {
		s.removeVolumeDir(v.GetRole(), v.Disk.Persistence.ID)
		s.log.Info("persistent volume destroyed by the operator", "agent", a.hostname, "role", v.GetRole(),
			"persistenceID", v.Disk.Persistence.ID)
	}
	w.WriteHeader(http.StatusAccepted)
}

// validateDestroy is validation::operation::validate(Destroy) against the
// agent's checkpointed resources and what its tasks use.
func validateDestroy(vols mesos.Resources, a *agent) error {
	for _, v := range vols {
		if v.Disk == nil {
			return fmt.Errorf("Not a persistent volume: Resource %s does not have DiskInfo", v.Name)
		}
		if v.Disk.Persistence == nil {
			return errors.New("Not a persistent volume: 'persistence' is not set in DiskInfo")
		}
		if v.Disk.Volume == nil {
			return errors.New("Not a persistent volume: Expecting 'volume' to be set for persistent volume")
		}
		if v.Disk.Volume.GetMode() == mesos.RO {
			return errors.New("Not a persistent volume: Read-only persistent volume not supported")
		}
	}
	for _, v := range vols {
		if !contains(a.total, mesos.Resources{v}) {
			return errors.New("Persistent volumes not found")
		}
	}
	used := unallocated(agentUsedLocked(a))
	for _, v := range vols {
		if contains(used, mesos.Resources{v}) {
			return errors.New("Persistent volumes in use")
		}
	}
	return nil
}

// serveUnreserve implements POST /master/unreserve: form parameters slaveId
// and resources (a JSON array of dynamically reserved Resource). 202 when
// the UNRESERVE is applied, 400 on bad input (validate(Unreserve)), 409
// when the reserved resources are not available (in use, or not there).
func (s *Server) serveUnreserve(m *master, w http.ResponseWriter, r *http.Request) {
	values, ok := s.operatorRequest(m, w, r, "slaveId", "resources")
	if !ok {
		return
	}
	resources, err := parseResourceArray("resources", values.Get("resources"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[values.Get("slaveId")]
	if a == nil || !a.reachable || a.recovered {
		http.Error(w, "No agent found with specified ID", http.StatusBadRequest)
		return
	}
	reserved, err := normalizeIncoming(resources)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	reserved = unallocated(reserved)
	for _, res := range reserved {
		if res.Reservation == nil {
			http.Error(w, fmt.Sprintf("Invalid UNRESERVE operation: Resource %s is not dynamically reserved", mesos.Resources{res}.String()), http.StatusBadRequest)
			return
		}
		if res.IsPersistentVolume() {
			http.Error(w, fmt.Sprintf("Invalid UNRESERVE operation: A dynamically reserved persistent volume %s cannot be unreserved directly. "+
				"Please destroy the persistent volume first then unreserve the resource", mesos.Resources{res}.String()), http.StatusBadRequest)
			return
		}
	}
	if err := s.applyOperatorConversionLocked(a, reserved, unallocated(asUnreserved(reserved))); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	s.log.Info("resources unreserved by the operator", "agent", a.hostname, "resources", reserved.String())
	w.WriteHeader(http.StatusAccepted)
}

// applyOperatorConversionLocked is Master::Http::_operation: outstanding
// offers of the agent that hold some of the consumed resources are
// rescinded (with the default 5 s filter, as there), then the conversion is
// applied to what is available, or it fails as the allocator's
// updateAvailable does.
func (s *Server) applyOperatorConversionLocked(a *agent, consumed, converted mesos.Resources) error {
	for _, o := range sortedOffers(a) {
		if contains(a.free, consumed) {
			break
		}
		recovered := unallocated(o.resources)
		if !overlaps(recovered, consumed) {
			continue
		}
		s.addFilterLocked(o.fw, a, o.role, o.resources, nil)
		s.removeOfferLocked(o, true)
	}
	if !contains(a.free, consumed) {
		return fmt.Errorf("%s does not contain %s", a.free.String(), consumed.String())
	}
	a.free.Subtract(consumed...)
	a.free.Add(converted...)
	a.total.Subtract(consumed...)
	a.total.Add(converted...)
	s.triggerAllocation()
	return nil
}

func sortedOffers(a *agent) []*offer {
	out := make([]*offer, 0, len(a.offers))
	for _, o := range a.offers {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// overlaps tells whether rescinding have would give back any of want.
func overlaps(have, want mesos.Resources) bool {
	for _, w := range want {
		for _, h := range have {
			if h.Name == w.Name && h.GetRole() == w.GetRole() {
				return true
			}
		}
	}
	return false
}

// serveTeardown is the /teardown endpoint of src/master/http.cpp (Master::Http::teardown
// and _teardown): a POST with frameworkId in the body removes the framework as its own
// TEARDOWN would (removeFramework: every task killed, offers withdrawn, the stream
// closed), and a later SUBSCRIBE with its ID is refused with "Framework has been
// removed". An ID the master does not know is "No framework found with specified ID".
func (s *Server) serveTeardown(m *master, w http.ResponseWriter, r *http.Request) {
	values, ok := s.operatorRequest(m, w, r, "frameworkId")
	if !ok {
		return
	}
	if err := s.TeardownFramework(values.Get("frameworkId")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// TeardownFramework removes a framework as a Mesos operator's /teardown does.
func (s *Server) TeardownFramework(frameworkID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw := s.frameworks[frameworkID]
	if fw == nil {
		return fmt.Errorf("No framework found with specified ID")
	}
	s.removeFrameworkLocked(fw, "operator /teardown")
	return nil
}
