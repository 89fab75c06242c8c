package mesosbridge

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// offerSpec describes a test offer; resources are allocated to role "k3s" and unreserved
// unless reservedCPUs/otherRole say otherwise.
type offerSpec struct {
	id, host            string
	cpus, mem, disk     float64
	ports               [][2]uint64
	attrs               map[string]string
	reservedCPUs        float64 // cpus statically reserved for "k3s"
	otherRoleCPUs       float64 // cpus allocated to another role: never usable
	volumeID, volumeDir string  // an existing persistent volume
	volumeMiB           float64
}

func scalar(name string, v float64) mesos.Resource {
	return mesos.Resource{
		Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v},
		Role: ptr("*"), AllocationInfo: &mesos.Resource_AllocationInfo{Role: ptr("k3s")},
	}
}

func makeOffer(o offerSpec) mesos.Offer {
	if o.disk == 0 {
		o.disk = 64 // room for default executors (10 MiB each) unless the test says otherwise
	}
	off := mesos.Offer{
		ID: mesos.OfferID{Value: o.id}, FrameworkID: mesos.FrameworkID{Value: "fw"},
		AgentID: mesos.AgentID{Value: "agent-" + o.host}, Hostname: o.host,
	}
	add := func(r mesos.Resource) { off.Resources = append(off.Resources, r) }
	if o.otherRoleCPUs > 0 {
		r := scalar("cpus", o.otherRoleCPUs)
		r.AllocationInfo = &mesos.Resource_AllocationInfo{Role: ptr("other")}
		add(r)
	}
	if o.cpus > 0 {
		add(scalar("cpus", o.cpus))
	}
	if o.reservedCPUs > 0 {
		r := scalar("cpus", o.reservedCPUs)
		r.Role = ptr("k3s")
		add(r)
	}
	add(scalar("mem", o.mem))
	if o.disk > 0 {
		add(scalar("disk", o.disk))
	}
	if o.volumeID != "" {
		v := scalar("disk", o.volumeMiB)
		v.Role = ptr("k3s")
		v.Reservation = &mesos.Resource_ReservationInfo{Principal: ptr("mesosk3s")}
		v.Disk = &mesos.Resource_DiskInfo{
			Persistence: &mesos.Resource_DiskInfo_Persistence{ID: o.volumeID},
			Volume:      &mesos.Volume{ContainerPath: o.volumeDir, Mode: mesos.RW.Enum()},
		}
		add(v)
	}
	if len(o.ports) > 0 {
		r := mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{}, Role: ptr("*"),
			AllocationInfo: &mesos.Resource_AllocationInfo{Role: ptr("k3s")}}
		for _, p := range o.ports {
			r.Ranges.Range = append(r.Ranges.Range, mesos.Value_Range{Begin: p[0], End: p[1]})
		}
		add(r)
	}
	for _, k := range sortedKeys(o.attrs) {
		off.Attributes = append(off.Attributes, mesos.Attribute{Name: k, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: o.attrs[k]}})
	}
	return off
}

func offers(specs ...offerSpec) []mesos.Offer {
	out := make([]mesos.Offer, len(specs))
	for i, s := range specs {
		out[i] = makeOffer(s)
	}
	return out
}

// sequentialIDs makes task IDs predictable so results can be compared whole.
func sequentialIDs() func(string) string {
	n := 0
	return func(name string) string { n++; return fmt.Sprintf("%s.%04d", name, n) }
}

func pendingServer(i, order int) TaskSpec {
	s := serverSpec()
	s.Name, s.Index, s.Order = fmt.Sprintf("server-%d", i), i, order
	s.Ports = []string{"api"}
	s.Resources = Resources{CPUs: 1, MemMiB: 1024}
	s.Constraints = []Constraint{{Field: "hostname", Operator: OpUnique}}
	return s
}

func pendingAgent(i, order int) TaskSpec {
	a := agentSpec()
	a.Name, a.Index, a.Order = fmt.Sprintf("agent-%d", i), i, order
	a.Resources = Resources{CPUs: 1, MemMiB: 1024}
	return a
}

