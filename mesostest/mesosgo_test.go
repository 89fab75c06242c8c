package mesostest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// goScheduler is a generic scheduler built only from mesos-go's v1 client
// (httpcli + httpsched), the way frameworks written for real Mesos are.
type goScheduler struct {
	t           *testing.T
	mu          sync.Mutex
	caller      calls.Caller
	frameworkID string
	events      chan *scheduler.Event
	backlog     []*scheduler.Event
	cancel      context.CancelFunc
}

func newGoScheduler(t *testing.T, endpointBase string, codec encoding.Codec) *goScheduler {
	cli := httpcli.New(
		httpcli.Endpoint(endpointBase+"/api/v1/scheduler"),
		httpcli.Codec(codec),
	)
	return &goScheduler{t: t, caller: httpsched.NewCaller(cli, httpsched.MaxRedirects(3))}
}

// subscribe performs SUBSCRIBE (following redirects) and starts decoding
// events; it returns the error of the call, if any.
func (g *goScheduler) subscribe(info *mesos.FrameworkInfo) error {
	g.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := g.caller.Call(ctx, calls.Subscribe(info))
	if err != nil {
		cancel()
		return err
	}
	g.cancel = cancel
	g.events = make(chan *scheduler.Event, 10000)
	g.backlog = nil
	events := g.events
	go func() {
		defer close(events)
		defer resp.Close()
		for {
			var ev scheduler.Event
			if err := resp.Decode(&ev); err != nil {
				return
			}
			// Like any scheduler, acknowledge every update that asks for it
			// as soon as it is received.
			if st := ev.GetUpdate().GetStatus(); ev.Type == scheduler.Event_UPDATE && len(st.UUID) > 0 {
				_ = g.ackAsync(calls.Acknowledge(st.AgentID.Value, st.TaskID.Value, st.UUID))
			}
			events <- &ev
		}
	}()
	g.t.Cleanup(cancel)
	ev := g.next(5*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_SUBSCRIBED })
	g.mu.Lock()
	g.frameworkID = ev.Subscribed.FrameworkID.Value
	g.mu.Unlock()
	return nil
}

// ackAsync acknowledges from the event goroutine, once SUBSCRIBED told us
// the framework ID.
func (g *goScheduler) ackAsync(ack *scheduler.Call) error {
	g.mu.Lock()
	id := g.frameworkID
	g.mu.Unlock()
	if id == "" {
		return nil
	}
	resp, err := g.caller.Call(context.Background(), ack.With(calls.Framework(id)))
	if resp != nil {
		resp.Close()
	}
	return err
}

func (g *goScheduler) call(c *scheduler.Call) error {
	resp, err := g.caller.Call(context.Background(), c.With(calls.Framework(g.frameworkID)))
	if resp != nil {
		resp.Close()
	}
	return err
}

func (g *goScheduler) mustCall(c *scheduler.Call) {
	g.t.Helper()
	if err := g.call(c); err != nil {
		g.t.Fatalf("%s: %v", c.Type, err)
	}
}

func (g *goScheduler) next(timeout time.Duration, match func(*scheduler.Event) bool) *scheduler.Event {
	g.t.Helper()
	return nextEvent(g.t, g.events, &g.backlog, timeout, match)
}

// update waits for the next update of a task matching cond and
// acknowledges it, as schedulers must.
func (g *goScheduler) update(taskID string, timeout time.Duration, cond func(mesos.TaskStatus) bool) mesos.TaskStatus {
	g.t.Helper()
	st := g.next(timeout, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == taskID && cond(e.Update.Status)
	}).Update.Status
	return st
}

func inState(s mesos.TaskState) func(mesos.TaskStatus) bool {
	return func(st mesos.TaskStatus) bool { return st.GetState() == s }
}

func (g *goScheduler) offer(timeout time.Duration) mesos.Offer {
	g.t.Helper()
	return g.next(timeout, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }).Offers.Offers[0]
}

func (g *goScheduler) launch(o mesos.Offer, tasks ...mesos.TaskInfo) {
	g.t.Helper()
	g.mustCall(calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(o.ID)).
		With(calls.RefuseSeconds(0)))
}

