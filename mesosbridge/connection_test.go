package mesosbridge

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

func TestEndpointAndRedirectTarget(t *testing.T) {
	plain := &transport{}
	secure := &transport{useTLS: true}
	for _, tc := range []struct {
		tr           *transport
		master, want string
	}{
		{plain, "10.0.0.1:5050", "http://10.0.0.1:5050/api/v1/scheduler"},
		{secure, "mesos.example.com:5050", "https://mesos.example.com:5050/api/v1/scheduler"},
		{plain, "https://m:5050", "https://m:5050/api/v1/scheduler"},
		{plain, "http://m:5050/", "http://m:5050/api/v1/scheduler"},
		{plain, "http://m/master/api/v1/scheduler", "http://m/master/api/v1/scheduler"},
	} {
		if got, err := tc.tr.endpoint(tc.master); err != nil || got != tc.want {
			t.Errorf("endpoint(%q) = %q, %v; want %q", tc.master, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ from, location, want string }{
		{"http://a:5050/api/v1/scheduler", "//b:5051/api/v1/scheduler", "http://b:5051/api/v1/scheduler"},
		{"https://a:5050/api/v1/scheduler", "//b:5051/api/v1/scheduler", "https://b:5051/api/v1/scheduler"},
		{"http://a:5050/api/v1/scheduler", "http://c:5050/api/v1/scheduler", "http://c:5050/api/v1/scheduler"},
	} {
		if got, err := redirectTarget(tc.from, tc.location); err != nil || got != tc.want {
			t.Errorf("redirectTarget(%q, %q) = %q, %v; want %q", tc.from, tc.location, got, err, tc.want)
		}
	}
	if _, err := redirectTarget("http://a/", ""); err == nil {
		t.Error("empty Location accepted")
	}
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	b := newBackoffState(Backoff{Initial: 100 * time.Millisecond, Max: time.Second})
	nominal := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, n := range nominal {
		n *= time.Millisecond
		if d := b.next(); d < n/2 || d > n {
			t.Errorf("attempt %d: %v outside [%v, %v]", i, d, n/2, n)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

func TestNotifierCoalescesAndNeverBlocks(t *testing.T) {
	n := newNotifier()
	a, b := ClusterKey{"ns", "a"}, ClusterKey{"ns", "b"}
	for range 1000 {
		n.notify(a) // nobody reads yet: must not block
	}
	n.notify(b)
	if k, _ := n.next(); k != a {
		t.Fatalf("first %v", k)
	}
	if k, _ := n.next(); k != b {
		t.Fatalf("second %v", k)
	}
	if _, ok := n.next(); ok {
		t.Fatal("a thousand notifications of one key were not coalesced")
	}
}

// tlsFront serves the emulator's scheduler API over HTTPS, streaming.
func tlsFront(t *testing.T, s *mesostest.Server) *httptest.Server {
	target, _ := url.Parse(s.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	quiet := log.New(io.Discard, "", 0) // canceled streams and refused handshakes are expected
	proxy.ErrorLog = quiet
	front := httptest.NewUnstartedServer(proxy)
	front.Config.ErrorLog = quiet
	front.StartTLS()
	t.Cleanup(front.Close)
	return front
}

func TestTLSToTheMaster(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	front := tlsFront(t, s)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})
	address := strings.TrimPrefix(front.URL, "https://") // host:port: https because TLS is configured

	for _, tc := range []struct {
		name string
		tls  TLSConfig
		ok   bool
	}{
		{"trusted CA", TLSConfig{CAData: caPEM}, true},
		{"explicit skip-verify", TLSConfig{InsecureSkipVerify: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t)
			cfg := clusterConfig(strings.ReplaceAll(tc.name, " ", "-"), address)
			cfg.TLS = tc.tls
			newController(t, b, cfg, smallAgent(0, 0)).until("running over TLS", allRunning("agent-0"))
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		b := newTestBridge(t)
		cfg := clusterConfig("untrusted", front.URL)
		obs := newController(t, b, cfg).until("refused certificate", func(o Observed) bool {
			return o.Connection.Reason == ConnUnreachable && strings.Contains(o.Connection.Message, "certificate")
		})
		if obs.Connection.Connected {
			t.Fatal("connected without trusting the master")
		}
	})
}

func TestUnreachableAgentIsReportedNotReplaced(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	// Mesos tells nobody when a partitioned agent comes back: the periodic implicit
	// reconciliation finds its tasks running again.
	b := newTestBridge(t, func(o *Options) { o.ReconcileInterval = 10 * testAllocation })
	c := runningCluster(t, s, b, "partition")
	lost := c.last.Tasks["agent-0"]
	if err := s.LoseAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	c.until("unreachable", func(o Observed) bool { return o.Tasks["agent-0"].State == TaskUnreachable })
	settleOfferRounds()
	if got := c.reconcile().Tasks["agent-0"]; got.TaskID != lost.TaskID {
		t.Fatalf("an unreachable task was replaced by %s", got.TaskID)
	}
	if err := s.RestoreAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	// The partition heals: the next reconciliation finds the task running again.
	c.until("running again", func(o Observed) bool {
		t := o.Tasks["agent-0"]
		return t.TaskID == lost.TaskID && t.State == TaskRunning
	})
}

// TestKilledUnreachableTaskIsReplaced: killing a task on an unreachable agent frees its
// name; the replacement runs elsewhere, and when the partition heals the old task is
// killed, so the name never has two live tasks for long.
func TestKilledUnreachableTaskIsReplaced(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t, func(o *Options) { o.ReconcileInterval = 10 * testAllocation })
	c := runningCluster(t, s, b, "replace")
	lost := c.last.Tasks["agent-0"]
	if err := s.LoseAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	c.until("unreachable", func(o Observed) bool { return o.Tasks["agent-0"].State == TaskUnreachable })
	if err := b.Kill(context.Background(), c.cfg.Key(), "agent-0"); err != nil {
		t.Fatal(err)
	}
	replaced := c.until("replaced on another agent", func(o Observed) bool {
		t := o.Tasks["agent-0"]
		return t.TaskID != lost.TaskID && t.State == TaskRunning
	}).Tasks["agent-0"]
	if replaced.Hostname == lost.Hostname {
		t.Fatalf("replacement on the lost agent %s", lost.Hostname)
	}
	if err := s.RestoreAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		running := 0
		for _, f := range s.State().Frameworks {
			for _, task := range f.Tasks {
				if task.Name == "agent-0" && task.State == "TASK_RUNNING" {
					running++
				}
			}
		}
		if running == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d agent-0 tasks running after the partition healed", running)
		}
		c.reconcile()
		time.Sleep(testAllocation)
	}
	if got := c.reconcile().Tasks["agent-0"]; got.TaskID != replaced.TaskID || got.State != TaskRunning {
		t.Fatalf("the replacement did not survive the old task's return: %+v", got)
	}
}
