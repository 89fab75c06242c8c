package mesosbridge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/recordio"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// sinkMaster is the least of a Mesos master that lets the bridge run: one event stream
// the benchmark writes OFFERS and UPDATE events to, 202 for every call, answers to
// explicit reconciliation, and the launched TaskInfos of each ACCEPT handed back. It
// keeps the emulator's allocator and bookkeeping out of the measured path.
type sinkMaster struct {
	srv      *httptest.Server
	events   chan *scheduler.Event
	launched chan []mesos.TaskInfo
	revived  chan struct{}
	stopOnce sync.Once
	stop     chan struct{}
}

func newSinkMaster(tb testing.TB) *sinkMaster {
	m := &sinkMaster{events: make(chan *scheduler.Event, 1024), launched: make(chan []mesos.TaskInfo, 1024),
		revived: make(chan struct{}, 1), stop: make(chan struct{})}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	tb.Cleanup(func() {
		m.stopOnce.Do(func() { close(m.stop) })
		m.srv.Close()
	})
	return m
}

func (m *sinkMaster) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var call scheduler.Call
	if err := call.Unmarshal(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch call.Type {
	case scheduler.Call_SUBSCRIBE:
		m.stream(w, r)
		return
	case scheduler.Call_ACCEPT:
		for _, op := range call.Accept.Operations {
			switch op.Type {
			case mesos.Offer_Operation_LAUNCH:
				m.launched <- op.Launch.TaskInfos
			case mesos.Offer_Operation_LAUNCH_GROUP:
				// Tasks under the Mesos containerizer go as task groups (task_info.go).
				m.launched <- op.LaunchGroup.TaskGroup.Tasks
			}
		}
	case scheduler.Call_REVIVE:
		select {
		case m.revived <- struct{}{}:
		default:
		}
	case scheduler.Call_RECONCILE:
		for _, task := range call.Reconcile.Tasks {
			m.events <- statusEvent(task.TaskID.Value, mesos.TASK_UNKNOWN)
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

func (m *sinkMaster) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", mediaProtobuf)
	w.Header().Set(headerStreamID, "bench-stream")
	w.WriteHeader(http.StatusOK)
	frames := recordio.NewWriter(w)
	flusher := w.(http.Flusher)
	write := func(ev *scheduler.Event) bool {
		b, _ := ev.Marshal()
		if frames.WriteFrame(b) != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	heartbeat := 60.0
	write(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: "bench-framework"}, HeartbeatIntervalSeconds: &heartbeat}})
	for {
		select {
		case ev := <-m.events:
			if !write(ev) {
				return
			}
		case <-r.Context().Done():
			return
		case <-m.stop:
			return
		}
	}
}

func statusEvent(taskID string, state mesos.TaskState) *scheduler.Event {
	return &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: mesos.TaskStatus{
		TaskID: mesos.TaskID{Value: taskID}, State: &state, AgentID: &mesos.AgentID{Value: "agent"},
	}}}
}

// BenchmarkOfferToAccept measures, inside the bridge, the time from an OFFERS event's
// frame being read off the stream to the first ACCEPT of the round written to the
// connection: decoding, the hop to the framework loop, matching all pending tasks
// against all offers, building the TaskInfos, recording them as staging and encoding
// the call. A round offers one agent per offer to 3 servers (hostname:UNIQUE) and the
// agents; between rounds the master reports every launched task lost and the controller
// hands the tasks over again, so each round finds them all pending.
func BenchmarkOfferToAccept(b *testing.B) {
	for _, size := range []struct{ agents, offers int }{{10, 10}, {97, 100}} {
		b.Run(fmt.Sprintf("%d-tasks-%d-offers", size.agents+3, size.offers), func(b *testing.B) {
			benchmarkOfferToAccept(b, size.agents, size.offers)
		})
	}
}

func benchmarkOfferToAccept(b *testing.B, agents, offerCount int) {
	master := newSinkMaster(b)
	bridge := newTestBridge(b)
	var mu sync.Mutex
	var samples []time.Duration
	bridge.decided = func(d time.Duration) {
		mu.Lock()
		samples = append(samples, d)
		mu.Unlock()
	}
	desired := []TaskSpec{smallServer(0), smallServer(1), smallServer(2)}
	for i := range agents {
		desired = append(desired, smallAgent(i, 3))
	}
	c := newController(b, bridge, clusterConfig("bench", master.srv.URL), desired...)
	c.until("framework ID handed back", func(o Observed) bool { return c.cfg.FrameworkID != "" && o.Connection.Connected })
	c.reconcile()
	// The sink offers only when told to: wait until the bridge wants offers (it has the
	// framework ID back and its reconciliation answered), which it says with REVIVE.
	select {
	case <-master.revived:
	case <-time.After(waitLong):
		b.Fatal("the bridge never asked for offers")
	}

	round := 0
	nextOffers := func() []mesos.Offer {
		round++
		specs := make([]offerSpec, offerCount)
		for i := range specs {
			specs[i] = offerSpec{id: fmt.Sprintf("offer-%d-%d", round, i), host: fmt.Sprintf("node-%d", i),
				cpus: 4, mem: 8192, disk: 4096, ports: [][2]uint64{{31000, 31100}}}
		}
		return offers(specs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b.ResetTimer()
	for range b.N {
		master.events <- &scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: nextOffers()}}
		var launched []mesos.TaskInfo
		for len(launched) < len(desired) {
			select {
			case infos := <-master.launched:
				launched = append(launched, infos...)
			case <-ctx.Done():
				b.Fatalf("launched %d of %d tasks", len(launched), len(desired))
			}
		}
		b.StopTimer()
		for _, info := range launched {
			master.events <- statusEvent(info.TaskID.Value, mesos.TASK_LOST)
		}
		for {
			obs, _ := bridge.Observe(c.cfg.Key())
			if len(pendingOf(desired, obs.Tasks)) == len(desired) {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		// The bridge relaunches an ended task only when the controller hands it over again,
		// as the operator's next pass does.
		c.reconcile()
		b.StartTimer()
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(samples) != b.N {
		b.Fatalf("%d decisions for %d rounds", len(samples), b.N)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99")
}
