package mesostest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// adminEndpoints documents the fault injection endpoints (GET /admin).
var adminEndpoints = map[string]string{
	"POST /admin/fail-task":       "task, state (e.g. TASK_FAILED, TASK_KILLED), reason (e.g. REASON_CONTAINER_LIMITATION_MEMORY), message",
	"POST /admin/set-health":      "task, healthy (true|false)",
	"POST /admin/ignore-sigterm":  "task, ignore (true|false, default true): the task dies only by SIGKILL at the end of its kill grace period",
	"POST /admin/lose-agent":      "hostname",
	"POST /admin/restore-agent":   "hostname",
	"POST /admin/add-agent":       "hostname, cpus, mem, disk, ports (e.g. 31000-32000), run_processes, own_host, cgroups (true|false)",
	"POST /admin/drop-stream":     "framework",
	"POST /admin/stop-heartbeats": "framework, stopped (true|false, default true)",
	"POST /admin/delay-calls":     "delay (Go duration, 0 to stop)",
	"POST /admin/reject-calls":    "status (HTTP status, 0 to stop)",
	"POST /admin/unavailable":     "value (true: no leader, 503; false: leader back)",
	"POST /admin/add-master":      "(none) starts a standby master and returns its URL",
	"POST /admin/failover":        "url (optional: default the next master, added if there is none); the new leader recovers as a restarted master",
	"POST /admin/restart-master":  "(none) the leader restarts: streams end, frameworks are forgotten, agents reregister after the configured delay",
}

// AdminHandler serves the fault injection endpoints over HTTP, for the
// standalone command and for tests in other languages. Parameters come from
// the query string or a form body; answers are JSON.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/admin", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, adminEndpoints) })
	post := func(path string, f func(r *http.Request) (any, error)) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
				return
			}
			if err := r.ParseForm(); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			result, err := f(r)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			if result == nil {
				result = map[string]bool{"ok": true}
			}
			writeJSON(w, http.StatusOK, result)
		})
	}
	post("/admin/fail-task", func(r *http.Request) (any, error) {
		state, ok := mesos.TaskState_value[r.Form.Get("state")]
		if !ok {
			return nil, fmt.Errorf("unknown state %q", r.Form.Get("state"))
		}
		reason := int32(mesos.REASON_TASK_UNKNOWN)
		if name := r.Form.Get("reason"); name != "" {
			if reason, ok = mesos.TaskStatus_Reason_value[name]; !ok {
				return nil, fmt.Errorf("unknown reason %q", name)
			}
		}
		return nil, s.FailTask(r.Form.Get("task"), mesos.TaskState(state), mesos.TaskStatus_Reason(reason), r.Form.Get("message"))
	})
	post("/admin/set-health", func(r *http.Request) (any, error) {
		healthy, err := strconv.ParseBool(r.Form.Get("healthy"))
		if err != nil {
			return nil, fmt.Errorf("healthy: %v", err)
		}
		return nil, s.SetTaskHealth(r.Form.Get("task"), healthy)
	})
	post("/admin/ignore-sigterm", func(r *http.Request) (any, error) {
		ignore := true
		if v := r.Form.Get("ignore"); v != "" {
			var err error
			if ignore, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("ignore: %v", err)
			}
		}
		return nil, s.IgnoreSIGTERM(r.Form.Get("task"), ignore)
	})
	post("/admin/lose-agent", func(r *http.Request) (any, error) { return nil, s.LoseAgent(r.Form.Get("hostname")) })
	post("/admin/restore-agent", func(r *http.Request) (any, error) { return nil, s.RestoreAgent(r.Form.Get("hostname")) })
	post("/admin/add-agent", func(r *http.Request) (any, error) {
		cfg := AgentConfig{Hostname: r.Form.Get("hostname")}
		var err error
		for name, dst := range map[string]*float64{"cpus": &cfg.CPUs, "mem": &cfg.MemMiB, "disk": &cfg.DiskMiB} {
			if v := r.Form.Get(name); v != "" {
				if *dst, err = strconv.ParseFloat(v, 64); err != nil {
					return nil, fmt.Errorf("%s: %v", name, err)
				}
			}
		}
		if v := r.Form.Get("ports"); v != "" {
			if cfg.Ports, err = ParsePortRanges(v); err != nil {
				return nil, err
			}
		}
		for name, dst := range map[string]*bool{"run_processes": &cfg.RunProcesses, "own_host": &cfg.OwnHost, "cgroups": &cfg.Cgroups} {
			if v := r.Form.Get(name); v != "" {
				if *dst, err = strconv.ParseBool(v); err != nil {
					return nil, fmt.Errorf("%s: %v", name, err)
				}
			}
		}
		id, err := s.TryAddAgent(cfg)
		if err != nil {
			return nil, err
		}
		return map[string]string{"agent_id": id}, nil
	})
	post("/admin/drop-stream", func(r *http.Request) (any, error) { return nil, s.DropStream(r.Form.Get("framework")) })
	post("/admin/stop-heartbeats", func(r *http.Request) (any, error) {
		stopped := true
		if v := r.Form.Get("stopped"); v != "" {
			var err error
			if stopped, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("stopped: %v", err)
			}
		}
		return nil, s.StopHeartbeats(r.Form.Get("framework"), stopped)
	})
	post("/admin/delay-calls", func(r *http.Request) (any, error) {
		d, err := time.ParseDuration(r.Form.Get("delay"))
		if err != nil {
			return nil, fmt.Errorf("delay: %v", err)
		}
		s.DelayCalls(d)
		return nil, nil
	})
	post("/admin/reject-calls", func(r *http.Request) (any, error) {
		status, err := strconv.Atoi(r.Form.Get("status"))
		if err != nil || (status != 0 && (status < 400 || status > 599)) {
			return nil, fmt.Errorf("status must be 0 or an HTTP error status")
		}
		s.RejectCalls(status)
		return nil, nil
	})
	post("/admin/unavailable", func(r *http.Request) (any, error) {
		v, err := strconv.ParseBool(r.Form.Get("value"))
		if err != nil {
			return nil, fmt.Errorf("value: %v", err)
		}
		s.SetUnavailable(v)
		return nil, nil
	})
	post("/admin/restart-master", func(r *http.Request) (any, error) { return nil, s.RestartMaster() })
	post("/admin/add-master", func(r *http.Request) (any, error) {
		return map[string]string{"url": s.AddMaster()}, nil
	})
	post("/admin/failover", func(r *http.Request) (any, error) {
		target := r.Form.Get("url")
		if target == "" {
			target = s.nextMasterURL()
		}
		if err := s.FailoverTo(target); err != nil {
			return nil, err
		}
		return map[string]string{"leader": target}, nil
	})
	return mux
}

// nextMasterURL picks the master after the current leader, adding one when
// there is no other.
func (s *Server) nextMasterURL() string {
	s.mu.Lock()
	var next string
	for i, m := range s.masters {
		if m == s.leader {
			next = s.masters[(i+1)%len(s.masters)].url
		}
	}
	if len(s.masters) < 2 {
		next = ""
	}
	s.mu.Unlock()
	if next == "" {
		next = s.AddMaster()
	}
	return next
}

// ParsePortRanges parses "31000-32000,33000-33100" (or a single port).
func ParsePortRanges(spec string) ([]PortRange, error) {
	var out []PortRange
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, found := strings.Cut(part, "-")
		if !found {
			hi = lo
		}
		b, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		e, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if err1 != nil || err2 != nil || b > e {
			return nil, fmt.Errorf("invalid port range %q", part)
		}
		out = append(out, PortRange{Begin: b, End: e})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no port ranges in %q", spec)
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
