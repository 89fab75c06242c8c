package mesosbridge

import (
	"encoding/base64"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// teardownUntilDone calls Teardown as the controller's delete path does, until done.
func teardownUntilDone(t *testing.T, b *testBridge, cfg FrameworkConfig) {
	t.Helper()
	eventually(t, "teardown", func() bool {
		done, err := b.Teardown(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Teardown: %v", err)
		}
		return done
	})
}

func TestTeardownLeavesNothingInMesos(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "doomed")
	teardownUntilDone(t, b, c.cfg)

	st := s.State()
	if len(st.Frameworks) != 0 {
		t.Fatalf("frameworks left: %+v", st.Frameworks)
	}
	for _, a := range st.Slaves {
		if a.UsedResources.CPUs != 0 || a.UsedResources.Mem != 0 {
			t.Errorf("agent %s still has resources in use: %+v", a.Hostname, a.UsedResources)
		}
	}
	// The tasks were killed before TEARDOWN (so they got their grace period), not
	// swept away by it.
	if len(st.CompletedFrameworks) != 1 {
		t.Fatalf("completed frameworks %+v", st.CompletedFrameworks)
	}
	for _, task := range st.CompletedFrameworks[0].CompletedTasks {
		sawKilling := false
		for _, status := range task.Statuses {
			sawKilling = sawKilling || status.State == string(TaskKilling)
		}
		if task.State != string(TaskKilled) || !sawKilling {
			t.Errorf("task %s ended %s without TASK_KILLING first", task.Name, task.State)
		}
	}
	if _, known := b.Observe(c.cfg.Key()); known {
		t.Errorf("the bridge still knows the cluster")
	}
	if done, err := b.Teardown(t.Context(), c.cfg); !done || err != nil {
		t.Errorf("Teardown again: %v %v", done, err)
	}
}

// After an operator restart the bridge knows nothing of the cluster but its framework
// ID: Teardown subscribes with it to find and kill the tasks.
func TestTeardownAfterRestart(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	first := newTestBridge(t)
	c := runningCluster(t, s, first, "restart-delete")
	first.Stop()

	second := newTestBridge(t)
	teardownUntilDone(t, second, c.cfg)
	if fw := s.State().Frameworks; len(fw) != 0 {
		t.Fatalf("frameworks left: %+v", fw)
	}
}

func TestTeardownNeverConnected(t *testing.T) {
	b := newTestBridge(t)
	cfg := clusterConfig("never", "127.0.0.1:1") // nothing listens there
	obs, err := b.Ensure(t.Context(), cfg, []TaskSpec{smallServer(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Connection.Connected {
		t.Fatalf("connected to nothing: %+v", obs.Connection)
	}
	teardownUntilDone(t, b, cfg)
}

func TestTeardownReportsUnreachableMaster(t *testing.T) {
	b := newTestBridge(t)
	cfg := clusterConfig("unreachable", "127.0.0.1:1")
	cfg.FrameworkID = "persisted-framework-id"
	var err error
	eventually(t, "an error", func() bool {
		var done bool
		done, err = b.Teardown(t.Context(), cfg)
		if done {
			t.Fatal("torn down without reaching the master")
		}
		return err != nil
	})
	if !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), cfg.FrameworkID) {
		t.Fatalf("error %q", err)
	}
}

func TestNoSecretInMasterState(t *testing.T) {
	s := newEmulator(t, mesostest.Options{Credentials: map[string]string{"mesosk3s": "FRAMEWORK-CREDENTIAL"}})
	b := newTestBridge(t)
	cfg := clusterConfig("secrets", s.URL())
	cfg.Principal, cfg.Secret = "mesosk3s", "FRAMEWORK-CREDENTIAL"
	server := smallServer(0)
	server.Secrets = testSecrets()
	c := newController(t, b, cfg, server, smallAgent(0, 1))
	c.until("running", allRunning("server-0", "agent-0"))

	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/state", nil)
	req.SetBasicAuth("mesosk3s", "FRAMEWORK-CREDENTIAL")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	state := string(body)
	if !strings.Contains(state, "server-0") {
		t.Fatalf("state without the task: %.300s", state)
	}
	secrets := map[string][]byte{"framework credential": []byte(cfg.Secret)}
	for k, v := range server.Secrets {
		secrets[k] = v
	}
	for name, value := range secrets {
		for _, form := range []string{string(value), base64.StdEncoding.EncodeToString(value), strings.TrimSpace(string(value))} {
			if strings.Contains(state, form) {
				t.Errorf("secret %s appears in /state", name)
			}
		}
	}
}

// Reconnects never leave a loop behind, and after Teardown and Stop not one goroutine
// of the bridge remains.
func TestNoGoroutineLeft(t *testing.T) {
	baseline := settledGoroutines(0)
	func() {
		s := mesostest.NewServer(mesostest.Options{AllocationInterval: testAllocation, HeartbeatInterval: testHeartbeat},
			agentConfig("node-1", 4), agentConfig("node-2", 4))
		defer s.Close()
		b := newTestBridge(t)
		defer b.Stop()
		c := runningCluster(t, s, b, "leak")
		standby := s.AddMaster()
		for i := range 4 {
			switch i {
			case 0, 1:
				_ = s.DropStream(c.cfg.FrameworkID)
			case 2:
				_ = s.StopHeartbeats(c.cfg.FrameworkID, true)
			case 3:
				_ = s.FailoverTo(standby)
			}
			want := float64(i + 2)
			eventually(t, "resubscription", func() bool {
				return b.metric("mesosk3s_bridge_subscriptions_total") >= want && c.reconcile().Connection.Connected
			})
			if n := goroutinesIn("mesosbridge.(*subscription).read"); n != 1 {
				t.Fatalf("%d event readers, want 1", n)
			}
			if n := goroutinesIn("mesosbridge.(*cluster).run"); n != 1 {
				t.Fatalf("%d framework loops, want 1", n)
			}
		}
		teardownUntilDone(t, b, c.cfg)
		if n := goroutinesIn("mesosbridge.(*cluster)"); n != 0 {
			t.Fatalf("%d goroutines of the torn-down framework remain", n)
		}
	}()
	if n := settledGoroutines(baseline); n > baseline {
		t.Fatalf("%d goroutines after Teardown, Stop and Close, %d before", n, baseline)
	}
}

// settledGoroutines waits (bounded) for the goroutine count to drop to target, and
// returns it; target 0 just lets the count settle.
func settledGoroutines(target int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		next := runtime.NumGoroutine()
		if (target > 0 && next <= target) || (target == 0 && next == n) {
			return next
		}
		n = next
	}
	return n
}

