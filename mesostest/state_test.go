package mesostest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func getJSON(t *testing.T, url string) (int, map[string]any, string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(body, &doc)
	return resp.StatusCode, doc, string(body)
}

// findTaskJSON finds a task in a /state document.
func findTaskJSON(doc map[string]any, id string) map[string]any {
	for _, f := range doc["frameworks"].([]any) {
		fw := f.(map[string]any)
		for _, list := range []string{"tasks", "completed_tasks", "unreachable_tasks"} {
			for _, x := range fw[list].([]any) {
				if task := x.(map[string]any); task["id"] == id {
					return task
				}
			}
		}
	}
	return nil
}

// /state as the real master renders it: json(Task) of src/common/http.cpp
// (no kill_policy, no command, the container in full, secrets included),
// statuses as Master::updateTask keeps them (one per consecutive state,
// with container_status), agents as SlaveWriter of
// src/master/readonly_handler.cpp (reservations by role; *_full only in
// /slaves), and a redirect from a master that does not lead.
func TestStateRendersWhatTheMasterRenders(t *testing.T) {
	s := newTestServer(t, testOptions(), AgentConfig{Hostname: "127.0.0.1", CPUs: 4, MemMiB: 4096, DiskMiB: 4096,
		Ports: []PortRange{{31000, 31099}}}, processAgent("127.0.0.2"))
	c := newRawClient(t, s.URL(), mediaJSON)
	info := multiRoleInfo("state", "k3s")
	info.Capabilities = append(info.Capabilities, mesos.FrameworkInfo_Capability{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE})
	c.subscribe(info)
	offers := map[string]mesos.Offer{}
	for len(offers) < 2 {
		ev := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
		for _, o := range ev.Offers.Offers {
			offers[o.GetHostname()] = o
		}
	}
	sim, proc := offers["127.0.0.1"], offers["127.0.0.2"]

	mesosType := mesos.ContainerInfo_MESOS
	simulated := commandTask("simulated", sim.AgentID.Value, "sleep 60", 0.5, 64)
	simulated.Resources = []mesos.Resource{reservedFor("k3s", scalarResource("cpus", 0.5)), reservedFor("k3s", scalarResource("mem", 64))}
	simulated.Command.User = proto.String("nobody")
	simulated.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(time.Second)}}
	secret := valueSecret("volume-secret-4242")
	simulated.Container = &mesos.ContainerInfo{Type: &mesosType, Volumes: []mesos.Volume{{
		Mode: mesos.RO.Enum(), ContainerPath: "token",
		Source: &mesos.Volume_Source{Type: mesos.Volume_Source_SECRET, Secret: &secret}}}}
	simulated.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 6443},
		DelaySeconds: proto.Float64(0.05)}
	c.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{sim.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{
				reservedFor("k3s", scalarResource("cpus", 1)), reservedFor("k3s", scalarResource("mem", 128))}}},
			{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{simulated}}},
		},
	}})
	c.mustCall(launchCall(proc.ID, commandTask("process", proc.AgentID.Value, "exec sleep 60", 0.1, 32)))
	for _, id := range []string{"simulated", "process"} {
		c.ack(c.nextUpdate(id, mesos.TASK_STARTING, 5*time.Second))
		c.ack(c.nextUpdate(id, mesos.TASK_RUNNING, 5*time.Second))
	}
	c.ack(c.next(2*time.Second, func(e *scheduler.Event) bool {
		return isUpdateOf(e, "simulated") && e.Update.Status.Healthy != nil
	}).Update.Status)
	if err := s.SetTaskHealth("simulated", false); err != nil {
		t.Fatal(err)
	}
	c.ack(c.next(2*time.Second, func(e *scheduler.Event) bool {
		return isUpdateOf(e, "simulated") && e.Update.Status.Healthy != nil && !e.Update.Status.GetHealthy()
	}).Update.Status)

	status, doc, body := getJSON(t, s.URL()+"/state")
	if status != http.StatusOK {
		t.Fatalf("/state: %d", status)
	}
	task := findTaskJSON(doc, "simulated")
	if task == nil {
		t.Fatalf("no task in %s", body)
	}
	for _, absent := range []string{"kill_policy", "command", "sandbox"} {
		if _, ok := task[absent]; ok {
			t.Errorf("task has %q", absent)
		}
	}
	if task["user"] != "nobody" || task["role"] != "k3s" || task["executor_id"] != "" {
		t.Errorf("task fields %v", task)
	}
	if !strings.Contains(body, "volume-secret-4242") && !strings.Contains(body, "dm9sdW1lLXNlY3JldC00MjQy") {
		t.Error("the container's secret volume is redacted; Mesos renders it in full")
	}
	// JSON::Protobuf renders unset fields that have a default.
	hc := task["health_check"].(map[string]any)
	if hc["interval_seconds"] != 10.0 || hc["consecutive_failures"] != 3.0 || hc["delay_seconds"] != 0.05 {
		t.Errorf("health_check %v, want the defaults filled in", hc)
	}
	var states []string
	for _, st := range task["statuses"].([]any) {
		m := st.(map[string]any)
		states = append(states, m["state"].(string))
		cs, _ := m["container_status"].(map[string]any)
		if cid, _ := cs["container_id"].(map[string]any); cid["value"] == "" || cid["value"] == nil {
			t.Errorf("status %v without container_status.container_id", m)
		}
	}
	if strings.Join(states, ",") != "TASK_STARTING,TASK_RUNNING" {
		t.Errorf("statuses %v, want the RUNNING ones collapsed", states)
	}
	last := task["statuses"].([]any)[1].(map[string]any)
	if last["healthy"] != false {
		t.Errorf("the collapsed RUNNING status is not the latest: %v", last)
	}
	ptask := findTaskJSON(doc, "process")
	pst := ptask["statuses"].([]any)[1].(map[string]any)["container_status"].(map[string]any)
	if pid, _ := pst["executor_pid"].(float64); pid <= 0 {
		t.Errorf("process task container_status %v without executor_pid", pst)
	}
	if ptask["mesostest_sandbox"] == "" || ptask["mesostest_sandbox"] == nil {
		t.Error("process task without the emulator's sandbox field")
	}

	var agent map[string]any
	for _, a := range doc["slaves"].([]any) {
		if a.(map[string]any)["hostname"] == "127.0.0.1" {
			agent = a.(map[string]any)
		}
	}
	reserved := agent["reserved_resources"].(map[string]any)["k3s"].(map[string]any)
	if reserved["cpus"] != 1.0 || agent["used_resources"].(map[string]any)["cpus"] != 0.5 ||
		agent["unreserved_resources"].(map[string]any)["cpus"] != 3.0 {
		t.Errorf("agent resources %v", agent)
	}
	if _, ok := agent["reserved_resources_full"]; ok {
		t.Error("/state renders reserved_resources_full (only /slaves does)")
	}
	full := s.State().Slaves
	for _, a := range full {
		if a.Hostname == "127.0.0.1" {
			rs := a.ReservedResourcesFull["k3s"]
			if len(rs) != 2 || len(rs[0].Reservations) != 1 || rs[0].Reservations[0].GetRole() != "k3s" || rs[0].GetRole() != "k3s" {
				t.Errorf("reserved_resources_full %+v", rs)
			}
		}
	}

	c.mustCall(killWith("simulated", nil))
	c.ack(c.nextUpdate("simulated", mesos.TASK_KILLING, 2*time.Second))
	c.ack(c.nextUpdate("simulated", mesos.TASK_KILLED, 2*time.Second))
	eventually(t, 2*time.Second, "killed in /state", func() bool {
		st := stateTask(s, "simulated")
		return st != nil && len(st.Statuses) == 4 && st.Statuses[3].State == "TASK_KILLED"
	})

	standby := s.AddMaster()
	if status, _, _ := getJSON(t, standby+"/state"); status != http.StatusTemporaryRedirect {
		t.Errorf("/state of a standby master: %d, want 307", status)
	}
}