func roundInput(pending ...TaskSpec) matchInput {
	return matchInput{Framework: testFramework(), Pending: pending, NewTaskID: sequentialIDs()}
}

// launchedNames lists, per accepted offer, the names of the tasks it launches.
func launchedNames(r matchResult) map[string][]string {
	m := map[string][]string{}
	for _, a := range r.Accepts {
		for _, l := range a.Launched {
			m[a.OfferID.Value] = append(m[a.OfferID.Value], l.Name)
		}
	}
	return m
}

func opTypes(a offerAccept) []string {
	var out []string
	for _, op := range a.Operations {
		out = append(out, op.Type.String())
	}
	return out
}

func taskInfos(a offerAccept) []mesos.TaskInfo {
	var out []mesos.TaskInfo
	for _, op := range a.Operations {
		switch op.Type {
		case mesos.Offer_Operation_LAUNCH:
			out = append(out, op.Launch.TaskInfos...)
		case mesos.Offer_Operation_LAUNCH_GROUP:
			out = append(out, op.LaunchGroup.TaskGroup.Tasks...)
		}
	}
	return out
}

func TestMatchPlacesEverythingInOneRound(t *testing.T) {
	in := roundInput(pendingServer(0, 0), pendingAgent(0, 1), pendingAgent(1, 1), pendingAgent(2, 1))
	os := offers(
		// server-0 is a task group: its default executor takes 0.1 cpus and 32 MiB besides it.
		offerSpec{id: "o1", host: "h1", cpus: 2.1, mem: 4096, disk: 1000, ports: [][2]uint64{{31000, 31005}}},
		offerSpec{id: "o2", host: "h2", cpus: 2, mem: 4096, disk: 1000, ports: [][2]uint64{{31000, 31005}}},
		offerSpec{id: "o3", host: "h3", cpus: 8, mem: 8192},
	)
	r := matchOffers(in, os)
	want := map[string][]string{"o1": {"server-0", "agent-0"}, "o2": {"agent-1", "agent-2"}}
	if got := launchedNames(r); !reflect.DeepEqual(got, want) {
		t.Errorf("launched %v, want %v (unplaced %v)", got, want, r.Unplaced)
	}
	if len(r.Declines) != 1 || r.Declines[0].Value != "o3" {
		t.Errorf("declines %v, want [o3]", r.Declines)
	}
	if len(r.Unplaced) != 0 {
		t.Errorf("unplaced %v", r.Unplaced)
	}
	wantOps := map[string][]string{"o1": {"LAUNCH", "LAUNCH_GROUP"}, "o2": {"LAUNCH"}}
	for _, a := range r.Accepts {
		if got := opTypes(a); !reflect.DeepEqual(got, wantOps[a.OfferID.Value]) {
			t.Errorf("%s: operations %v, want %v: one LAUNCH for the Docker tasks, a LAUNCH_GROUP per task group", a.OfferID.Value, got, wantOps[a.OfferID.Value])
		}
		var cpus float64
		count := func(res []mesos.Resource, what string) {
			for _, r := range res {
				if r.Name == "cpus" {
					cpus += r.GetScalar().GetValue()
				}
				if r.GetAllocationInfo().GetRole() != "k3s" {
					t.Errorf("%s: resource %s without the role's allocation info", what, r.Name)
				}
			}
		}
		for _, ti := range taskInfos(a) {
			count(ti.Resources, ti.Name)
		}
		for _, op := range a.Operations {
			if op.Type == mesos.Offer_Operation_LAUNCH_GROUP {
				count(op.LaunchGroup.Executor.Resources, "executor")
			}
		}
		if offered := map[string]float64{"o1": 2.1, "o2": 2}[a.OfferID.Value]; cpus > offered+scalarEpsilon {
			t.Errorf("%s: %v cpus launched from a %v-cpu offer", a.OfferID.Value, cpus, offered)
		}
	}
}

