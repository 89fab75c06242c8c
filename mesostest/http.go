package mesostest

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// maxCallBody bounds a scheduler call body; larger calls are refused with
// 400 instead of being buffered without limit.
const maxCallBody = 32 << 20

const headerStreamID = "Mesos-Stream-Id"

func (s *Server) handler(m *master) http.Handler {
	mux := http.NewServeMux()
	scheduler := func(w http.ResponseWriter, r *http.Request) { s.serveScheduler(m, w, r) }
	mux.HandleFunc("/api/v1/scheduler", scheduler)
	mux.HandleFunc("/master/api/v1/scheduler", scheduler)
	state := func(w http.ResponseWriter, r *http.Request) { s.serveState(m, w, r) }
	for _, p := range []string{"/state", "/state.json", "/master/state", "/master/state.json"} {
		mux.HandleFunc(p, state)
	}
	slaves := func(w http.ResponseWriter, r *http.Request) { s.serveSlaves(m, w, r) }
	tasks := func(w http.ResponseWriter, r *http.Request) { s.serveTasks(m, w, r) }
	for _, p := range []string{"/slaves", "/slaves.json", "/master/slaves", "/master/slaves.json"} {
		mux.HandleFunc(p, slaves)
	}
	for _, p := range []string{"/tasks", "/tasks.json", "/master/tasks", "/master/tasks.json"} {
		mux.HandleFunc(p, tasks)
	}
	destroy := func(w http.ResponseWriter, r *http.Request) { s.serveDestroyVolumes(m, w, r) }
	unreserve := func(w http.ResponseWriter, r *http.Request) { s.serveUnreserve(m, w, r) }
	mux.HandleFunc("/destroy-volumes", destroy)
	mux.HandleFunc("/master/destroy-volumes", destroy)
	teardown := func(w http.ResponseWriter, r *http.Request) { s.serveTeardown(m, w, r) }
	mux.HandleFunc("/teardown", teardown)
	mux.HandleFunc("/master/teardown", teardown)
	mux.HandleFunc("/unreserve", unreserve)
	mux.HandleFunc("/master/unreserve", unreserve)
	redirect := func(w http.ResponseWriter, r *http.Request) { s.serveRedirect(w) }
	mux.HandleFunc("/redirect", redirect)
	mux.HandleFunc("/master/redirect", redirect)
	health := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
	mux.HandleFunc("/health", health)
	mux.HandleFunc("/master/health", health)
	if s.opts.ServeAdmin {
		admin := s.AdminHandler()
		mux.Handle("/admin", admin)
		mux.Handle("/admin/", admin)
	}
	// Every handler runs as a tracked goroutine so that Close can wait for
	// streaming handlers to finish.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served := false
		s.tracker.goTrackedSync(func() {
			served = true
			mux.ServeHTTP(w, r)
		})
		if !served {
			http.Error(w, "Master is shutting down", http.StatusServiceUnavailable)
		}
	})
}

// redirectLocation is what the master puts in Location when it is not the
// leader: a protocol-relative URL "//host:port/path" (src/master/http.cpp).
func (s *Server) redirectLocation(leader *master, r *http.Request) string {
	return fmt.Sprintf("//%s:%d%s", s.opts.Hostname, leader.port, r.URL.RequestURI())
}

// leadership answers 307/503 when m may not serve the request; it reports
// whether the request was answered.
func (s *Server) answerIfNotLeader(m *master, w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	leader, noLeader := s.leader, s.noLeader
	s.mu.Unlock()
	if noLeader || leader == nil {
		http.Error(w, "No leader elected", http.StatusServiceUnavailable)
		return true
	}
	if leader != m {
		w.Header().Set("Location", s.redirectLocation(leader, r))
		w.WriteHeader(http.StatusTemporaryRedirect)
		return true
	}
	return false
}

