package mesostest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// stout's JSON -> protobuf parsing (3rdparty/stout/include/stout/protobuf.hpp)
// takes numbers and booleans as strings, null as unset, a lone value for a
// repeated field, and drops unknown names of optional enums.
func TestJSONCallsParseLikeStout(t *testing.T) {
	body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"lenient",
		"failover_timeout":"60.5","checkpoint":"true","hostname":null,
		"capabilities":[{"type":"PARTITION_AWARE"},{"type":"NO_SUCH_CAPABILITY"}],
		"roles":"k3s"}}}`
	call, err := decodeCall(mediaJSON, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	info := call.Subscribe.FrameworkInfo
	if info.GetFailoverTimeout() != 60.5 || !info.GetCheckpoint() || info.Hostname != nil {
		t.Fatalf("framework info %+v", info)
	}
	// The unknown type leaves that capability's (optional) type unset.
	if len(info.Capabilities) != 2 || info.Capabilities[0].Type != mesos.FrameworkInfo_Capability_PARTITION_AWARE ||
		info.Capabilities[1].Type != mesos.FrameworkInfo_Capability_UNKNOWN {
		t.Fatalf("capabilities %+v", info.Capabilities)
	}
	if len(info.Roles) != 1 || info.Roles[0] != "k3s" {
		t.Fatalf("roles %v", info.Roles)
	}

	kill := `{"type":"KILL","framework_id":{"value":"f"},"kill":{"task_id":{"value":"t"},
		"kill_policy":{"grace_period":{"nanoseconds":"3000000000"}}}}`
	call, err = decodeCall(mediaJSON, []byte(kill))
	if err != nil {
		t.Fatal(err)
	}
	if got := call.Kill.KillPolicy.GracePeriod.Nanoseconds; got != 3000000000 {
		t.Fatalf("nanoseconds %d", got)
	}

	// An unknown call type leaves the (optional) type unset: the call then
	// fails validation, as in Mesos.
	call, err = decodeCall(mediaJSON, []byte(`{"type":"NO_SUCH_CALL","framework_id":{"value":"f"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := validateCall(call); err == nil || !strings.Contains(err.Error(), "Expecting 'type' to be present") {
		t.Fatalf("validation of an unknown call type: %v", err)
	}

	// A required enum must be known; numbers must be numbers.
	for _, bad := range []string{
		`{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{"offer_ids":[{"value":"o"}],"operations":[{"type":"CREATE",
			"create":{"volumes":[{"name":"disk","type":"SCALAR","scalar":{"value":1},"disk":{"volume":{"mode":"BOGUS","container_path":"d"}}}]}}]}}`,
		`{"type":"KILL","framework_id":{"value":"f"},"kill":{"task_id":{"value":"t"},"kill_policy":{"grace_period":{"nanoseconds":"soon"}}}}`,
	} {
		if _, err := decodeCall(mediaJSON, []byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// End to end: a JSON ACCEPT whose numbers are strings launches its task;
// the master does not require CommandInfo.value (a Docker task without
// one runs its image's entrypoint) and takes task IDs with spaces
// (common/validation.cpp validateID refuses only control characters and
// path separators).
func TestJSONAcceptWithStringNumbersAndDockerEntrypoint(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("strings", partitionAwareCaps...))
	o := c.nextOffer(2 * time.Second)
	body := fmt.Sprintf(`{"type":"ACCEPT","framework_id":{"value":%q},"accept":{"offer_ids":[{"value":%q}],
		"filters":{"refuse_seconds":"0"},
		"operations":[{"type":"LAUNCH","launch":{"task_infos":[
			{"name":"entrypoint","task_id":{"value":"entry point"},"agent_id":{"value":%q},
			 "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":"0.5"}},{"name":"mem","type":"SCALAR","scalar":{"value":"128"}},
			              {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":"31000","end":"31001"}]}}],
			 "command":{"shell":"false","environment":{"variables":[{"name":"X","value":"1"}]}},
			 "container":{"type":"DOCKER","docker":{"image":"rancher/k3s","network":"HOST"}},
			 "kill_policy":{"grace_period":{"nanoseconds":"2500000000"}}}]}}]}}`,
		c.frameworkID, o.ID.Value, o.AgentID.Value)
	status, _, answer := c.post([]byte(body), map[string]string{"Content-Type": mediaJSON, headerStreamID: c.streamID})
	if status != http.StatusAccepted {
		t.Fatalf("ACCEPT: %d %s", status, answer)
	}
	c.ack(c.nextUpdate("entry point", mesos.TASK_STARTING, 2*time.Second))
	c.ack(c.nextUpdate("entry point", mesos.TASK_RUNNING, 2*time.Second))
	s.mu.Lock()
	task := s.findTaskLocked("entry point")
	grace := task.info.GetKillPolicy().GetGracePeriod().GetNanoseconds()
	ports := task.resources.String()
	s.mu.Unlock()
	if grace != 2500000000 || !strings.Contains(ports, "31000-31001") {
		t.Fatalf("kill policy %d, resources %s", grace, ports)
	}

	// A KILL whose kill policy is a string too.
	kill := fmt.Sprintf(`{"type":"KILL","framework_id":{"value":%q},"kill":{"task_id":{"value":"entry point"},
		"kill_policy":{"grace_period":{"nanoseconds":"100000000"}}}}`, c.frameworkID)
	if status, _, answer := c.post([]byte(kill), map[string]string{"Content-Type": mediaJSON, headerStreamID: c.streamID}); status != http.StatusAccepted {
		t.Fatalf("KILL: %d %s", status, answer)
	}
	c.ack(c.nextUpdate("entry point", mesos.TASK_KILLING, 2*time.Second))
	c.ack(c.nextUpdate("entry point", mesos.TASK_KILLED, 2*time.Second))

	// Still refused, as by Mesos: a SECRET variable with a value.
	secret := mesos.Environment_Variable_SECRET
	bad := commandTask("bad-secret", o.AgentID.Value, "true", 0.1, 32)
	bad.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "S", Type: &secret, Value: new(string)}}}
	offer := c.nextOffer(2 * time.Second)
	c.mustCall(launchCall(offer.ID, bad))
	st := c.nextUpdate("bad-secret", mesos.TASK_ERROR, 2*time.Second)
	if st.GetMessage() != "Task's `CommandInfo` is invalid: Environment variable 'S' of type 'SECRET' must have a secret set" {
		t.Fatalf("message %q", st.GetMessage())
	}
}

// master/validation.cpp checks only the environment of a CommandInfo: a
// Docker task with shell false and no value is launched (it runs the
// image's entrypoint).
func TestDockerTaskWithoutCommandValueIsLaunched(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaProtobuf)
	c.subscribe(frameworkInfo("entrypoint", partitionAwareCaps...))
	o := c.nextOffer(2 * time.Second)
	ti := dockerTask("k3s server", o.AgentID.Value)
	ti.Command.Value = nil
	ti.Command.Shell = new(bool)
	c.mustCall(launchCall(o.ID, ti))
	st := c.next(2*time.Second, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "k3s server"
	}).Update.Status
	if st.GetState() != mesos.TASK_STARTING {
		t.Fatalf("%s %q", st.GetState(), st.GetMessage())
	}
}