func TestMatchFollowsPlanOrder(t *testing.T) {
	ds := TaskSpec{
		Name: "datastore-0", Role: "datastore", Order: 0, Container: Container{Type: ContainerDocker, Image: "quay.io/coreos/etcd:v3.5.9"},
		Resources: Resources{CPUs: 16, MemMiB: 1024}, NetworkMode: NetworkHost,
	}
	// Plenty for the server and agents, not for the datastore: nothing may launch.
	in := roundInput(pendingAgent(0, 2), pendingServer(0, 1), ds)
	r := matchOffers(in, offers(offerSpec{id: "o1", host: "h1", cpus: 8, mem: 8192, ports: [][2]uint64{{31000, 31010}}}))
	if len(r.Accepts) != 0 {
		t.Fatalf("launched %v before the datastore", launchedNames(r))
	}
	if !strings.Contains(r.Unplaced["datastore-0"], "not enough cpus (1)") {
		t.Errorf("datastore reason %q", r.Unplaced["datastore-0"])
	}
	for _, n := range []string{"server-0", "agent-0"} {
		if !strings.Contains(r.Unplaced[n], "waiting for datastore-0") {
			t.Errorf("%s reason %q", n, r.Unplaced[n])
		}
	}
}

func TestMatchSameOrderTasksDoNotBlockEachOther(t *testing.T) {
	big := pendingAgent(0, 1)
	big.Resources.CPUs = 64
	r := matchOffers(roundInput(big, pendingAgent(1, 1)), offers(offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096}))
	if got := launchedNames(r); !reflect.DeepEqual(got, map[string][]string{"o1": {"agent-1"}}) {
		t.Errorf("launched %v", got)
	}
	if _, ok := r.Unplaced["agent-0"]; !ok {
		t.Errorf("agent-0 should be unplaced: %v", r.Unplaced)
	}
}

// A task's ports are one consecutive run (a server may bind its port + 1), taken from the
// first offered range long enough.
func TestMatchPortsAreDistinctAndFromOfferedRanges(t *testing.T) {
	s0, s1 := pendingServer(0, 0), pendingServer(1, 0)
	s0.Constraints, s1.Constraints = nil, nil
	s1.Ports = []string{"api", "metrics"}
	r := matchOffers(roundInput(s0, s1), offers(offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096, ports: [][2]uint64{{31000, 31000}, {31500, 31501}}}))
	if len(r.Accepts) != 1 || len(r.Accepts[0].Launched) != 2 {
		t.Fatalf("launched %v unplaced %v", launchedNames(r), r.Unplaced)
	}
	l := r.Accepts[0].Launched
	if l[0].Ports["api"] != 31000 || l[1].Ports["api"] != 31500 || l[1].Ports["metrics"] != 31501 {
		t.Errorf("ports %v %v", l[0].Ports, l[1].Ports)
	}
	ti := taskInfos(r.Accepts[0])[1]
	var ranges []mesos.Value_Range
	for _, res := range ti.Resources {
		if res.Name == "ports" {
			ranges = append(ranges, res.GetRanges().GetRange()...)
		}
	}
	if !reflect.DeepEqual(ranges, []mesos.Value_Range{{Begin: 31500, End: 31501}}) {
		t.Errorf("port resources %v", ranges)
	}
	if env := envOf(ti); env["PORT_API"].GetValue() != "31500" || env["PORT_METRICS"].GetValue() != "31501" {
		t.Errorf("the task is not told its offered ports: %v", env)
	}
	// A third server finds no port left.
	s2 := pendingServer(2, 0)
	s2.Constraints = nil
	r = matchOffers(roundInput(s0, s1, s2), offers(offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096, ports: [][2]uint64{{31000, 31000}, {31500, 31501}}}))
	if !strings.Contains(r.Unplaced["server-2"], "not enough consecutive ports") {
		t.Errorf("server-2: %q", r.Unplaced["server-2"])
	}
}

