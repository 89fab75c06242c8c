package mesosbridge

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// Scenario tests run the bridge against the Mesos master emulator over real HTTP, with
// short intervals so that the whole package stays quick on a small machine.
const (
	testHeartbeat  = 100 * time.Millisecond
	testAllocation = 20 * time.Millisecond
	waitLong       = 10 * time.Second
)

// testLogger logs to stderr when MESOSBRIDGE_TEST_LOG is set; it never uses t.Log, which
// must not be called once a test has finished.
func testLogger() logr.Logger {
	if os.Getenv("MESOSBRIDGE_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{Verbosity: 1})
}

func newEmulator(t testing.TB, opts mesostest.Options, agents ...mesostest.AgentConfig) *mesostest.Server {
	t.Helper()
	if opts.AllocationInterval == 0 {
		opts.AllocationInterval = testAllocation
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = testHeartbeat
	}
	if len(agents) == 0 {
		agents = []mesostest.AgentConfig{agentConfig("node-1", 4), agentConfig("node-2", 4), agentConfig("node-3", 4)}
	}
	s := mesostest.NewServer(opts, agents...)
	t.Cleanup(s.Close)
	return s
}

func agentConfig(host string, cpus float64) mesostest.AgentConfig {
	return mesostest.AgentConfig{Hostname: host, CPUs: cpus, MemMiB: 16384, DiskMiB: 65536,
		Ports: []mesostest.PortRange{{Begin: 31000, End: 31100}}}
}

// testBridge is a Manager with its own registry, stopped when the test ends.
type testBridge struct {
	*Manager
	reg *prometheus.Registry
}

func newTestBridge(t testing.TB, mutate ...func(*Options)) *testBridge {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{
		Logger:            testLogger(),
		Metrics:           reg,
		HTTPTimeout:       2 * time.Second,
		ReconnectBackoff:  Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		HeartbeatMisses:   4,
		ReconcileInterval: time.Minute,
		KillWait:          5 * time.Second,
	}
	for _, m := range mutate {
		m(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return &testBridge{Manager: b, reg: reg}
}

// metric sums a metric's samples whose labels include the given pairs.
func (b *testBridge) metric(name string, labels ...string) float64 {
	families, err := b.reg.Gather()
	if err != nil {
		panic(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				total += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func clusterConfig(name string, masters ...string) FrameworkConfig {
	return FrameworkConfig{
		ClusterNamespace: "team-a", ClusterName: name, ClusterUID: "uid-" + name,
		Name: "test:team-a/" + name, User: "root",
		Role: "k3s", FailoverTimeout: time.Hour, Masters: masters,
	}
}

// smallServer is an image task under the Mesos containerizer (a task group) and smallAgent
// a Docker task: the emulator simulates both.
func smallServer(i int) TaskSpec {
	s := serverSpec()
	s.Name, s.Index, s.Order = fmt.Sprintf("server-%d", i), i, i
	s.Container = Container{Type: ContainerImage, Image: "example/server:1"}
	s.Fetch = nil
	s.Resources = Resources{CPUs: 1, MemMiB: 512, DiskMiB: 128}
	s.Constraints = []Constraint{{Field: "hostname", Operator: "UNIQUE"}}
	return s
}

func smallAgent(i, order int) TaskSpec {
	s := agentSpec()
	s.Name, s.Index, s.Order = fmt.Sprintf("agent-%d", i), i, order
	s.Resources = Resources{CPUs: 0.5, MemMiB: 256}
	return s
}

// controller plays the part of the K3sCluster controller: it calls Ensure on every
// event of its cluster, persists the framework ID it is given, and passes back the
// tasks it last saw as known tasks.
type controller struct {
	t       testing.TB
	b       *testBridge
	cfg     FrameworkConfig
	desired []TaskSpec
	known   []ObservedTask
	last    Observed
	// seenAt is the number of the observation in which each task ID first appeared.
	seenAt       map[string]int
	observations int
}

func newController(t testing.TB, b *testBridge, cfg FrameworkConfig, desired ...TaskSpec) *controller {
	return &controller{t: t, b: b, cfg: cfg, desired: desired, seenAt: map[string]int{}}
}

func (c *controller) reconcile() Observed {
	c.t.Helper()
	obs, err := c.b.Ensure(context.Background(), c.cfg, c.desired, c.known)
	if err != nil {
		c.t.Fatalf("Ensure: %v", err)
	}
	if obs.FrameworkID != "" && obs.FrameworkID != c.cfg.FrameworkID {
		c.cfg.FrameworkID = obs.FrameworkID // "persisted in status.frameworkID"
	}
	c.known = c.known[:0]
	for _, task := range obs.Tasks {
		c.known = append(c.known, task)
		if _, seen := c.seenAt[task.TaskID]; !seen {
			c.seenAt[task.TaskID] = c.observations
		}
	}
	c.last = obs
	c.observations++
	return obs
}

// until reconciles on every event (and every 50ms, in case the key was taken by an
// earlier wait) until cond holds.
func (c *controller) until(what string, cond func(Observed) bool) Observed {
	c.t.Helper()
	deadline := time.After(waitLong)
	for {
		obs := c.reconcile()
		if cond(obs) {
			return obs
		}
		select {
		case <-c.b.Events():
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			c.t.Fatalf("timed out waiting for %s; last observed: %s", what, describe(obs))
		}
	}
}

func describe(o Observed) string {
	var b strings.Builder
	fmt.Fprintf(&b, "connection=%+v framework=%s", o.Connection, o.FrameworkID)
	for name, t := range o.Tasks {
		fmt.Fprintf(&b, " %s=%s(%s)", name, t.State, t.TaskID)
	}
	if len(o.Unplaced) > 0 {
		fmt.Fprintf(&b, " unplaced=%v", o.Unplaced)
	}
	return b.String()
}

func allRunning(names ...string) func(Observed) bool {
	return func(o Observed) bool {
		for _, n := range names {
			if o.Tasks[n].State != TaskRunning {
				return false
			}
		}
		return o.Connection.Connected
	}
}

func taskNames(specs []TaskSpec) []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// frameworkTasks are the live tasks of the emulator's framework with that ID.
func frameworkTasks(s *mesostest.Server, frameworkID string) []mesostest.StateTask {
	for _, f := range s.State().Frameworks {
		if f.ID == frameworkID {
			return f.Tasks
		}
	}
	return nil
}

// goroutinesIn counts the goroutines whose stack has a frame of the function.
func goroutinesIn(function string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, function) {
			count++
		}
	}
	return count
}
