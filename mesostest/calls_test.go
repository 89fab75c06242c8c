package mesostest

import (
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// TestRemainingCalls covers the calls not exercised elsewhere, in both
// encodings: LAUNCH_GROUP, SHUTDOWN, MESSAGE, REQUEST, inverse offers,
// UPDATE_FRAMEWORK and RECONCILE_OPERATIONS.
func TestRemainingCalls(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			c.subscribe(frameworkInfo("calls", partitionAwareCaps...))
			o := c.nextOffer(2 * time.Second)
			agentID := o.AgentID

			exec := mesos.ExecutorInfo{
				Type:        mesos.ExecutorInfo_DEFAULT,
				ExecutorID:  mesos.ExecutorID{Value: "pod-0"},
				FrameworkID: &mesos.FrameworkID{Value: c.frameworkID},
				Resources:   []mesos.Resource{scalarResource("cpus", 0.1), scalarResource("mem", 32), scalarResource("disk", 32)},
			}
			group := []mesos.TaskInfo{commandTask("etcd-0", agentID.Value, "etcd", 1, 256), commandTask("proxy-0", agentID.Value, "proxy", 1, 256)}
			c.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
				OfferIDs: []mesos.OfferID{o.ID},
				Operations: []mesos.Offer_Operation{{Type: mesos.Offer_Operation_LAUNCH_GROUP,
					LaunchGroup: &mesos.Offer_Operation_LaunchGroup{Executor: exec, TaskGroup: mesos.TaskGroupInfo{Tasks: group}}}},
				Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)},
			}})
			for _, id := range []string{"etcd-0", "proxy-0"} {
				st := c.nextUpdate(id, mesos.TASK_STARTING, 2*time.Second)
				if st.GetExecutorID().Value != "pod-0" {
					t.Fatalf("group task executor %v", st.ExecutorID)
				}
				c.ack(st)
				c.ack(c.nextUpdate(id, mesos.TASK_RUNNING, 2*time.Second))
			}
			if used := s.State().Slaves[0].UsedResources.CPUs; used < 2.09 || used > 2.11 {
				t.Fatalf("used cpus %v, want tasks + executor = 2.1", used)
			}

			c.mustCall(&scheduler.Call{Type: scheduler.Call_MESSAGE, Message: &scheduler.Call_Message{
				AgentID: agentID, ExecutorID: mesos.ExecutorID{Value: "pod-0"}, Data: []byte("hello")}})
			c.mustCall(&scheduler.Call{Type: scheduler.Call_REQUEST, Request: &scheduler.Call_Request{}})
			c.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT_INVERSE_OFFERS, AcceptInverseOffers: &scheduler.Call_AcceptInverseOffers{
				InverseOfferIDs: []mesos.OfferID{{Value: "none"}}}})
			c.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE_INVERSE_OFFERS, DeclineInverseOffers: &scheduler.Call_DeclineInverseOffers{
				InverseOfferIDs: []mesos.OfferID{{Value: "none"}}}})

			// SHUTDOWN of the executor kills the whole group.
			c.mustCall(&scheduler.Call{Type: scheduler.Call_SHUTDOWN, Shutdown: &scheduler.Call_Shutdown{
				ExecutorID: mesos.ExecutorID{Value: "pod-0"}, AgentID: agentID}})
			for _, id := range []string{"etcd-0", "proxy-0"} {
				c.ack(c.nextUpdate(id, mesos.TASK_KILLING, 2*time.Second))
				c.ack(c.nextUpdate(id, mesos.TASK_KILLED, 2*time.Second))
			}
			eventually(t, 2*time.Second, "group resources released", func() bool {
				return s.State().Slaves[0].UsedResources.CPUs == 0
			})

			// UPDATE_FRAMEWORK answers 200 and takes effect.
			info := frameworkInfo("calls-renamed", partitionAwareCaps...)
			info.ID = &mesos.FrameworkID{Value: c.frameworkID}
			status, body := c.call(&scheduler.Call{Type: scheduler.Call_UPDATE_FRAMEWORK,
				UpdateFramework: &scheduler.Call_UpdateFramework{FrameworkInfo: *info}})
			if status != http.StatusOK {
				t.Fatalf("UPDATE_FRAMEWORK: %d %s", status, body)
			}
			if got := s.State().Frameworks[0].Name; got != "calls-renamed" {
				t.Fatalf("name after update %q", got)
			}

			// RECONCILE_OPERATIONS answers synchronously in the Accept type.
			status, body = c.call(&scheduler.Call{Type: scheduler.Call_RECONCILE_OPERATIONS,
				ReconcileOperations: &scheduler.Call_ReconcileOperations{Operations: []scheduler.Call_ReconcileOperations_Operation{
					{OperationID: mesos.OperationID{Value: "op-1"}, AgentID: &agentID}}}})
			if status != http.StatusOK {
				t.Fatalf("RECONCILE_OPERATIONS: %d %s", status, body)
			}
			var resp scheduler.Response
			var err error
			if media == mediaProtobuf {
				err = resp.Unmarshal([]byte(body))
			} else {
				err = json.Unmarshal([]byte(body), &resp)
			}
			if err != nil || len(resp.GetReconcileOperations().GetOperationStatuses()) != 1 ||
				resp.ReconcileOperations.OperationStatuses[0].State != mesos.OPERATION_UNKNOWN {
				t.Fatalf("RECONCILE_OPERATIONS response %+v (%v)", resp, err)
			}
		})
	}
}

