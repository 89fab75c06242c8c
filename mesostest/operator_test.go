package mesostest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func postForm(t *testing.T, target string, form url.Values, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// fullReservations reads reserved_resources_full of an agent from GET
// /slaves, split into persistent volumes and the rest, as JSON arrays.
func fullReservations(t *testing.T, base, agentID, role string) (volumes, others string) {
	t.Helper()
	resp, err := http.Get(base + "/slaves?slave_id=" + url.QueryEscape(agentID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Slaves []struct {
			ID   string                       `json:"id"`
			Full map[string][]json.RawMessage `json:"reserved_resources_full"`
		} `json:"slaves"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Slaves) != 1 {
		t.Fatalf("/slaves: %v %+v", err, doc)
	}
	var vs, os []json.RawMessage
	for _, r := range doc.Slaves[0].Full[role] {
		if strings.Contains(string(r), `"persistence"`) {
			vs = append(vs, r)
		} else {
			os = append(os, r)
		}
	}
	v, _ := json.Marshal(vs)
	o, _ := json.Marshal(os)
	return string(v), string(o)
}

// The legacy operator endpoints of master/http.cpp, as an operator uses
// them to release a deleted cluster's volume and reservation once its
// framework is torn down: DESTROY and UNRESERVE of what GET /slaves shows
// in reserved_resources_full; 400 on bad input and for volumes in use or
// not there, 409 for reservations that are not available; GET /tasks pages
// tasks as ReadOnlyHandler::tasks does.
func TestOperatorEndpointsReleaseVolumesAndReservations(t *testing.T) {
	opts := testOptions()
	opts.SandboxRoot = t.TempDir()
	opts.Credentials = map[string]string{"ops": "pw", "k3s": "fw"}
	s := newTestServer(t, opts, smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	c.user, c.pass = "k3s", "fw"
	c.subscribe(multiRoleInfo("ops", "k3s"))
	o := c.nextOffer(2 * time.Second)
	agent := o.AgentID.Value
	volume := persistentVolume("k3s", "data-0", "data", 64)
	ti := commandTask("user", agent, "sleep 60", 0.1, 32)
	ti.Resources = []mesos.Resource{reservedFor("k3s", scalarResource("cpus", 0.1)), reservedFor("k3s", scalarResource("mem", 32)), volume}
	c.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{o.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{
				reservedFor("k3s", scalarResource("cpus", 0.1)), reservedFor("k3s", scalarResource("mem", 32)),
				reservedFor("k3s", scalarResource("disk", 64))}}},
			{Type: mesos.Offer_Operation_CREATE, Create: &mesos.Offer_Operation_Create{Volumes: []mesos.Resource{volume}}},
			{Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: []mesos.TaskInfo{ti}}},
		},
		Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)},
	}})
	c.ack(c.nextUpdate("user", mesos.TASK_STARTING, 2*time.Second))
	c.ack(c.nextUpdate("user", mesos.TASK_RUNNING, 2*time.Second))
	volumeDir := filepath.Join(opts.SandboxRoot, "volumes", "roles", "k3s", "data-0")
	if _, err := os.Stat(volumeDir); err != nil {
		t.Fatalf("volume directory: %v", err)
	}

	volumes, others := fullReservations(t, s.URL(), agent, "k3s")
	destroy, unreserve := s.URL()+"/master/destroy-volumes", s.URL()+"/master/unreserve"
	form := url.Values{"slaveId": {agent}, "volumes": {volumes}}
	if status, _ := postForm(t, destroy, form, "", ""); status != http.StatusUnauthorized {
		t.Fatalf("destroy without credentials: %d", status)
	}
	if status, body := postForm(t, destroy, form, "ops", "pw"); status != http.StatusBadRequest ||
		body != "Invalid DESTROY operation: Persistent volumes in use" {
		t.Fatalf("destroy of a volume in use: %d %q", status, body)
	}
	for _, bad := range []url.Values{
		{"volumes": {volumes}},
		{"slaveId": {agent}},
		{"slaveId": {agent}, "volumes": {"not json"}},
		{"slaveId": {"no-such-agent"}, "volumes": {volumes}},
	} {
		if status, body := postForm(t, destroy, bad, "ops", "pw"); status != http.StatusBadRequest {
			t.Errorf("destroy %v: %d %q", bad, status, body)
		}
	}

	// Once the task ended, the volume is offered again: destroying it
	// rescinds that offer.
	c.mustCall(killWith("user", nil))
	c.ack(c.nextUpdate("user", mesos.TASK_KILLED, 2*time.Second))
	offered := c.next(5*time.Second, func(e *scheduler.Event) bool {
		if e.Type != scheduler.Event_OFFERS {
			return false
		}
		for _, r := range e.Offers.Offers[0].Resources {
			if r.IsPersistentVolume() {
				return true
			}
		}
		return false
	}).Offers.Offers[0]
	if status, body := postForm(t, destroy, form, "ops", "pw"); status != http.StatusAccepted {
		t.Fatalf("destroy-volumes: %d %q", status, body)
	}
	c.next(2*time.Second, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_RESCIND && e.Rescind.OfferID == offered.ID
	})
	if _, err := os.Stat(volumeDir); !os.IsNotExist(err) {
		t.Fatalf("destroyed volume's directory: %v", err)
	}
	if status, body := postForm(t, destroy, form, "ops", "pw"); status != http.StatusBadRequest || !strings.Contains(body, "Persistent volumes not found") {
		t.Fatalf("destroy again: %d %q", status, body)
	}
	// The framework goes away; its reservation (now with the volume's
	// disk as plain reserved disk) stays behind.
	c.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
	eventually(t, 2*time.Second, "framework removed", func() bool { return len(s.State().Frameworks) == 0 })
	_, others = fullReservations(t, s.URL(), agent, "k3s")
	uform := url.Values{"slaveId": {agent}, "resources": {others}}
	if status, body := postForm(t, unreserve, uform, "ops", "pw"); status != http.StatusAccepted {
		t.Fatalf("unreserve: %d %q", status, body)
	}
	if status, body := postForm(t, unreserve, uform, "ops", "pw"); status != http.StatusConflict || !strings.Contains(body, "does not contain") {
		t.Fatalf("unreserve again: %d %q", status, body)
	}
	for _, a := range s.State().Slaves {
		if len(a.ReservedResourcesFull) != 0 || a.Resources.CPUs != 4 {
			t.Fatalf("agent keeps %+v (cpus %v)", a.ReservedResourcesFull, a.Resources.CPUs)
		}
	}
	if status, _ := postForm(t, unreserve, url.Values{"slaveId": {agent}, "resources": {`[{"name":"cpus","type":"SCALAR","scalar":{"value":"1"}}]`}},
		"ops", "pw"); status != http.StatusBadRequest {
		t.Fatalf("unreserve of unreserved resources: %d", status)
	}
	req, _ := http.NewRequest(http.MethodGet, unreserve, nil)
	req.SetBasicAuth("ops", "pw")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /master/unreserve: %v %v", resp, err)
	}

	// GET /tasks: the completed task, with limit/offset/order.
	_, doc, _ := getJSON(t, s.URL()+"/tasks")
	if tasks := doc["tasks"].([]any); len(tasks) != 1 || tasks[0].(map[string]any)["id"] != "user" {
		t.Fatalf("/tasks %v", doc)
	}
	_, doc, _ = getJSON(t, s.URL()+"/tasks?offset=1&order=asc")
	if tasks := doc["tasks"].([]any); len(tasks) != 0 {
		t.Fatalf("/tasks?offset=1 %v", doc)
	}
}