func TestMatchRoleAwareness(t *testing.T) {
	a := pendingAgent(0, 0)
	a.Resources.CPUs = 3
	// 2 unreserved + 2 reserved for k3s usable, 8 allocated to another role are not.
	o := offerSpec{id: "o1", host: "h1", cpus: 2, reservedCPUs: 2, otherRoleCPUs: 8, mem: 4096}
	r := matchOffers(roundInput(a), offers(o))
	if len(r.Accepts) != 1 {
		t.Fatalf("not launched: %v", r.Unplaced)
	}
	var got []string
	for _, res := range taskInfos(r.Accepts[0])[0].Resources {
		if res.Name == "cpus" {
			got = append(got, fmt.Sprintf("%s:%g", res.GetRole(), res.GetScalar().GetValue()))
		}
	}
	if want := []string{"k3s:2", "*:1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("cpus taken %v, want reserved first %v", got, want)
	}
	a.Resources.CPUs = 5
	r = matchOffers(roundInput(a), offers(o))
	if len(r.Accepts) != 0 {
		t.Errorf("used cpus allocated to another role")
	}
}

func TestMatchConstraints(t *testing.T) {
	three := []offerSpec{
		{id: "o1", host: "h1", cpus: 16, mem: 16384, ports: [][2]uint64{{31000, 31010}}, attrs: map[string]string{"rack": "r1"}},
		{id: "o2", host: "h2", cpus: 16, mem: 16384, ports: [][2]uint64{{31000, 31010}}, attrs: map[string]string{"rack": "r1"}},
		{id: "o3", host: "h3", cpus: 16, mem: 16384, ports: [][2]uint64{{31000, 31010}}, attrs: map[string]string{"rack": "r2"}},
	}
	t.Run("unique hostname spreads servers over one round", func(t *testing.T) {
		r := matchOffers(roundInput(pendingServer(0, 0), pendingServer(1, 0), pendingServer(2, 0)), offers(three...))
		want := map[string][]string{"o1": {"server-0"}, "o2": {"server-1"}, "o3": {"server-2"}}
		if got := launchedNames(r); !reflect.DeepEqual(got, want) {
			t.Errorf("launched %v, want %v", got, want)
		}
	})
	t.Run("running siblings count", func(t *testing.T) {
		in := roundInput(pendingServer(1, 0))
		in.Active = []placedTask{{Name: "server-0", Role: "server", Hostname: "h1"}, {Name: "agent-0", Role: "agent", Hostname: "h2"}}
		r := matchOffers(in, offers(three...))
		if got := launchedNames(r); !reflect.DeepEqual(got, map[string][]string{"o2": {"server-1"}}) {
			t.Errorf("launched %v: agents are not siblings of servers, server-0 holds h1", got)
		}
	})
	t.Run("unique rack", func(t *testing.T) {
		s0, s1, s2 := pendingServer(0, 0), pendingServer(1, 0), pendingServer(2, 0)
		for _, s := range []*TaskSpec{&s0, &s1, &s2} {
			s.Constraints = []Constraint{{Field: "rack", Operator: OpUnique}}
		}
		r := matchOffers(roundInput(s0, s1, s2), offers(three...))
		if got := launchedNames(r); !reflect.DeepEqual(got, map[string][]string{"o1": {"server-0"}, "o3": {"server-1"}}) {
			t.Errorf("launched %v", got)
		}
		if !strings.Contains(r.Unplaced["server-2"], "constraint rack:UNIQUE (3)") {
			t.Errorf("server-2: %q", r.Unplaced["server-2"])
		}
	})
	t.Run("like", func(t *testing.T) {
		a := pendingAgent(0, 0)
		a.Constraints = []Constraint{{Field: "hostname", Operator: OpLike, Value: "h[23]"}}
		r := matchOffers(roundInput(a), offers(three...))
		if got := launchedNames(r); !reflect.DeepEqual(got, map[string][]string{"o2": {"agent-0"}}) {
			t.Errorf("launched %v", got)
		}
	})
	t.Run("max per rack", func(t *testing.T) {
		var pending []TaskSpec
		for i := 0; i < 5; i++ {
			a := pendingAgent(i, 0)
			a.Constraints = []Constraint{{Field: "rack", Operator: OpMaxPer, Value: "2"}}
			pending = append(pending, a)
		}
		r := matchOffers(roundInput(pending...), offers(three...))
		want := map[string][]string{"o1": {"agent-0", "agent-1"}, "o3": {"agent-2", "agent-3"}}
		if got := launchedNames(r); !reflect.DeepEqual(got, want) {
			t.Errorf("launched %v, want %v", got, want)
		}
	})
}

