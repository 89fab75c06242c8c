package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// BenchmarkClusterGrowth is the cost of one cluster as it grows: one reconcile pass (the
// real API server, the fake bridge reporting every task running) and the size of the
// status it writes, for 1, 10, 100 and 1,000 agents (the API's maximum). The status must
// stay far below the API server's object size limit (1.5 MiB by default in etcd).
func BenchmarkClusterGrowth(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			ns, name := fakeCluster(b, fmt.Sprintf("agents: {replicas: %d}", n))
			tasks := []mesosbridge.ObservedTask{running("server-0", true, "")}
			for i := range n {
				t := running(fmt.Sprintf("agent-%d", i), true, "")
				t.AgentID, t.Hostname = fmt.Sprintf("agent-%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
				t.Ports = map[string]uint32{"kubelet": 31000, "kubelet-healthz": 31001, "kube-proxy-metrics": 31002, "kube-proxy-healthz": 31003, "lb": 31004, "cri-stream": 31005}
				tasks = append(tasks, t)
			}
			f := newFakeBridge(tasks...)
			now := time.Now()
			passes(b, f, ns, name, now, 2)
			b.ResetTimer()
			for range b.N {
				passes(b, f, ns, name, now, 1)
			}
			b.StopTimer()
			var c v1alpha1.K3sCluster
			if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &c); err != nil {
				b.Fatal(err)
			}
			if len(c.Status.Tasks) != n+1 {
				b.Fatalf("%d tasks in status, want %d", len(c.Status.Tasks), n+1)
			}
			status, _ := json.Marshal(c.Status)
			whole, _ := json.Marshal(c)
			b.ReportMetric(float64(len(status)), "status-bytes")
			b.ReportMetric(float64(len(whole)), "object-bytes")
		})
	}
}
