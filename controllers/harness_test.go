package controllers_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/controllers"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

const (
	waitDeploy = 40 * time.Second
	poll       = 50 * time.Millisecond
)

var nsCounter atomic.Int32

// harness is one test's world: a namespace on the real API server, a Mesos master
// emulator over real HTTP, and the operator (bridge + manager) that can be stopped and
// started again like a real process.
type harness struct {
	t     testing.TB
	ctx   context.Context
	ns    string
	mesos *mesostest.Server
	c     client.Client

	mu       sync.Mutex
	stopOp   func()
	opCount  int
	opMaster string
	// metrics is the running operator's bridge registry.
	metrics *prometheus.Registry
}

// agents returns n emulated Mesos agents. Their host names are loopback addresses, so the
// operator's /readyz probe gets a quick "connection refused" from simulated servers. Their
// ports are a range no other test uses: a real K3s of the playground test, running at the
// same time, listens on all addresses of its ports (31000 and up), and a probe that reached
// it would see a foreign certificate.
func agents(n int) []mesostest.AgentConfig {
	out := make([]mesostest.AgentConfig, n)
	for i := range out {
		out[i] = mesostest.AgentConfig{
			Hostname: fmt.Sprintf("127.0.0.%d", i+1), CPUs: 4, MemMiB: 8192, DiskMiB: 65536,
			Ports: []mesostest.PortRange{{Begin: 32100, End: 32199}},
		}
	}
	return out
}

func newHarness(t testing.TB, nAgents int) *harness {
	t.Helper()
	return newHarnessWith(t, nAgents, mesostest.Options{})
}

// newHarnessWith is newHarness with emulator options beyond the harness's timings (say
// Credentials).
func newHarnessWith(t testing.TB, nAgents int, opts mesostest.Options) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), c: env.Client,
		ns: fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-")))}
	if len(h.ns) > 60 {
		h.ns = h.ns[:60]
	}
	h.ns = strings.TrimRight(h.ns, "-")
	if err := env.Client.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}); err != nil {
		t.Fatal(err)
	}
	opts.AllocationInterval = 20 * time.Millisecond
	opts.HeartbeatInterval = 200 * time.Millisecond
	opts.KillGracePeriod = 200 * time.Millisecond
	opts.Logger = testLogger("mesos")
	h.mesos = mesostest.NewServer(opts, agents(nAgents)...)
	h.opMaster = h.mesos.URL()
	t.Cleanup(func() {
		h.stopOperator()
		h.mesos.Close()
	})
	h.startOperator()
	return h
}

func testLogger(name string) logr.Logger {
	if os.Getenv("MESOSK3S_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{}).WithName(name)
}

// startOperator runs a fresh bridge and manager, as a restarted operator process would.
func (h *harness) startOperator() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopOp != nil {
		h.t.Fatal("operator already running")
	}
	h.metrics = prometheus.NewRegistry()
	bridge, err := mesosbridge.New(mesosbridge.Options{
		Metrics:          h.metrics,
		Logger:           testLogger("bridge"),
		HTTPTimeout:      2 * time.Second,
		ReconnectBackoff: mesosbridge.Backoff{Initial: 20 * time.Millisecond, Max: 300 * time.Millisecond},
		KillWait:         3 * time.Second,
		// Mesos says nothing when a lost agent returns; tests do not wait 15s to notice.
		UnreachableReconcileInterval: 200 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Logger:                 testLogger("manager"),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := mgr.Add(bridge); err != nil {
		h.t.Fatal(err)
	}
	r := &controllers.K3sClusterReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("mesosk3s"), Bridge: bridge,
		DefaultMesosMaster: h.opMaster, MaxConcurrentReconciles: 2,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	h.opCount++
	h.stopOp = func() { cancel(); <-done; bridge.Stop() }
}

func (h *harness) stopOperator() {
	h.mu.Lock()
	stop := h.stopOp
	h.stopOp = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// apply creates a K3sCluster from a YAML spec as `kubectl apply` would: unset fields
// are left to the CRD's defaults.
func (h *harness) apply(name, specYAML string) {
	h.t.Helper()
	spec := map[string]any{}
	if err := yaml.Unmarshal([]byte(specYAML), &spec); err != nil {
		h.t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("K3sCluster")
	u.SetNamespace(h.ns)
	u.SetName(name)
	if err := h.c.Create(h.ctx, u); err != nil {
		h.t.Fatalf("creating %s: %v", name, err)
	}
}

func (h *harness) get(name string) *v1alpha1.K3sCluster {
	h.t.Helper()
	c := &v1alpha1.K3sCluster{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, c); err != nil {
		h.t.Fatal(err)
	}
	return c
}

// update applies f to the newest version of the cluster, retrying on conflicts.
func (h *harness) update(name string, f func(*v1alpha1.K3sCluster)) {
	h.t.Helper()
	for i := 0; ; i++ {
		c := h.get(name)
		f(c)
		err := h.c.Update(h.ctx, c)
		if err == nil {
			return
		}
		if i > 20 {
			h.t.Fatal(err)
		}
		time.Sleep(poll)
	}
}

// eventually polls cond until it holds or the deadline passes; describe says what the
// world looked like, for the failure message.
func (h *harness) eventually(timeout time.Duration, what string, cond func() bool, describe func() string) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, describe())
		}
		time.Sleep(poll)
	}
}

