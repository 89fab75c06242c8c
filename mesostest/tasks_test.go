package mesostest

import (
	"bytes"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

var partitionAwareCaps = []mesos.FrameworkInfo_Capability_Type{
	mesos.FrameworkInfo_Capability_PARTITION_AWARE,
	mesos.FrameworkInfo_Capability_TASK_KILLING_STATE,
}

func dockerTask(name, agentID string) mesos.TaskInfo {
	ti := commandTask(name, agentID, "k3s server", 1, 256)
	dockerType := mesos.ContainerInfo_DOCKER
	ti.Container = &mesos.ContainerInfo{Type: &dockerType, Docker: &mesos.ContainerInfo_DockerInfo{Image: "rancher/k3s"}}
	return ti
}

func TestSimulatedTaskLifecycle(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			c.subscribe(frameworkInfo("lifecycle", partitionAwareCaps...))
			o := c.nextOffer(2 * time.Second)
			ti := dockerTask("server-0", o.AgentID.Value)
			ti.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_TCP, TCP: &mesos.HealthCheck_TCPCheckInfo{Port: 6443},
				DelaySeconds: proto.Float64(0.05)}
			c.mustCall(launchCall(o.ID, ti))

			starting := c.nextUpdate("server-0", mesos.TASK_STARTING, 2*time.Second)
			if len(starting.UUID) != 16 || starting.GetSource() != mesos.SOURCE_EXECUTOR {
				t.Fatalf("STARTING update %+v", starting)
			}
			c.ack(starting)
			running := c.nextUpdate("server-0", mesos.TASK_RUNNING, 2*time.Second)
			c.ack(running)
			healthy := c.next(2*time.Second, func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_UPDATE && e.Update.Status.Healthy != nil
			}).Update.Status
			if !healthy.GetHealthy() || healthy.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
				t.Fatalf("health update %+v", healthy)
			}
			c.ack(healthy)
			if st := stateTask(s, "server-0"); st == nil || st.State != "TASK_RUNNING" {
				t.Fatalf("state task %+v", st)
			}

			if err := s.SetTaskHealth("server-0", false); err != nil {
				t.Fatal(err)
			}
			unhealthy := c.next(2*time.Second, func(e *scheduler.Event) bool {
				return e.Type == scheduler.Event_UPDATE && e.Update.Status.Healthy != nil && !e.Update.Status.GetHealthy()
			}).Update.Status
			c.ack(unhealthy)

			c.mustCall(&scheduler.Call{Type: scheduler.Call_KILL, Kill: &scheduler.Call_Kill{TaskID: ti.TaskID}})
			c.ack(c.nextUpdate("server-0", mesos.TASK_KILLING, 2*time.Second))
			killed := c.nextUpdate("server-0", mesos.TASK_KILLED, 2*time.Second)
			c.ack(killed)
			eventually(t, 2*time.Second, "task completed", func() bool {
				st := s.State()
				return len(st.Frameworks[0].Tasks) == 0 && len(st.Frameworks[0].CompletedTasks) == 1
			})
		})
	}
}

func TestUnacknowledgedUpdatesAreRetried(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaProtobuf)
	c.subscribe(frameworkInfo("retry"))
	o := c.nextOffer(2 * time.Second)
	c.mustCall(launchCall(o.ID, dockerTask("t1", o.AgentID.Value)))
	first := c.nextUpdate("t1", mesos.TASK_STARTING, 2*time.Second)
	again := c.nextUpdate("t1", mesos.TASK_STARTING, 2*time.Second)
	if !bytes.Equal(first.UUID, again.UUID) {
		t.Fatal("retry carries a different UUID")
	}
	// The next update is held back until the head is acknowledged.
	if st := stateTask(s, "t1"); st.State != "TASK_RUNNING" {
		t.Fatalf("master state %s, want TASK_RUNNING", st.State)
	}
	c.ack(again)
	c.ack(c.nextUpdate("t1", mesos.TASK_RUNNING, 2*time.Second))

	// Reconciliation reports the state of the update being delivered.
	c.mustCall(&scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{}})
	rec := c.next(2*time.Second, func(e *scheduler.Event) bool {
		return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
	}).Update.Status
	if rec.GetState() != mesos.TASK_RUNNING || len(rec.UUID) != 0 || rec.GetSource() != mesos.SOURCE_MASTER {
		t.Fatalf("implicit reconciliation %+v", rec)
	}
}