func processAgent(host string) AgentConfig {
	a := smallAgent(host)
	a.RunProcesses = true
	return a
}

var codecsUnderTest = map[string]encoding.Codec{
	"json":     codecs.ByMediaType[codecs.MediaTypeJSON],
	"protobuf": codecs.ByMediaType[codecs.MediaTypeProtobuf],
}

func TestMesosGoSchedulerRunsProcesses(t *testing.T) {
	for name, codec := range codecsUnderTest {
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, testOptions(), processAgent("127.0.0.1"))
			g := newGoScheduler(t, s.URL(), codec)
			if err := g.subscribe(frameworkInfo("generic", partitionAwareCaps...)); err != nil {
				t.Fatal(err)
			}
			o := g.offer(2 * time.Second)
			agent := o.AgentID.Value
			g.launch(o,
				commandTask("true", agent, "true", 0.1, 32),
				commandTask("false", agent, "false", 0.1, 32),
				commandTask("sleep", agent, "sleep 5", 0.1, 32),
			)
			finished := g.update("true", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
			if finished.GetState() != mesos.TASK_FINISHED || finished.GetMessage() != "Command exited with status 0" {
				t.Fatalf("true: %s %q", finished.GetState(), finished.GetMessage())
			}
			failed := g.update("false", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
			if failed.GetState() != mesos.TASK_FAILED || failed.GetMessage() != "Command exited with status 1" {
				t.Fatalf("false: %s %q", failed.GetState(), failed.GetMessage())
			}
			g.update("sleep", 5*time.Second, inState(mesos.TASK_RUNNING))
			start := time.Now()
			g.mustCall(calls.Kill("sleep", agent))
			g.update("sleep", 2*time.Second, inState(mesos.TASK_KILLING))
			killed := g.update("sleep", 5*time.Second, func(st mesos.TaskStatus) bool { return isTerminal(st.GetState()) })
			if killed.GetState() != mesos.TASK_KILLED || !strings.Contains(killed.GetMessage(), "signal") {
				t.Fatalf("sleep: %s %q", killed.GetState(), killed.GetMessage())
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("kill took %v", time.Since(start))
			}

			// Implicit reconciliation sees the terminal tasks until they are
			// removed: all are acknowledged, so none remain.
			g.mustCall(calls.Reconcile())
			g.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"true": agent, "never": ""})))
			rec := g.next(2*time.Second, func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_UPDATE && e.Update.Status.TaskID.Value == "never"
			}).Update.Status
			if rec.GetState() != mesos.TASK_UNKNOWN || rec.GetReason() != mesos.REASON_RECONCILIATION {
				t.Fatalf("reconcile never: %s %s", rec.GetState(), rec.GetReason())
			}
			st := s.State()
			if n := len(st.Frameworks[0].CompletedTasks); n != 3 {
				t.Fatalf("completed tasks %d", n)
			}

			g.mustCall(&scheduler.Call{Type: scheduler.Call_TEARDOWN})
			eventually(t, 2*time.Second, "empty state", func() bool { return len(s.State().Frameworks) == 0 })
		})
	}
}