func (h *harness) describe(name string) func() string {
	return func() string {
		c := &v1alpha1.K3sCluster{}
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, c); err != nil {
			return err.Error()
		}
		var b strings.Builder
		fmt.Fprintf(&b, "phase=%s frameworkID=%s endpoint=%s\n", c.Status.Phase, c.Status.FrameworkID, c.Status.Endpoint)
		for _, cond := range c.Status.Conditions {
			fmt.Fprintf(&b, "  %s=%s %s: %s\n", cond.Type, cond.Status, cond.Reason, cond.Message)
		}
		for _, t := range c.Status.Tasks {
			fmt.Fprintf(&b, "  task %s %s %s healthy=%v failures=%d\n", t.Name, t.TaskID, t.State, ptr.Deref(t.Healthy, false), t.ConsecutiveFailures)
		}
		fmt.Fprintf(&b, "mesos tasks: %v", h.mesosTasks())
		return b.String()
	}
}

func conditionIs(c *v1alpha1.K3sCluster, typ string, status metav1.ConditionStatus) bool {
	cond := meta.FindStatusCondition(c.Status.Conditions, typ)
	return cond != nil && cond.Status == status
}

func (h *harness) waitCondition(name, typ string, status metav1.ConditionStatus, timeout time.Duration) {
	h.t.Helper()
	h.eventually(timeout, fmt.Sprintf("%s %s=%s", name, typ, status),
		func() bool { return conditionIs(h.get(name), typ, status) }, h.describe(name))
}

// mesosTasks lists the emulator's live tasks per framework as "name=state".
func (h *harness) mesosTasks() map[string][]string {
	out := map[string][]string{}
	for _, f := range h.mesos.State().Frameworks {
		for _, t := range f.Tasks {
			out[f.Name] = append(out[f.Name], t.Name+"="+t.State)
		}
	}
	return out
}

// liveTasks is the emulator's non-terminal tasks of a cluster's framework, by name.
func (h *harness) liveTasks(cluster string) map[string][]mesostest.StateTask {
	out := map[string][]mesostest.StateTask{}
	for _, f := range h.mesos.State().Frameworks {
		if f.Name != "k3s:"+h.ns+"/"+cluster {
			continue
		}
		for _, t := range f.Tasks {
			switch t.State {
			case "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING":
				out[t.Name] = append(out[t.Name], t)
			}
		}
	}
	return out
}

// offerRoundsWithLaunches is how many OFFERS events the bridge answered with launches so
// far (the sample count of its event-to-ACCEPT histogram).
func (h *harness) offerRoundsWithLaunches() uint64 {
	h.t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "mesosk3s_bridge_offer_decision_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