// serveScheduler implements POST /api/v1/scheduler with the checks of
// Master::Http::scheduler, in the same order.
func (s *Server) serveScheduler(m *master, w http.ResponseWriter, r *http.Request) {
	principal, ok := s.authenticate(r)
	if !ok {
		writeUnauthorized(w)
		return
	}
	if s.answerIfNotLeader(m, w, r) {
		return
	}
	if !s.applyCallFaults(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("Expecting one of { 'POST' }, but received '%s'", r.Method), http.StatusMethodNotAllowed)
		return
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		http.Error(w, "Expecting 'Content-Type' to be present", http.StatusBadRequest)
		return
	}
	if contentType != mediaJSON && contentType != mediaProtobuf {
		http.Error(w, "Expecting 'Content-Type' of "+mediaJSON+" or "+mediaProtobuf, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallBody+1))
	if err != nil {
		http.Error(w, "Failed to read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxCallBody {
		http.Error(w, "Request body too large", http.StatusBadRequest)
		return
	}
	call, err := decodeCall(contentType, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := validateCall(call); err != nil {
		http.Error(w, "Failed to validate scheduler::Call: "+err.Error(), http.StatusBadRequest)
		return
	}

	var enc eventEncoding
	if call.Type == scheduler.Call_SUBSCRIBE || call.Type == scheduler.Call_RECONCILE_OPERATIONS {
		switch accept := r.Header.Values("Accept"); {
		case acceptsMediaType(accept, mediaJSON):
			enc = mediaJSON
		case acceptsMediaType(accept, mediaProtobuf):
			enc = mediaProtobuf
		default:
			http.Error(w, "Expecting 'Accept' to allow '"+mediaProtobuf+"' or '"+mediaJSON+"'", http.StatusNotAcceptable)
			return
		}
	}

	if call.Type == scheduler.Call_SUBSCRIBE {
		if r.Header.Get(headerStreamID) != "" {
			http.Error(w, "Subscribe calls should not include the 'Mesos-Stream-Id' header", http.StatusBadRequest)
			return
		}
		info := call.Subscribe.FrameworkInfo
		if principal != "" && info.Principal != nil && info.GetPrincipal() != principal {
			http.Error(w, fmt.Sprintf("Failed to validate scheduler::Call: Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`",
				principal, info.GetPrincipal()), http.StatusBadRequest)
			return
		}
		s.serveSubscribe(w, r, call.Subscribe, enc, principal)
		return
	}

	s.mu.Lock()
	status, message, response := s.callLocked(call, principal, r.Header.Get(headerStreamID), enc)
	s.mu.Unlock()
	if response != nil {
		w.Header().Set("Content-Type", string(enc))
		w.WriteHeader(status)
		_, _ = w.Write(response)
		return
	}
	if status == http.StatusAccepted || status == http.StatusOK {
		w.WriteHeader(status)
		return
	}
	http.Error(w, message, status)
}

// callLocked performs the framework checks common to all non-SUBSCRIBE
// calls, then dispatches the call. It returns the HTTP status, an error
// message for failures, and a response body for calls that have one.
func (s *Server) callLocked(call *scheduler.Call, principal, streamID string, enc eventEncoding) (int, string, []byte) {
	fw := s.frameworks[call.GetFrameworkID().GetValue()]
	if fw == nil || !fw.registered {
		return http.StatusBadRequest, "Framework cannot be found", nil
	}
	if principal != "" && principal != fw.info.GetPrincipal() {
		return http.StatusBadRequest, fmt.Sprintf("Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`",
			principal, fw.info.GetPrincipal()), nil
	}
	if fw.stream == nil {
		return http.StatusForbidden, "Framework is not subscribed", nil
	}
	if streamID == "" {
		return http.StatusBadRequest, "All non-subscribe calls should include the 'Mesos-Stream-Id' header", nil
	}
	if streamID != fw.stream.id {
		return http.StatusBadRequest, fmt.Sprintf("The stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s",
			streamID, fw.id), nil
	}
	return s.dispatchLocked(fw, call, enc)
}

// applyCallFaults applies DelayCalls and RejectCalls; it reports false when
// the request was answered.
func (s *Server) applyCallFaults(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	delay, reject := s.callDelay, s.rejectStatus
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		case <-s.stop:
			t.Stop()
			http.Error(w, "Master is shutting down", http.StatusServiceUnavailable)
			return false
		}
	}
	if reject != 0 {
		http.Error(w, fmt.Sprintf("call rejected by fault injection (status %d)", reject), reject)
		return false
	}
	return true
}

// serveRedirect implements GET /redirect: every master (the leader too)
// answers 307 with the leader's base address, "//host:port".
func (s *Server) serveRedirect(w http.ResponseWriter) {
	s.mu.Lock()
	leader, noLeader := s.leader, s.noLeader
	s.mu.Unlock()
	if noLeader || leader == nil {
		http.Error(w, "No leader elected", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("//%s:%d", s.opts.Hostname, leader.port))
	w.WriteHeader(http.StatusTemporaryRedirect)
}