func TestMesosGoHealthChecks(t *testing.T) {
	httpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			_, _ = w.Write([]byte("pong"))
			return
		}
		http.NotFound(w, r)
	}))
	defer httpSrv.Close()
	httpsSrv := httptest.NewTLSServer(httpSrv.Config.Handler)
	defer httpsSrv.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	portOf := func(addr string) uint32 {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://"))
		n, _ := strconv.Atoi(p)
		return uint32(n)
	}
	fast := func(hc *mesos.HealthCheck) *mesos.HealthCheck {
		hc.DelaySeconds = proto.Float64(0)
		hc.IntervalSeconds = proto.Float64(0.1)
		hc.TimeoutSeconds = proto.Float64(1)
		hc.GracePeriodSeconds = proto.Float64(0)
		hc.ConsecutiveFailures = proto.Uint32(2)
		return hc
	}
	checks := map[string]*mesos.HealthCheck{
		"http": fast(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{
			Port: portOf(httpSrv.URL), Path: proto.String("/ping")}}),
		"https": fast(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{
			Scheme: proto.String("https"), Port: portOf(httpsSrv.URL), Path: proto.String("/ping")}}),
		"tcp": fast(&mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: portOf(tcp.Addr().String())}}),
		"command": fast(&mesos.HealthCheck{Type: mesos.HealthCheck_COMMAND, Command: &mesos.CommandInfo{
			Value: proto.String(`test "$MESOS_EXECUTOR_ID" = command`)}}),
	}
	s := newTestServer(t, testOptions(), processAgent("127.0.0.1"))
	g := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := g.subscribe(frameworkInfo("health", partitionAwareCaps...)); err != nil {
		t.Fatal(err)
	}
	o := g.offer(2 * time.Second)
	var tasks []mesos.TaskInfo
	for name, hc := range checks {
		ti := commandTask(name, o.AgentID.Value, "sleep 30", 0.1, 32)
		ti.HealthCheck = hc
		tasks = append(tasks, ti)
	}
	failing := commandTask("failing", o.AgentID.Value, "sleep 30", 0.1, 32)
	failing.HealthCheck = fast(&mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{
		Port: portOf(httpSrv.URL), Path: proto.String("/missing")}})
	tasks = append(tasks, failing)
	g.launch(o, tasks...)
	for name := range checks {
		st := g.update(name, 5*time.Second, func(st mesos.TaskStatus) bool { return st.Healthy != nil })
		if !st.GetHealthy() {
			t.Errorf("%s check: unhealthy (%s)", name, st.GetMessage())
		}
	}
	unhealthy := g.update("failing", 5*time.Second, func(st mesos.TaskStatus) bool { return st.Healthy != nil })
	if unhealthy.GetHealthy() {
		t.Fatal("404 reported healthy")
	}
	// After consecutive_failures the executor kills the task.
	g.update("failing", 5*time.Second, inState(mesos.TASK_KILLED))
	if st := stateTask(s, "http"); st == nil || len(st.Statuses) == 0 || st.Statuses[len(st.Statuses)-1].Healthy == nil {
		t.Fatalf("/state lacks health: %+v", st)
	}
}

func TestMesosGoFollowsRedirectsAndSeesUnavailable(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	standby := s.AddMaster()

	leader := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeProtobuf])
	info := frameworkInfo("redirected", partitionAwareCaps...)
	if err := leader.subscribe(info); err != nil {
		t.Fatal(err)
	}
	o := leader.offer(2 * time.Second)
	leader.launch(o, dockerTask("server-0", o.AgentID.Value))
	leader.update("server-0", 2*time.Second, inState(mesos.TASK_RUNNING))

	// Leadership moves to the standby: the stream ends.
	if err := s.FailoverTo(standby); err != nil {
		t.Fatal(err)
	}
	for range leader.events {
	}
	info.ID = &mesos.FrameworkID{Value: leader.frameworkID}

	// A client still configured with the old leader follows the 307 on
	// SUBSCRIBE and resumes the framework...
	old := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := old.subscribe(info); err != nil {
		t.Fatalf("resubscribe via old leader: %v", err)
	}
	if old.frameworkID != info.ID.Value {
		t.Fatalf("framework ID changed: %s", old.frameworkID)
	}
	// ...but httpsched sends later calls to its configured endpoint, which
	// redirects again: the caller reports the redirect and disconnects.
	// Schedulers must re-target the leader (as with real Mesos).
	if err := old.call(calls.Revive()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("call via old leader: %v", err)
	}

	// A client pointed at the new leader takes over and finds its task.
	fresh := newGoScheduler(t, standby, codecs.ByMediaType[codecs.MediaTypeJSON])
	if err := fresh.subscribe(info); err != nil {
		t.Fatal(err)
	}
	fresh.mustCall(calls.Reconcile(calls.ReconcileTasks(map[string]string{"server-0": o.AgentID.Value})))
	st := fresh.next(2*time.Second, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
	}).Update.Status
	if st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("task after failover: %s", st.GetState())
	}

	// No leader at all: 503.
	s.SetUnavailable(true)
	nobody := newGoScheduler(t, s.URL(), codecs.ByMediaType[codecs.MediaTypeJSON])
	err := nobody.subscribe(frameworkInfo("nobody"))
	if !apierrors.CodeMesosUnavailable.Matches(err) {
		t.Fatalf("subscribe without leader: %v", err)
	}
}