func TestFaultInjectionOnTasksAndStreams(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("faults", partitionAwareCaps...))
	launchRunning(t, c, "victim")
	if err := s.FailTask("victim", mesos.TASK_FAILED, mesos.REASON_CONTAINER_LIMITATION_MEMORY, "OOM killed"); err != nil {
		t.Fatal(err)
	}
	st := c.nextUpdate("victim", mesos.TASK_FAILED, 2*time.Second)
	if st.GetReason() != mesos.REASON_CONTAINER_LIMITATION_MEMORY || st.GetMessage() != "OOM killed" || len(st.UUID) == 0 {
		t.Fatalf("forced failure %+v", st)
	}
	c.ack(st)
	if err := s.FailTask("victim", mesos.TASK_FAILED, mesos.REASON_TASK_UNKNOWN, ""); err == nil {
		t.Fatal("failing a finished task succeeded")
	}

	// Heartbeats can be stopped and resumed.
	if err := s.StopHeartbeats(c.frameworkID, true); err != nil {
		t.Fatal(err)
	}
	opts := s.opts.HeartbeatInterval
	select {
	case ev := <-c.events:
		if ev.Type == scheduler.Event_HEARTBEAT {
			t.Fatal("heartbeat while stopped")
		}
	case <-time.After(opts + 200*time.Millisecond):
	}
	if err := s.StopHeartbeats(c.frameworkID, false); err != nil {
		t.Fatal(err)
	}
	c.next(opts+time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_HEARTBEAT })

	// Delayed calls still succeed, later.
	s.DelayCalls(150 * time.Millisecond)
	start := time.Now()
	c.mustCall(&scheduler.Call{Type: scheduler.Call_REVIVE})
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("call was not delayed")
	}
	s.DelayCalls(0)
}

func TestStateEndpointShape(t *testing.T) {
	agent := smallAgent("127.0.0.1")
	agent.Attributes = map[string]string{"rack": "r1"}
	s := newTestServer(t, testOptions(), agent)
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("shape", mesos.FrameworkInfo_Capability_MULTI_ROLE))
	launchRunning(t, c, "server-0")
	for _, path := range []string{"/state", "/master/state", "/state.json"} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, key := range []string{"version", "leader", "leader_info", "slaves", "frameworks", "completed_frameworks"} {
			if _, ok := doc[key]; !ok {
				t.Errorf("%s lacks %q", path, key)
			}
		}
		slave := doc["slaves"].([]any)[0].(map[string]any)
		for _, key := range []string{"hostname", "resources", "used_resources", "reserved_resources", "attributes"} {
			if _, ok := slave[key]; !ok {
				t.Errorf("%s slave lacks %q", path, key)
			}
		}
		fw := doc["frameworks"].([]any)[0].(map[string]any)
		for _, key := range []string{"id", "name", "roles", "active", "tasks", "completed_tasks"} {
			if _, ok := fw[key]; !ok {
				t.Errorf("%s framework lacks %q", path, key)
			}
		}
		task := fw["tasks"].([]any)[0].(map[string]any)
		if task["state"] != "TASK_RUNNING" || task["role"] != "k3s" {
			t.Errorf("%s task %v", path, task)
		}
	}
	st := s.State()
	if st.Slaves[0].Attributes["rack"] != "r1" || !strings.HasPrefix(st.Slaves[0].Resources.Ports, "[31000-") {
		t.Errorf("agent state %+v", st.Slaves[0])
	}
	resp, err := http.Get(s.URL() + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %v", err)
	}
	resp.Body.Close()
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s := NewServer(testOptions(), processAgent("127.0.0.1"), smallAgent("127.0.0.2"))
	c := newRawClient(t, s.URL(), mediaProtobuf)
	c.subscribe(frameworkInfo("leak", partitionAwareCaps...))
	o := c.nextOffer(2 * time.Second)
	ti := commandTask("sleeper", o.AgentID.Value, "sleep 30", 0.1, 32)
	ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{Value: proto.String("true")},
		DelaySeconds: proto.Float64(0), IntervalSeconds: proto.Float64(0.05)}
	c.mustCall(launchCall(o.ID, ti))
	c.ack(c.nextUpdate("sleeper", mesos.TASK_STARTING, 2*time.Second))
	c.ack(c.nextUpdate("sleeper", mesos.TASK_RUNNING, 2*time.Second))
	s.AddMaster()
	s.Close()
	c.closeStream()
	http.DefaultClient.CloseIdleConnections()
	c.http.CloseIdleConnections()
	eventually(t, 3*time.Second, "goroutines to end", func() bool {
		return runtime.NumGoroutine() <= before+1
	})
}
