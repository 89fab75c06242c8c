package mesostest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/framing"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// testOptions are fast timings for tests.
func testOptions() Options {
	return Options{
		AllocationInterval:        20 * time.Millisecond,
		HeartbeatInterval:         time.Second,
		StagingDelay:              5 * time.Millisecond,
		StartingDelay:             5 * time.Millisecond,
		KillGracePeriod:           time.Second,
		StatusUpdateRetryInterval: 200 * time.Millisecond,
	}
}

func newTestServer(t *testing.T, opts Options, agents ...AgentConfig) *Server {
	t.Helper()
	s := NewServer(opts, agents...)
	t.Cleanup(s.Close)
	return s
}

func smallAgent(host string) AgentConfig {
	return AgentConfig{Hostname: host, CPUs: 4, MemMiB: 4096, DiskMiB: 10240, Ports: []PortRange{{31000, 31099}}}
}

func frameworkInfo(name string, caps ...mesos.FrameworkInfo_Capability_Type) *mesos.FrameworkInfo {
	info := &mesos.FrameworkInfo{User: "root", Name: name, FailoverTimeout: proto.Float64(60)}
	multi := false
	for _, c := range caps {
		info.Capabilities = append(info.Capabilities, mesos.FrameworkInfo_Capability{Type: c})
		if c == mesos.FrameworkInfo_Capability_MULTI_ROLE {
			multi = true
		}
	}
	if multi {
		info.Roles = []string{"k3s"}
	} else {
		info.Role = proto.String("*")
	}
	return info
}

// rawClient speaks the scheduler API over plain net/http, encoding calls and
// decoding events itself, as a non-Go scheduler would.
type rawClient struct {
	t        *testing.T
	endpoint string
	media    string
	user     string
	pass     string
	http     *http.Client

	frameworkID string
	streamID    string
	resp        *http.Response
	events      chan *scheduler.Event
	backlog     []*scheduler.Event
	readerDone  chan struct{}
}

func newRawClient(t *testing.T, baseURL, media string) *rawClient {
	return &rawClient{
		t:        t,
		endpoint: baseURL + "/api/v1/scheduler",
		media:    media,
		http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
}

func (c *rawClient) encode(call *scheduler.Call) []byte {
	c.t.Helper()
	var b []byte
	var err error
	if c.media == mediaProtobuf {
		b, err = call.Marshal()
	} else {
		b, err = json.Marshal(call)
	}
	if err != nil {
		c.t.Fatalf("encoding call: %v", err)
	}
	return b
}

// post sends raw bytes with the given headers and returns status and body.
func (c *rawClient) post(body []byte, headers map[string]string) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

// call sends a non-SUBSCRIBE call on the current subscription.
func (c *rawClient) call(call *scheduler.Call) (int, string) {
	c.t.Helper()
	if call.FrameworkID == nil && c.frameworkID != "" {
		call.FrameworkID = &mesos.FrameworkID{Value: c.frameworkID}
	}
	status, _, body := c.post(c.encode(call), map[string]string{
		"Content-Type": c.media, "Accept": c.media, headerStreamID: c.streamID,
	})
	return status, body
}

func (c *rawClient) mustCall(call *scheduler.Call) {
	c.t.Helper()
	if status, body := c.call(call); status != http.StatusAccepted {
		c.t.Fatalf("%s: got %d %q, want 202", call.Type, status, body)
	}
}

// subscribe opens the event stream and waits for SUBSCRIBED.
func (c *rawClient) subscribe(info *mesos.FrameworkInfo) *scheduler.Event {
	c.t.Helper()
	call := &scheduler.Call{Type: scheduler.Call_SUBSCRIBE, Subscribe: &scheduler.Call_Subscribe{FrameworkInfo: info}}
	if info.ID != nil {
		call.FrameworkID = info.ID
	}
	req, err := http.NewRequest(http.MethodPost, c.endpoint, bytes.NewReader(c.encode(call)))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", c.media)
	req.Header.Set("Accept", c.media)
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("SUBSCRIBE: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.t.Fatalf("SUBSCRIBE: %d %s", resp.StatusCode, b)
	}
	if got := resp.Header.Get("Content-Type"); got != c.media {
		c.t.Fatalf("SUBSCRIBE Content-Type %q, want %q", got, c.media)
	}
	c.closeStream()
	c.resp = resp
	c.streamID = resp.Header.Get(headerStreamID)
	if c.streamID == "" {
		c.t.Fatal("SUBSCRIBE response without Mesos-Stream-Id")
	}
	c.events = make(chan *scheduler.Event, 10000)
	c.backlog = nil
	c.readerDone = make(chan struct{})
	go c.readEvents(resp.Body, c.events, c.readerDone)
	ev := c.next(time.Second*5, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_SUBSCRIBED || e.Type == scheduler.Event_ERROR
	})
	if ev.Type == scheduler.Event_SUBSCRIBED {
		c.frameworkID = ev.Subscribed.FrameworkID.Value
	}
	return ev
}

