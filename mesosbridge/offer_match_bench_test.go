package mesosbridge

import (
	"fmt"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

const (
	benchOffers  = 1000
	benchPending = 100
)

// benchOffersOf builds n agent offers; cpus(i) gives agent i's unreserved cpus.
func benchOffersOf(n int, cpus func(i int) float64) []mesos.Offer {
	out := make([]mesos.Offer, n)
	for i := range out {
		out[i] = makeOffer(offerSpec{
			id: fmt.Sprintf("offer-%d", i), host: fmt.Sprintf("node-%04d", i),
			cpus: cpus(i), mem: 32768, disk: 102400, ports: [][2]uint64{{31000, 32000}},
			attrs: map[string]string{"rack": fmt.Sprintf("r%d", i%20), "zone": fmt.Sprintf("z%d", i%3)},
		})
	}
	return out
}

// benchPlan is a realistic cluster plan: 3 servers spread over hosts, then 97 agents spread
// over zones, at most one per host.
func benchPlan(agentCPUs float64) []TaskSpec {
	pending := make([]TaskSpec, 0, benchPending)
	for i := 0; i < 3; i++ {
		s := pendingServer(i, 0)
		s.Resources = Resources{CPUs: 2, MemMiB: 4096, DiskMiB: 1024}
		pending = append(pending, s)
	}
	for i := 0; len(pending) < benchPending; i++ {
		a := pendingAgent(i, 1)
		a.Resources = Resources{CPUs: agentCPUs, MemMiB: 8192, DiskMiB: 1024}
		a.Constraints = []Constraint{{Field: "zone", Operator: OpGroupBy}, {Field: "hostname", Operator: OpMaxPer, Value: "1"}}
		pending = append(pending, a)
	}
	return pending
}

// BenchmarkMatch measures one offer round of 1,000 offers against 100 pending tasks, in
// ns per offer (offer parsing, matching, TaskInfo building, everything matchOffers does).
//   - fits: every task finds an offer early (the common case);
//   - scarce: only the last 10% of offers have room, so most tasks walk 900 offers;
//   - none-fit: nothing fits, every task is tried against every offer (the worst case;
//     all tasks share one order so none is skipped by plan gating).
func BenchmarkMatch(b *testing.B) {
	cases := []struct {
		name    string
		offers  []mesos.Offer
		pending []TaskSpec
	}{
		{"fits", benchOffersOf(benchOffers, func(int) float64 { return 8 }), benchPlan(4)},
		{"scarce", benchOffersOf(benchOffers, func(i int) float64 {
			if i >= benchOffers*9/10 {
				return 8
			}
			return 1
		}), benchPlan(4)},
		{"none-fit", benchOffersOf(benchOffers, func(int) float64 { return 8 }), func() []TaskSpec {
			p := benchPlan(64)
			for i := range p {
				p[i].Order = 0
				p[i].Resources.CPUs = 64
			}
			return p
		}()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			in := matchInput{Framework: testFramework(), Pending: c.pending, NewTaskID: newTaskID}
			var launched int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := matchOffers(in, c.offers)
				launched = 0
				for _, a := range r.Accepts {
					launched += len(a.Launched)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c.offers)), "ns/offer")
			b.ReportMetric(float64(launched), "launched")
		})
	}
}
