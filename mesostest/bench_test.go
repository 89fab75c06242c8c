package mesostest

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

const (
	benchAgents        = 1000
	benchTasksPerAgent = 10
)

// benchCluster builds an unstarted emulator (no allocation loop, so rounds
// are driven by the benchmark) with 1,000 agents, one subscribed framework
// and 10,000 running tasks.
func benchCluster(b *testing.B) (*Server, *framework, *stream) {
	b.Helper()
	var agents []AgentConfig
	for i := 0; i < benchAgents; i++ {
		agents = append(agents, AgentConfig{
			Hostname: fmt.Sprintf("agent-%04d", i), CPUs: 16, MemMiB: 65536, DiskMiB: 1 << 20,
			Ports: []PortRange{{31000, 32000}}, Attributes: map[string]string{"rack": fmt.Sprintf("r%d", i%20)},
		})
	}
	s := NewUnstartedServer(Options{}, agents...)
	st := newStream(mediaProtobuf)
	s.mu.Lock()
	defer s.mu.Unlock()
	fw := s.subscribeLocked(&scheduler.Call_Subscribe{FrameworkInfo: frameworkInfo("bench", partitionAwareCaps...)}, "", st)
	for _, a := range s.agentOrder {
		for j := 0; j < benchTasksPerAgent; j++ {
			info := commandTask(fmt.Sprintf("%s-task-%d", a.hostname, j), a.id, "sleep 3600", 1, 2048)
			rs, err := s.validateLaunchTaskLocked(fw, a, "*", &info, allocated(a.free, "*"))
			if err != nil {
				b.Fatal(err)
			}
			info.Resources = rs
			a.free.Subtract(unallocated(rs)...)
			t := s.launchTaskLocked(fw, a, info, "*", nil)
			// Jump straight to an acknowledged TASK_RUNNING.
			s.stopTimerLocked(t.stateTimer)
			t.stateTimer = nil
			t.state = mesos.TASK_RUNNING
		}
	}
	st.take()
	return s, fw, st
}

// BenchmarkAllocation measures allocation rounds with 1,000 agents and
// 10,000 running tasks on one goroutine.
//
//   - offer-all: every round offers every agent's remaining resources
//     (1,000 offers in one OFFERS event, encoded), which the framework then
//     declines without a filter: the worst case.
//   - all-filtered: the framework declined everything with a long filter
//     and something changed, so a round checks every agent against the
//     filters and offers nothing.
//   - idle: the same cluster when nothing changed since the last round:
//     the round is skipped (the steady state of a busy, satisfied cluster).
func BenchmarkAllocation(b *testing.B) {
	b.Run("offer-all", func(b *testing.B) {
		base := liveHeapMiB()
		s, fw, st := benchCluster(b)
		defer s.Close()
		heap := liveHeapMiB() - base
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			s.mu.Lock()
			s.allocateLocked(time.Now())
			if len(fw.offers) != benchAgents {
				b.Fatalf("round offered %d agents", len(fw.offers))
			}
			for _, o := range fw.offers {
				s.removeOfferLocked(o, false)
			}
			s.mu.Unlock()
			st.take()
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rounds/s")
		b.ReportMetric(heap, "heap-MiB")
	})
	b.Run("all-filtered", func(b *testing.B) {
		base := liveHeapMiB()
		s, fw, st := filteredBenchCluster(b)
		defer s.Close()
		s.mu.Lock()
		s.mu.Unlock()
		st.take()
		heap := liveHeapMiB() - base
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			s.mu.Lock()
			s.allocationDirty = true // as if something changed: check every agent
			s.allocateLocked(time.Now())
			if len(fw.offers) != 0 {
				b.Fatalf("filtered round offered %d", len(fw.offers))
			}
			s.mu.Unlock()
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rounds/s")
		b.ReportMetric(heap, "heap-MiB")
	})
	b.Run("idle", func(b *testing.B) {
		base := liveHeapMiB()
		s, _, st := filteredBenchCluster(b)
		defer s.Close()
		s.mu.Lock()
		s.allocateLocked(time.Now()) // the round that finds everything filtered
		s.mu.Unlock()
		st.take()
		heap := liveHeapMiB() - base
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			s.mu.Lock()
			s.allocateLocked(time.Now())
			s.mu.Unlock()
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rounds/s")
		b.ReportMetric(heap, "heap-MiB")
	})
}

// liveHeapMiB measures the live heap; the difference around benchCluster
// is what the populated emulator holds (reported as heap-MiB).
func liveHeapMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// filteredBenchCluster is benchCluster after one round whose offers were all declined
// with an hour-long filter, so later rounds find every agent filtered.
func filteredBenchCluster(b *testing.B) (*Server, *framework, *stream) {
	b.Helper()
	s, fw, st := benchCluster(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocateLocked(time.Now())
	refuse := 3600.0
	for _, o := range fw.offers {
		s.addFilterLocked(fw, o.agent, o.role, o.resources, &mesos.Filters{RefuseSeconds: &refuse})
		s.removeOfferLocked(o, false)
	}
	return s, fw, st
}