func TestExplicitReconciliation(t *testing.T) {
	for _, partitionAware := range []bool{true, false} {
		name := map[bool]string{true: "partition-aware", false: "legacy"}[partitionAware]
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), mediaJSON)
			info := frameworkInfo("reconcile")
			if partitionAware {
				info = frameworkInfo("reconcile", partitionAwareCaps...)
			}
			c.subscribe(info)
			o := c.nextOffer(2 * time.Second)
			c.mustCall(launchCall(o.ID, dockerTask("known", o.AgentID.Value)))
			c.ack(c.nextUpdate("known", mesos.TASK_STARTING, 2*time.Second))
			c.ack(c.nextUpdate("known", mesos.TASK_RUNNING, 2*time.Second))

			agentID := o.AgentID
			c.mustCall(&scheduler.Call{Type: scheduler.Call_RECONCILE, Reconcile: &scheduler.Call_Reconcile{Tasks: []scheduler.Call_Reconcile_Task{
				{TaskID: mesos.TaskID{Value: "known"}},
				{TaskID: mesos.TaskID{Value: "ghost"}},
				{TaskID: mesos.TaskID{Value: "gone"}, AgentID: &agentID},
			}}})
			want := map[string]mesos.TaskState{"known": mesos.TASK_RUNNING, "ghost": mesos.TASK_UNKNOWN, "gone": mesos.TASK_GONE}
			if !partitionAware {
				want["ghost"], want["gone"] = mesos.TASK_LOST, mesos.TASK_LOST
			}
			for len(want) > 0 {
				st := c.next(2*time.Second, func(e *scheduler.Event) bool {
					return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetReason() == mesos.REASON_RECONCILIATION
				}).Update.Status
				if w, ok := want[st.TaskID.Value]; !ok || st.GetState() != w || st.UUID != nil {
					t.Fatalf("reconciliation of %s: %s (uuid %x), want %s", st.TaskID.Value, st.GetState(), st.UUID, w)
				}
				delete(want, st.TaskID.Value)
			}
		})
	}
}

func TestInvalidLaunches(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
			c := newRawClient(t, s.URL(), media)
			c.subscribe(frameworkInfo("invalid", partitionAwareCaps...))
			o := c.nextOffer(2 * time.Second)
			agent := o.AgentID.Value

			greedy := commandTask("greedy", agent, "true", 64, 128)
			noResources := commandTask("empty", agent, "true", 0, 0)
			noResources.Resources = nil
			noCommand := commandTask("nocommand", agent, "true", 0.1, 32)
			noCommand.Command = nil
			badID := commandTask("bad/id", agent, "true", 0.1, 32)
			ok := commandTask("dup", agent, "sleep 1", 0.1, 32)
			dup := commandTask("dup", agent, "sleep 1", 0.1, 32)
			wrongAgent := commandTask("elsewhere", "some-other-agent", "true", 0.1, 32)
			c.mustCall(launchCall(o.ID, greedy, noResources, noCommand, badID, ok, dup, wrongAgent))
			errors := map[string]bool{"greedy": true, "empty": true, "nocommand": true, "bad/id": true, "dup": true, "elsewhere": true}
			for len(errors) > 0 {
				st := c.next(2*time.Second, func(e *scheduler.Event) bool {
					return e.Type == scheduler.Event_UPDATE && e.Update.Status.GetState() == mesos.TASK_ERROR
				}).Update.Status
				if st.GetReason() != mesos.REASON_TASK_INVALID || st.GetMessage() == "" || len(st.UUID) != 0 {
					t.Fatalf("TASK_ERROR update %+v", st)
				}
				delete(errors, st.TaskID.Value)
			}
			// The valid "dup" (first of the two) was launched.
			c.ack(c.nextUpdate("dup", mesos.TASK_STARTING, 2*time.Second))

			// The offer is gone now: launching on it again drops the task.
			c.mustCall(launchCall(o.ID, commandTask("late", agent, "true", 0.1, 32)))
			st := c.nextUpdate("late", mesos.TASK_DROPPED, 2*time.Second)
			if st.GetReason() != mesos.REASON_INVALID_OFFERS {
				t.Fatalf("dropped reason %s", st.GetReason())
			}
		})
	}
}

func TestInvalidOfferIsLostForLegacyFrameworks(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("legacy"))
	o := c.nextOffer(2 * time.Second)
	c.mustCall(launchCall(mesos.OfferID{Value: "no-such-offer"}, commandTask("t", o.AgentID.Value, "true", 0.1, 32)))
	st := c.nextUpdate("t", mesos.TASK_LOST, 2*time.Second)
	if st.GetReason() != mesos.REASON_INVALID_OFFERS {
		t.Fatalf("reason %s", st.GetReason())
	}
}

