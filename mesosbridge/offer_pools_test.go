package mesosbridge

import (
	"reflect"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestUsableBy(t *testing.T) {
	alloc := func(role string) *mesos.Resource_AllocationInfo {
		return &mesos.Resource_AllocationInfo{Role: ptr(role)}
	}
	tests := []struct {
		name string
		r    mesos.Resource
		want bool
	}{
		{"unreserved, allocated to us", mesos.Resource{Name: "cpus", Role: ptr("*"), AllocationInfo: alloc("k3s")}, true},
		{"no role field at all", mesos.Resource{Name: "cpus", AllocationInfo: alloc("k3s")}, true},
		{"allocated to another role", mesos.Resource{Name: "cpus", Role: ptr("*"), AllocationInfo: alloc("web")}, false},
		{"reserved for us (pre-refinement)", mesos.Resource{Name: "cpus", Role: ptr("k3s"), AllocationInfo: alloc("k3s")}, true},
		{"reserved for us (refined)", mesos.Resource{Name: "cpus", AllocationInfo: alloc("k3s"),
			Reservations: []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_DYNAMIC.Enum(), Role: ptr("k3s")}}}, true},
		{"reserved for another role", mesos.Resource{Name: "cpus", Role: ptr("web")}, false},
		{"revocable", mesos.Resource{Name: "cpus", Role: ptr("*"), Revocable: &mesos.Resource_RevocableInfo{}}, false},
		{"shared", mesos.Resource{Name: "disk", Role: ptr("k3s"), Shared: &mesos.Resource_SharedInfo{}}, false},
	}
	for _, tt := range tests {
		if got := usableBy(&tt.r, "k3s"); got != tt.want {
			t.Errorf("%s: usableBy = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAttributeMap(t *testing.T) {
	got := attributeMap([]mesos.Attribute{
		{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: "r1"}},
		{Name: "gen", Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: 3}},
		{Name: "weight", Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: 2.5}},
		{Name: "slots", Type: mesos.RANGES, Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 1, End: 3}, {Begin: 7, End: 7}}}},
		{Name: "disks", Type: mesos.SET, Set: &mesos.Value_Set{Item: []string{"ssd", "nvme"}}},
	})
	want := map[string]string{"rack": "r1", "gen": "3", "weight": "2.5", "slots": "[1-3,7-7]", "disks": "{ssd,nvme}"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestTakeScalarAndPorts(t *testing.T) {
	reserved := scalar("cpus", 0.5)
	reserved.Role = ptr("k3s")
	o := mesos.Offer{Resources: []mesos.Resource{scalar("cpus", 1.2), reserved}}
	s := newOfferState(&o, "k3s")
	if s.cpusLeft != 1.7 {
		t.Fatalf("cpusLeft %v", s.cpusLeft)
	}
	got := takeScalar(s.cpus, 0.7)
	if len(got) != 2 || got[0].GetRole() != "k3s" || got[0].GetScalar().GetValue() != 0.5 || got[1].GetScalar().GetValue() != 0.2 {
		t.Errorf("took %v", got)
	}
	if s.cpus[1].left != 1 {
		t.Errorf("left %v in the unreserved pool", s.cpus[1].left)
	}

	pools := []rangePool{
		{res: &mesos.Resource{Name: "ports"}, left: mesos.Ranges{{Begin: 31000, End: 31001}}},
		{res: &mesos.Resource{Name: "ports"}, left: mesos.Ranges{{Begin: 40000, End: 40010}}},
	}
	// Three names need a run of three: the first pool's two ports do not do.
	if !portRunFits(pools, 3) || portRunFits(pools, 12) {
		t.Errorf("portRunFits wrong for %v", pools)
	}
	assigned, res := takePorts(pools, []string{"a", "b", "c"})
	if !reflect.DeepEqual(assigned, map[string]uint32{"a": 40000, "b": 40001, "c": 40002}) {
		t.Errorf("assigned %v", assigned)
	}
	if len(res) != 1 || !reflect.DeepEqual(res[0].Ranges.Range, []mesos.Value_Range{{Begin: 40000, End: 40002}}) {
		t.Errorf("resources %v", res)
	}
	if len(pools[0].left) != 1 || pools[1].left[0].Begin != 40003 {
		t.Errorf("left %v %v", pools[0].left, pools[1].left)
	}
	// A run that uses a whole range removes it.
	assigned, _ = takePorts(pools, []string{"x", "y"})
	if !reflect.DeepEqual(assigned, map[string]uint32{"x": 31000, "y": 31001}) || len(pools[0].left) != 0 {
		t.Errorf("assigned %v, left %v", assigned, pools[0].left)
	}
}
