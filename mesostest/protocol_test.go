package mesostest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func TestSubscribeStreamsEvents(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			opts := testOptions()
			opts.HeartbeatInterval = 50 * time.Millisecond
			s := newTestServer(t, opts, smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			ev := c.subscribe(frameworkInfo("proto"))
			if ev.Type != scheduler.Event_SUBSCRIBED {
				t.Fatalf("first event %s", ev.Type)
			}
			if got := ev.Subscribed.GetHeartbeatIntervalSeconds(); got != 0.05 {
				t.Errorf("heartbeat_interval_seconds = %v", got)
			}
			if ev.Subscribed.MasterInfo == nil || ev.Subscribed.MasterInfo.GetPort() == 0 {
				t.Errorf("missing master_info: %+v", ev.Subscribed.MasterInfo)
			}
			o := c.nextOffer(2 * time.Second)
			// Heartbeats keep coming on the interval.
			for i := 0; i < 3; i++ {
				c.next(time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_HEARTBEAT })
			}
			if o.Hostname != "127.0.0.1" || o.FrameworkID.Value != c.frameworkID {
				t.Errorf("offer %+v", o)
			}
			if got := scalarOf(o.Resources, "cpus"); got != 4 {
				t.Errorf("offered cpus %v", got)
			}
			if o.AllocationInfo != nil || o.Resources[0].AllocationInfo != nil {
				t.Error("non-MULTI_ROLE framework got allocation info")
			}
			c.closeStream()
			eventually(t, 2*time.Second, "framework disconnected", func() bool {
				st := s.State()
				return len(st.Frameworks) == 1 && !st.Frameworks[0].Connected
			})
		})
	}
}

func TestSchedulerErrorStatuses(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			teardown := &scheduler.Call{Type: scheduler.Call_TEARDOWN, FrameworkID: &mesos.FrameworkID{Value: "nope"}}

			// 405: only POST.
			resp, err := http.Get(c.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("GET: %d", resp.StatusCode)
			}
			expect := func(name string, want int, body []byte, headers map[string]string) string {
				t.Helper()
				status, _, msg := c.post(body, headers)
				if status != want {
					t.Errorf("%s: got %d (%s), want %d", name, status, strings.TrimSpace(msg), want)
				}
				return msg
			}
			expect("no content type", 400, c.encode(teardown), map[string]string{})
			expect("unsupported content type", 415, c.encode(teardown), map[string]string{"Content-Type": "text/plain"})
			expect("malformed body", 400, []byte("\x08\xff\xff{not a call"), map[string]string{"Content-Type": media})
			expect("missing type", 400, c.encode(&scheduler.Call{}), map[string]string{"Content-Type": media})
			expect("missing framework id", 400, c.encode(&scheduler.Call{Type: scheduler.Call_TEARDOWN}), map[string]string{"Content-Type": media})
			expect("missing accept", 400, c.encode(&scheduler.Call{Type: scheduler.Call_ACCEPT, FrameworkID: teardown.FrameworkID}), map[string]string{"Content-Type": media})
			sub := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: frameworkInfo("x")}}
			expect("subscribe not acceptable", 406, c.encode(sub), map[string]string{"Content-Type": media, "Accept": "text/html"})
			expect("subscribe with stream id", 400, c.encode(sub), map[string]string{"Content-Type": media, headerStreamID: "abc"})
			mismatched := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, FrameworkID: &mesos.FrameworkID{Value: "a"},
				Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: frameworkInfo("x")}}
			expect("framework id mismatch", 400, c.encode(mismatched), map[string]string{"Content-Type": media})
			if media == mediaJSON {
				expect("framework info without user", 400, []byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"name":"x"}}}`),
					map[string]string{"Content-Type": media})
			}
			if msg := expect("unknown framework", 400, c.encode(teardown), map[string]string{"Content-Type": media}); !strings.Contains(msg, "Framework cannot be found") {
				t.Errorf("unknown framework message %q", msg)
			}

			c.subscribe(frameworkInfo("errors"))
			call := &scheduler.Call{Type: scheduler.Call_REVIVE, FrameworkID: &mesos.FrameworkID{Value: c.frameworkID}}
			expect("missing stream id", 400, c.encode(call), map[string]string{"Content-Type": media})
			expect("wrong stream id", 400, c.encode(call), map[string]string{"Content-Type": media, headerStreamID: "0000"})
			expect("good call", 202, c.encode(call), map[string]string{"Content-Type": media, headerStreamID: c.streamID})

			// 403: the framework is known but not subscribed.
			oldStream := c.streamID
			if err := s.DropStream(c.frameworkID); err != nil {
				t.Fatal(err)
			}
			c.expectClosed(2 * time.Second)
			expect("unsubscribed framework", 403, c.encode(call), map[string]string{"Content-Type": media, headerStreamID: oldStream})

			// Injected rejections and the leader states.
			s.RejectCalls(http.StatusTooManyRequests)
			expect("rejected", 429, c.encode(call), map[string]string{"Content-Type": media})
			s.RejectCalls(0)
			s.SetUnavailable(true)
			expect("no leader", 503, c.encode(call), map[string]string{"Content-Type": media})
			s.SetUnavailable(false)

			other := s.AddMaster()
			oc := newRawClient(t, other, media)
			status, hdr, _ := oc.post(c.encode(sub), map[string]string{"Content-Type": media})
			if status != http.StatusTemporaryRedirect {
				t.Fatalf("non-leader: %d", status)
			}
			wantLocation := "//127.0.0.1:" + strings.TrimPrefix(s.URL(), "http://127.0.0.1:") + "/api/v1/scheduler"
			if got := hdr.Get("Location"); got != wantLocation {
				t.Errorf("Location %q, want %q", got, wantLocation)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	opts := testOptions()
	opts.Credentials = map[string]string{"k3s": "s3cret"}
	s := newTestServer(t, opts, smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	sub := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: frameworkInfo("auth")}}
	status, hdr, _ := c.post(c.encode(sub), map[string]string{"Content-Type": mediaJSON})
	if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic realm=") {
		t.Fatalf("no credentials: %d %v", status, hdr)
	}
	c.user, c.pass = "k3s", "wrong"
	if status, _, _ := c.post(c.encode(sub), map[string]string{"Content-Type": mediaJSON}); status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", status)
	}
	c.pass = "s3cret"
	other := frameworkInfo("auth")
	other.Principal = proto.String("someone-else")
	bad := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: other}}
	if status, _, _ := c.post(c.encode(bad), map[string]string{"Content-Type": mediaJSON}); status != http.StatusBadRequest {
		t.Fatalf("principal mismatch: %d", status)
	}
	c.subscribe(frameworkInfo("auth"))
	if got := s.State().Frameworks[0].Principal; got != "k3s" {
		t.Errorf("principal %q, want the authenticated one", got)
	}
	c.mustCall(&scheduler.Call{Type: scheduler.Call_SUPPRESS})
}

func TestSubscribeValidationSendsError(t *testing.T) {
	s := newTestServer(t, testOptions())
	c := newRawClient(t, s.URL(), mediaJSON)
	info := frameworkInfo("bad", mesos.FrameworkInfo_Capability_MULTI_ROLE)
	info.Role = proto.String("x") // role must not be set with MULTI_ROLE
	ev := c.subscribe(info)
	if ev.Type != scheduler.Event_ERROR || !strings.Contains(ev.Error.Message, "must not be set") {
		t.Fatalf("got %+v", ev)
	}
	c.expectClosed(2 * time.Second)
}