func killCall(taskID, agentID string) *scheduler.Call { return calls.Kill(taskID, agentID) }

func TestMesosGoFailoverTimeoutAndAgentLoss(t *testing.T) {
	for name, codec := range codecsUnderTest {
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"), smallAgent("127.0.0.2"))

			// Partition-aware framework: resumes after its stream drops,
			// sees UNREACHABLE when an agent is lost.
			aware := newGoScheduler(t, s.URL(), codec)
			info := frameworkInfo("aware", partitionAwareCaps...)
			if err := aware.subscribe(info); err != nil {
				t.Fatal(err)
			}
			o := aware.offer(2 * time.Second)
			aware.launch(o, dockerTask("a-0", o.AgentID.Value))
			aware.update("a-0", 2*time.Second, inState(mesos.TASK_RUNNING))
			if err := s.DropStream(aware.frameworkID); err != nil {
				t.Fatal(err)
			}
			for range aware.events {
			}
			info.ID = &mesos.FrameworkID{Value: aware.frameworkID}
			resumed := newGoScheduler(t, s.URL(), codec)
			if err := resumed.subscribe(info); err != nil {
				t.Fatal(err)
			}
			if resumed.frameworkID != info.ID.Value || stateTask(s, "a-0").State != "TASK_RUNNING" {
				t.Fatalf("resume: id %s, task %+v", resumed.frameworkID, stateTask(s, "a-0"))
			}

			resumed.suppressAndDecline()

			// Legacy framework with a short failover timeout.
			legacy := newGoScheduler(t, s.URL(), codec)
			linfo := frameworkInfo("legacy")
			linfo.FailoverTimeout = proto.Float64(0.3)
			if err := legacy.subscribe(linfo); err != nil {
				t.Fatal(err)
			}
			lo := legacy.offer(2 * time.Second)
			legacy.launch(lo, dockerTask("l-0", lo.AgentID.Value))
			legacy.update("l-0", 2*time.Second, inState(mesos.TASK_RUNNING))

			// Both agents become unreachable.
			for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
				if err := s.LoseAgent(host); err != nil {
					t.Fatal(err)
				}
			}
			if st := resumed.update("a-0", 2*time.Second, inState(mesos.TASK_UNREACHABLE)); st.GetReason() != mesos.REASON_AGENT_REMOVED {
				t.Fatalf("partition-aware loss: %s", st.GetReason())
			}
			legacy.update("l-0", 2*time.Second, inState(mesos.TASK_LOST))

			// The legacy scheduler goes away for longer than its timeout.
			legacy.cancel()
			legacyID := legacy.frameworkID
			eventually(t, 3*time.Second, "legacy framework removed", func() bool {
				for _, fw := range s.State().CompletedFrameworks {
					if fw.ID == legacyID {
						return true
					}
				}
				return false
			})
		})
	}
}

// suppressAndDecline stops offers and gives back the ones outstanding.
func (g *goScheduler) suppressAndDecline() {
	g.t.Helper()
	g.mustCall(calls.Suppress())
	decline := func(ev *scheduler.Event) {
		for _, o := range ev.Offers.Offers {
			g.mustCall(calls.Decline(o.ID).With(calls.RefuseSeconds(0)))
		}
	}
	kept := g.backlog[:0]
	for _, ev := range g.backlog {
		if ev.Type == scheduler.Event_OFFERS {
			decline(ev)
		} else {
			kept = append(kept, ev)
		}
	}
	g.backlog = kept
	for {
		select {
		case ev, ok := <-g.events:
			if !ok {
				return
			}
			if ev.Type == scheduler.Event_OFFERS {
				decline(ev)
			} else if ev.Type != scheduler.Event_HEARTBEAT {
				g.backlog = append(g.backlog, ev)
			}
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}
