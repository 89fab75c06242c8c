package mesostest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func TestAdminEndpoints(t *testing.T) {
	opts := testOptions()
	opts.ServeAdmin = true
	s := newTestServer(t, opts, smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("admin", partitionAwareCaps...))
	launchRunning(t, c, "t1")

	post := func(path string, form url.Values) (int, map[string]string) {
		t.Helper()
		resp, err := http.PostForm(s.URL()+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, _ := post("/admin/fail-task", url.Values{"task": {"t1"}, "state": {"TASK_FAILED"},
		"reason": {"REASON_CONTAINER_LIMITATION_DISK"}, "message": {"disk full"}}); status != http.StatusOK {
		t.Fatalf("fail-task: %d", status)
	}
	st := c.nextUpdate("t1", mesos.TASK_FAILED, 2*time.Second)
	if st.GetReason() != mesos.REASON_CONTAINER_LIMITATION_DISK || st.GetMessage() != "disk full" {
		t.Fatalf("update %+v", st)
	}
	if status, out := post("/admin/fail-task", url.Values{"task": {"t1"}, "state": {"NOPE"}}); status != http.StatusBadRequest || out["error"] == "" {
		t.Fatalf("bad state accepted: %d", status)
	}
	if status, _ := post("/admin/reject-calls", url.Values{"status": {"500"}}); status != http.StatusOK {
		t.Fatal("reject-calls")
	}
	if code, _ := c.call(&scheduler.Call{Type: scheduler.Call_REVIVE}); code != http.StatusInternalServerError {
		t.Fatalf("call while rejecting: %d", code)
	}
	post("/admin/reject-calls", url.Values{"status": {"0"}})
	if status, out := post("/admin/add-agent", url.Values{"hostname": {"127.0.0.9"}, "cpus": {"2"}, "ports": {"40000-40010"}}); status != http.StatusOK || !strings.HasPrefix(out["agent_id"], s.MasterID()) {
		t.Fatalf("add-agent: %d %v", status, out)
	}
	if status, _ := post("/admin/lose-agent", url.Values{"hostname": {"127.0.0.9"}}); status != http.StatusOK {
		t.Fatal("lose-agent")
	}
	if got := s.State().UnreachableSlaves; got != 1 {
		t.Fatalf("unreachable agents %d", got)
	}
	post("/admin/restore-agent", url.Values{"hostname": {"127.0.0.9"}})
	if status, _ := post("/admin/drop-stream", url.Values{"framework": {c.frameworkID}}); status != http.StatusOK {
		t.Fatal("drop-stream")
	}
	c.expectClosed(2 * time.Second)
	status, out := post("/admin/failover", nil)
	if status != http.StatusOK || out["leader"] == s.URL() {
		t.Fatalf("failover: %d %v", status, out)
	}
	if s.LeaderURL() != out["leader"] {
		t.Fatalf("leader %s, want %s", s.LeaderURL(), out["leader"])
	}
	resp, err := http.Get(s.URL() + "/admin/lose-agent")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET on admin action: %d", resp.StatusCode)
	}
}