func TestMatchPersistentVolumes(t *testing.T) {
	ds := TaskSpec{
		Name: "datastore-0", Role: "datastore", Container: Container{Type: ContainerDocker, Image: "quay.io/coreos/etcd:v3.5.9"},
		Resources: Resources{CPUs: 1, MemMiB: 1024}, Ports: []string{"client"}, NetworkMode: NetworkHost,
		Command: `exec etcd --data-dir "$DATA_DIR" --listen-client-urls http://0.0.0.0:$PORT_CLIENT`,
		Volume:  &VolumeRequest{SizeMiB: 2048, ContainerPath: "etcd-data"},
	}
	fw := testFramework()
	volID := persistenceID(fw.ClusterUID, "datastore-0")

	t.Run("new volume: reserve, create, launch", func(t *testing.T) {
		r := matchOffers(roundInput(ds), offers(offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096, disk: 4096, ports: [][2]uint64{{31000, 31001}}}))
		if len(r.Accepts) != 1 {
			t.Fatalf("not launched: %v", r.Unplaced)
		}
		a := r.Accepts[0]
		if got := opTypes(a); !reflect.DeepEqual(got, []string{"RESERVE", "CREATE", "LAUNCH"}) {
			t.Fatalf("operations %v", got)
		}
		res := a.Operations[0].Reserve.Resources[0]
		if res.GetRole() != "k3s" || res.GetScalar().GetValue() != 2048 || res.GetReservation().GetPrincipal() != "mesosk3s" ||
			res.GetAllocationInfo().GetRole() != "k3s" {
			t.Errorf("reserve %+v", res)
		}
		labels := map[string]string{}
		for _, l := range res.GetReservation().GetLabels().GetLabels() {
			labels[l.Key] = l.GetValue()
		}
		if labels[LabelTaskName] != "datastore-0" || labels[LabelClusterUID] != fw.ClusterUID {
			t.Errorf("reservation labels %v", labels)
		}
		vol := a.Operations[1].Create.Volumes[0]
		if vol.GetDisk().GetPersistence().GetID() != volID || vol.GetDisk().GetVolume().GetContainerPath() != "etcd-data" ||
			vol.GetDisk().GetVolume().GetMode() != mesos.RW {
			t.Errorf("create %+v", vol.Disk)
		}
		ti := taskInfos(a)[0]
		if !ti.Resources[0].Equivalent(vol) {
			t.Errorf("task does not use the created volume: %+v", ti.Resources[0])
		}
		if !strings.Contains(ti.GetCommand().GetValue(), `DATA_DIR="$MESOS_SANDBOX"/etcd-data`) {
			t.Errorf("data dir not on the volume:\n%s", ti.GetCommand().GetValue())
		}
	})
	t.Run("existing volume wins even when offered last", func(t *testing.T) {
		r := matchOffers(roundInput(ds), offers(
			offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096, disk: 4096, ports: [][2]uint64{{31000, 31001}}},
			offerSpec{id: "o2", host: "h2", cpus: 4, mem: 4096, ports: [][2]uint64{{31000, 31001}}, volumeID: volID, volumeDir: "etcd-data", volumeMiB: 2048},
		))
		if len(r.Accepts) != 1 || r.Accepts[0].OfferID.Value != "o2" {
			t.Fatalf("launched %v", launchedNames(r))
		}
		if got := opTypes(r.Accepts[0]); !reflect.DeepEqual(got, []string{"LAUNCH"}) {
			t.Errorf("operations %v, want only LAUNCH", got)
		}
		if res := taskInfos(r.Accepts[0])[0].Resources[0]; res.GetDisk().GetPersistence().GetID() != volID {
			t.Errorf("volume not used: %+v", res)
		}
	})
	t.Run("pinned to the volume's agent", func(t *testing.T) {
		pinned := ds
		pinned.Volume = &VolumeRequest{SizeMiB: 2048, ContainerPath: "etcd-data", AgentID: "agent-h9"}
		r := matchOffers(roundInput(pinned), offers(offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096, disk: 4096, ports: [][2]uint64{{31000, 31001}}}))
		if len(r.Accepts) != 0 || !strings.Contains(r.Unplaced["datastore-0"], "volume is on another agent") {
			t.Errorf("launched %v, unplaced %v", launchedNames(r), r.Unplaced)
		}
	})
	t.Run("no disk big enough for the volume", func(t *testing.T) {
		r := matchOffers(roundInput(ds), offers(offerSpec{id: "o1", host: "h1", cpus: 4, mem: 4096, disk: 1024, ports: [][2]uint64{{31000, 31001}}}))
		if !strings.Contains(r.Unplaced["datastore-0"], "no disk for the volume") {
			t.Errorf("unplaced %v", r.Unplaced)
		}
	})
}