// TestTeardownReleasesVolumesAndReservations: a server's persistent volume and the disk
// reserved for it are destroyed and unreserved before TEARDOWN, so deleting a cluster
// leaves nothing of it on the agents.
func TestTeardownReleasesVolumesAndReservations(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t)
	server := smallServer(0)
	server.Volume = &VolumeRequest{SizeMiB: 256, ContainerPath: "k3s-data"}
	cfg := clusterConfig("volumes", s.URL())
	c := newController(t, b, cfg, server)
	c.until("server running on its volume", allRunning("server-0"))
	reservedDisk := func() float64 {
		total := 0.0
		for _, a := range s.State().Slaves {
			total += a.ReservedResources[cfg.Role].Disk
		}
		return total
	}
	if got := reservedDisk(); got != 256 {
		t.Fatalf("reserved disk before teardown = %v, want 256", got)
	}
	teardownUntilDone(t, b, c.cfg)
	if got := reservedDisk(); got != 0 {
		t.Fatalf("reserved disk after teardown = %v, want 0", got)
	}
	for _, a := range s.State().Slaves {
		if len(a.ReservedResourcesFull[cfg.Role]) != 0 {
			t.Fatalf("agent %s keeps %+v", a.Hostname, a.ReservedResourcesFull[cfg.Role])
		}
	}
	if fw := s.State().Frameworks; len(fw) != 0 {
		t.Fatalf("frameworks left: %+v", fw)
	}
}

// reservedFor is the disk still reserved for the role on any agent.
func reservedFor(s *mesostest.Server, role string) float64 {
	total := 0.0
	for _, a := range s.State().Slaves {
		total += a.ReservedResources[role].Disk
	}
	return total
}

// A task that ignores SIGTERM dies only when Mesos SIGKILLs it at the end of its grace
// period; the teardown waits longer than that, so the volume is free to destroy before
// TEARDOWN and nothing stays reserved (seen on a real Mesos: a kill wait equal to the
// grace period sent TEARDOWN 0.1 s before the task died, and 1 GiB stayed reserved).
func TestTeardownOutlastsATaskThatIgnoresSIGTERM(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	b := newTestBridge(t, func(o *Options) { o.KillWait, o.KillWaitMargin = 3*time.Second, time.Second })
	server := smallServer(0)
	server.Volume = &VolumeRequest{SizeMiB: 256, ContainerPath: "k3s-data"}
	server.KillGracePeriod = 3 * time.Second
	cfg := clusterConfig("stubborn", s.URL())
	c := newController(t, b, cfg, server)
	task := c.until("server running on its volume", allRunning("server-0")).Tasks["server-0"]
	if err := s.IgnoreSIGTERM(task.TaskID, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	teardownUntilDone(t, b, c.cfg)
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("teardown done after %s, before the task's 3 s grace was over", took)
	}
	if got := reservedFor(s, cfg.Role); got != 0 {
		t.Fatalf("reserved disk after teardown = %v, want 0", got)
	}
}

// When TEARDOWN has to go before the release step freed everything, the bridge frees
// the rest through the master's operator endpoints.
func TestTeardownReleasesLeftoversThroughTheOperatorAPI(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	// A release wait too short for any offer to carry the reservations back.
	b := newTestBridge(t, func(o *Options) { o.ReleaseWait = time.Millisecond })
	server := smallServer(0)
	server.Volume = &VolumeRequest{SizeMiB: 128, ContainerPath: "k3s-data"}
	cfg := clusterConfig("leftovers", s.URL())
	c := newController(t, b, cfg, server)
	c.until("server running on its volume", allRunning("server-0"))
	teardownUntilDone(t, b, c.cfg)
	if got := reservedFor(s, cfg.Role); got != 0 {
		t.Fatalf("reserved disk after teardown = %v, want 0", got)
	}
}