func (c *rawClient) readEvents(body io.ReadCloser, out chan<- *scheduler.Event, done chan<- struct{}) {
	defer close(done)
	defer close(out)
	r := recordio.NewReader(body)
	for {
		frame, err := readFrame(r)
		if err != nil {
			return
		}
		ev := &scheduler.Event{}
		if c.media == mediaProtobuf {
			err = ev.Unmarshal(frame)
		} else {
			err = json.Unmarshal(frame, ev)
		}
		if err != nil {
			c.t.Errorf("decoding event: %v", err)
			return
		}
		out <- ev
	}
}

// readFrame reads one whole RecordIO record.
func readFrame(r framing.Reader) ([]byte, error) {
	frame, err := r.ReadFrame()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), frame...), nil
}

// next returns the first event that matches, oldest first. Events that do
// not match are kept for later calls, so waiting for one kind of event
// never loses another.
func (c *rawClient) next(timeout time.Duration, match func(*scheduler.Event) bool) *scheduler.Event {
	c.t.Helper()
	return nextEvent(c.t, c.events, &c.backlog, timeout, match)
}

// nextEvent returns the first event that matches, from the backlog of events an earlier
// wait skipped or from the stream; what does not match (heartbeats aside) goes to the
// backlog, so waiting for one kind of event never loses another.
func nextEvent(t testing.TB, events <-chan *scheduler.Event, backlog *[]*scheduler.Event, timeout time.Duration, match func(*scheduler.Event) bool) *scheduler.Event {
	t.Helper()
	for i, ev := range *backlog {
		if match(ev) {
			*backlog = append((*backlog)[:i:i], (*backlog)[i+1:]...)
			return ev
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("event stream closed while waiting")
			}
			if match(ev) {
				return ev
			}
			if ev.Type != scheduler.Event_HEARTBEAT {
				*backlog = append(*backlog, ev)
			}
		case <-deadline:
			t.Fatalf("timed out waiting for event")
		}
	}
}

func (c *rawClient) nextOffer(timeout time.Duration) mesos.Offer {
	c.t.Helper()
	ev := c.next(timeout, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
	return ev.Offers.Offers[0]
}

// nextUpdate waits for an update of taskID that matches state.
func (c *rawClient) nextUpdate(taskID string, state mesos.TaskState, timeout time.Duration) mesos.TaskStatus {
	c.t.Helper()
	ev := c.next(timeout, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == taskID && e.Update.Status.GetState() == state
	})
	return ev.Update.Status
}

// ackAll acknowledges a status if it carries a UUID.
func (c *rawClient) ack(st mesos.TaskStatus) {
	c.t.Helper()
	if len(st.UUID) == 0 {
		return
	}
	c.mustCall(&scheduler.Call{Type: scheduler.Call_ACKNOWLEDGE, Acknowledge: &scheduler.Call_Acknowledge{
		AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID,
	}})
}

// expectClosed waits for the server to end the stream.
func (c *rawClient) expectClosed(timeout time.Duration) {
	c.t.Helper()
	select {
	case <-c.readerDone:
	case <-time.After(timeout):
		c.t.Fatal("stream was not closed")
	}
}

func (c *rawClient) closeStream() {
	if c.resp != nil {
		c.resp.Body.Close()
		<-c.readerDone
		c.resp = nil
	}
}

func commandTask(name string, agentID string, cmd string, cpus, mem float64) mesos.TaskInfo {
	return mesos.TaskInfo{
		Name:    name,
		TaskID:  mesos.TaskID{Value: name},
		AgentID: mesos.AgentID{Value: agentID},
		Command: &mesos.CommandInfo{Value: proto.String(cmd)},
		Resources: []mesos.Resource{
			scalarResource("cpus", cpus), scalarResource("mem", mem),
		},
	}
}

func scalarResource(name string, v float64) mesos.Resource {
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
}

func launchCall(offerID mesos.OfferID, tasks ...mesos.TaskInfo) *scheduler.Call {
	return &scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{offerID},
		Operations: []mesos.Offer_Operation{{
			Type: mesos.Offer_Operation_LAUNCH, Launch: &mesos.Offer_Operation_Launch{TaskInfos: tasks},
		}},
	}}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func stateTask(s *Server, taskID string) *StateTask {
	st := s.State()
	for _, fw := range st.Frameworks {
		for _, lists := range [][]StateTask{fw.Tasks, fw.CompletedTasks, fw.UnreachableTasks} {
			for i := range lists {
				if lists[i].ID == taskID {
					return &lists[i]
				}
			}
		}
	}
	return nil
}

var bothMedia = []string{mediaJSON, mediaProtobuf}

// declinePendingOffers declines every offer that arrives within a short
// quiet period (offers already in flight when suppressing).
func (c *rawClient) declinePendingOffers() {
	c.t.Helper()
	pending := c.backlog
	c.backlog = nil
	for _, ev := range pending {
		if ev.Type == scheduler.Event_OFFERS {
			for _, o := range ev.Offers.Offers {
				c.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
					OfferIDs: []mesos.OfferID{o.ID}, Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)}}})
			}
		} else {
			c.backlog = append(c.backlog, ev)
		}
	}
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.Type == scheduler.Event_OFFERS {
				for _, o := range ev.Offers.Offers {
					c.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
						OfferIDs: []mesos.OfferID{o.ID}, Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)}}})
				}
			}
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}