func TestDeclineSuppressRevive(t *testing.T) {
	for _, media := range bothMedia {
		t.Run(media, func(t *testing.T) {
			s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"), smallAgent("127.0.0.2"))
			c := newRawClient(t, s.URL(), media)
			c.subscribe(frameworkInfo("offers"))
			ev := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
			offers := ev.Offers.Offers
			for len(offers) < 2 {
				offers = append(offers, c.nextOffer(2*time.Second))
			}
			// Decline one agent for a long time and the other for no time.
			c.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
				OfferIDs: []mesos.OfferID{offers[0].ID}, Filters: &mesos.Filters{RefuseSeconds: proto.Float64(3600)}}})
			c.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
				OfferIDs: []mesos.OfferID{offers[1].ID}, Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)}}})
			for i := 0; i < 3; i++ {
				o := c.nextOffer(2 * time.Second)
				if o.AgentID == offers[0].AgentID {
					t.Fatal("filtered agent offered again")
				}
				c.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
					OfferIDs: []mesos.OfferID{o.ID}, Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)}}})
			}
			c.mustCall(&scheduler.Call{Type: scheduler.Call_SUPPRESS})
			c.declinePendingOffers()
			select {
			case ev := <-c.events:
				if ev.Type == scheduler.Event_OFFERS {
					t.Fatal("offer while suppressed")
				}
			case <-time.After(200 * time.Millisecond):
			}
			// REVIVE clears suppression and the long filter.
			c.mustCall(&scheduler.Call{Type: scheduler.Call_REVIVE})
			seen := map[string]bool{}
			for len(seen) < 2 {
				for _, o := range c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS }).Offers.Offers {
					seen[o.AgentID.Value] = true
				}
			}
		})
	}
}

func TestReservationsAndPersistentVolumes(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"))
	owner := newRawClient(t, s.URL(), mediaProtobuf)
	owner.subscribe(frameworkInfo("owner", mesos.FrameworkInfo_Capability_MULTI_ROLE))
	o := owner.nextOffer(2 * time.Second)
	if o.AllocationInfo.GetRole() != "k3s" || o.Resources[0].AllocationInfo.GetRole() != "k3s" {
		t.Fatalf("MULTI_ROLE offer without allocation info: %+v", o)
	}
	role := "k3s"
	reservation := &mesos.Resource_ReservationInfo{Principal: proto.String("ops")}
	reserved := func(r mesos.Resource) mesos.Resource {
		r.Role = &role
		r.Reservation = reservation
		r.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
		return r
	}
	diskRes := reserved(scalarResource("disk", 512))
	volume := diskRes
	rw := mesos.RW
	volume.Disk = &mesos.Resource_DiskInfo{
		Persistence: &mesos.Resource_DiskInfo_Persistence{ID: "etcd-0"},
		Volume:      &mesos.Volume{Mode: &rw, ContainerPath: "data"},
	}
	owner.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{o.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{
				reserved(scalarResource("cpus", 1)), reserved(scalarResource("mem", 256)), diskRes}}},
			{Type: mesos.Offer_Operation_CREATE, Create: &mesos.Offer_Operation_Create{Volumes: []mesos.Resource{volume}}},
		},
		Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)},
	}})
	eventually(t, 2*time.Second, "reservation in state", func() bool {
		st := s.State()
		return st.Slaves[0].ReservedResources["k3s"].CPUs == 1 && st.Slaves[0].ReservedResources["k3s"].Disk == 512
	})

	// A framework of another role never sees the reserved resources.
	owner.mustCall(&scheduler.Call{Type: scheduler.Call_SUPPRESS})
	owner.declinePendingOffers()
	other := newRawClient(t, s.URL(), mediaJSON)
	other.subscribe(frameworkInfo("other"))
	oo := other.nextOffer(2 * time.Second)
	for _, r := range oo.Resources {
		if !r.IsUnreserved() {
			t.Fatalf("role * framework offered reserved resource %v", r)
		}
	}
	if got := scalarOf(oo.Resources, "cpus"); got > 3 {
		t.Fatalf("offered %v cpus, reserved cpu leaked", got)
	}
	other.mustCall(&scheduler.Call{Type: scheduler.Call_SUPPRESS})
	other.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{OfferIDs: []mesos.OfferID{oo.ID}}})
	other.declinePendingOffers()
	owner.mustCall(&scheduler.Call{Type: scheduler.Call_REVIVE})

	// The owner gets them back, volume included.
	var back mesos.Offer
	eventually(t, 3*time.Second, "volume offered to its role", func() bool {
		back = owner.nextOffer(2 * time.Second)
		for _, r := range back.Resources {
			if r.IsPersistentVolume() && r.Disk.Persistence.ID == "etcd-0" {
				return true
			}
		}
		owner.mustCall(&scheduler.Call{Type: scheduler.Call_DECLINE, Decline: &scheduler.Call_Decline{
			OfferIDs: []mesos.OfferID{back.ID}, Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)}}})
		return false
	})
	// DESTROY then UNRESERVE gives everything back to the pool.
	owner.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{back.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_DESTROY, Destroy: &mesos.Offer_Operation_Destroy{Volumes: []mesos.Resource{volume}}},
			{Type: mesos.Offer_Operation_UNRESERVE, Unreserve: &mesos.Offer_Operation_Unreserve{Resources: []mesos.Resource{
				reserved(scalarResource("cpus", 1)), reserved(scalarResource("mem", 256)), diskRes}}},
		},
	}})
	eventually(t, 2*time.Second, "reservation gone", func() bool {
		return len(s.State().Slaves[0].ReservedResources) == 0
	})
}
