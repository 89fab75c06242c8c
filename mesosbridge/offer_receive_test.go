package mesosbridge

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestSortAcceptsByPlan(t *testing.T) {
	accept := func(offer string, names ...string) offerAccept {
		a := offerAccept{OfferID: mesos.OfferID{Value: offer}}
		for _, n := range names {
			a.Launched = append(a.Launched, launchedTask{Name: n})
		}
		return a
	}
	pending := []TaskSpec{{Name: "datastore-0", Order: 0}, {Name: "server-0", Order: 1}, {Name: "agent-0", Order: 2}, {Name: "agent-1", Order: 2}}
	accepts := []offerAccept{accept("o1", "agent-0"), accept("o2", "agent-1", "server-0"), accept("o3", "datastore-0")}
	sortAcceptsByPlan(accepts, pending)
	var got []string
	for _, a := range accepts {
		got = append(got, a.OfferID.Value)
	}
	if want := []string{"o3", "o2", "o1"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("ACCEPT order %v, want %v", got, want)
	}
}