func TestMatchInvalidSpecBlocksLaterOrders(t *testing.T) {
	bad := pendingServer(0, 0)
	bad.Resources.CPUs = 0
	r := matchOffers(roundInput(bad, pendingAgent(0, 1)), offers(offerSpec{id: "o1", host: "h1", cpus: 8, mem: 8192, ports: [][2]uint64{{31000, 31010}}}))
	if len(r.Accepts) != 0 || !strings.Contains(r.Unplaced["server-0"], "invalid task spec") || !strings.Contains(r.Unplaced["agent-0"], "waiting for server-0") {
		t.Errorf("launched %v unplaced %v", launchedNames(r), r.Unplaced)
	}
}

func TestMatchIsDeterministic(t *testing.T) {
	os := offers(
		offerSpec{id: "o1", host: "h1", cpus: 3, mem: 4096, disk: 1000, ports: [][2]uint64{{31000, 31005}}},
		offerSpec{id: "o2", host: "h2", cpus: 3, mem: 4096, disk: 1000, ports: [][2]uint64{{31000, 31005}}},
	)
	pending := []TaskSpec{pendingServer(0, 0), pendingServer(1, 0), pendingAgent(0, 1), pendingAgent(1, 1), pendingAgent(2, 1)}
	a := matchOffers(roundInput(pending...), os)
	b := matchOffers(roundInput(pending...), os)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs differ")
	}
}

func TestMatchWithNoOffersOrNoTasks(t *testing.T) {
	r := matchOffers(roundInput(pendingAgent(0, 0)), nil)
	if r.Unplaced["agent-0"] != "no offers" || len(r.Accepts)+len(r.Declines) != 0 {
		t.Errorf("%+v", r)
	}
	r = matchOffers(roundInput(), offers(offerSpec{id: "o1", host: "h1", cpus: 1, mem: 1}))
	if len(r.Declines) != 1 || len(r.Accepts) != 0 {
		t.Errorf("%+v", r)
	}
}

func TestMatchLaunchesOneTaskPerName(t *testing.T) {
	r := matchOffers(roundInput(pendingAgent(0, 0), pendingAgent(0, 0)), offers(offerSpec{id: "o1", host: "h1", cpus: 8, mem: 8192}))
	if got := launchedNames(r); !reflect.DeepEqual(got, map[string][]string{"o1": {"agent-0"}}) {
		t.Errorf("launched %v", got)
	}
}
