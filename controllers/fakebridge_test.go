package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/controllers"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// fakeBridge is the controller's Bridge with a Mesos that does exactly what the test says:
// Observe and Ensure return the tasks the test put there, and every call is recorded. It
// makes a reconcile pass a function call, so the decisions a pass takes are tested in
// milliseconds instead of waiting for an emulator to reach the same state.
type fakeBridge struct {
	mu       sync.Mutex
	tasks    map[string]mesosbridge.ObservedTask
	unplaced map[string]string
	ensured  [][]string                      // names of the desired tasks of each Ensure
	specs    map[string]mesosbridge.TaskSpec // the last Ensure's desired tasks
	killed   []string
}

var _ controllers.Bridge = (*fakeBridge)(nil)

const fakeFrameworkID = "fake-framework-0001"

func newFakeBridge(tasks ...mesosbridge.ObservedTask) *fakeBridge {
	f := &fakeBridge{tasks: map[string]mesosbridge.ObservedTask{}}
	for _, t := range tasks {
		f.tasks[t.Name] = t
	}
	return f
}

func (f *fakeBridge) observed() mesosbridge.Observed {
	tasks := map[string]mesosbridge.ObservedTask{}
	for k, v := range f.tasks {
		tasks[k] = v
	}
	return mesosbridge.Observed{
		Connection:  mesosbridge.Connection{Connected: true, Reason: mesosbridge.ConnSubscribed, Message: "subscribed (fake)"},
		FrameworkID: fakeFrameworkID, Tasks: tasks, Unplaced: f.unplaced,
	}
}

func (f *fakeBridge) Observe(mesosbridge.ClusterKey) (mesosbridge.Observed, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.observed(), true
}

func (f *fakeBridge) Ensure(_ context.Context, cfg mesosbridge.FrameworkConfig, desired []mesosbridge.TaskSpec, _ []mesosbridge.ObservedTask) (mesosbridge.Observed, error) {
	if err := cfg.Validate(); err != nil {
		return mesosbridge.Observed{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	f.specs = map[string]mesosbridge.TaskSpec{}
	for _, t := range desired {
		f.specs[t.Name] = t
		if err := mesosbridge.ValidateTaskSpec(t); err != nil && t.Command != "" {
			return mesosbridge.Observed{}, fmt.Errorf("the controller handed over a task Mesos would refuse: %w", err)
		}
		names = append(names, t.Name)
	}
	f.ensured = append(f.ensured, names)
	return f.observed(), nil
}

func (f *fakeBridge) Kill(_ context.Context, _ mesosbridge.ClusterKey, names ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed = append(f.killed, names...)
	return nil
}

func (f *fakeBridge) Teardown(context.Context, mesosbridge.FrameworkConfig) (bool, error) {
	return true, nil
}

func (f *fakeBridge) Events() <-chan mesosbridge.ClusterKey { return nil }

func (f *fakeBridge) Config(mesosbridge.ClusterKey) (mesosbridge.FrameworkConfig, bool) {
	return mesosbridge.FrameworkConfig{}, false
}

func (f *fakeBridge) lastEnsured() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ensured) == 0 {
		return nil
	}
	return f.ensured[len(f.ensured)-1]
}

func (f *fakeBridge) kills() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.killed)
}

// passes reconciles the named cluster n times with the fake, as the controller would on
// n events, and returns the cluster as stored afterwards.
func passes(t testing.TB, f *fakeBridge, ns, name string, now time.Time, n int) *v1alpha1.K3sCluster {
	t.Helper()
	r := &controllers.K3sClusterReconciler{Client: env.Client, Bridge: f, DefaultMesosMaster: "http://mesos.invalid:5050",
		Probes: controllers.NoHealthChecks{}, Now: func() time.Time { return now }}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
	for i := 0; i < n; i++ {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	c := &v1alpha1.K3sCluster{}
	if err := env.Client.Get(context.Background(), req.NamespacedName, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeCluster creates a namespace and a K3sCluster in it, with the framework ID the fake
// reports already persisted, as after the first passes of a real deploy.
func fakeCluster(t testing.TB, spec string) (ns, name string) {
	t.Helper()
	ns = fmt.Sprintf("fake-%d", nsCounter.Add(1))
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	name = "demo"
	h := &harness{t: t, ctx: ctx, c: env.Client, ns: ns}
	h.apply(name, spec)
	return ns, name
}

// running is a task of the fake in TASK_RUNNING with the given health and spec hash.
func running(name string, healthy bool, hash string) mesosbridge.ObservedTask {
	role, index, _ := mesosbridge.ParseTaskName(name)
	h := healthy
	return mesosbridge.ObservedTask{Name: name, TaskID: name + ".aaaa", Role: role, Index: index, State: mesosbridge.TaskRunning,
		Healthy: &h, SpecHash: hash, AgentID: "agent-1", Hostname: "127.0.0.9",
		Ports: map[string]uint32{"api": 31000, "apiserver": 31001}, StateSince: time.Now().Add(-time.Hour)}
}

func TestFakeScaleDownKillsHighestIndexFirst(t *testing.T) {
	ns, name := fakeCluster(t, "agents: {replicas: 1}")
	f := newFakeBridge(running("server-0", true, ""), running("agent-0", true, ""), running("agent-1", true, ""), running("agent-2", true, ""))
	c := passes(t, f, ns, name, time.Now(), 2)
	if got := f.kills(); len(got) < 2 || !slices.Equal(got[:2], []string{"agent-2", "agent-1"}) {
		t.Fatalf("kills %v, want agent-2 then agent-1", got)
	}
	if c.Status.Agents.Replicas != 3 || !strings.Contains(metaCondition(c, v1alpha1.ConditionAgentsReady).Message, "removing the highest indices") {
		t.Errorf("agents %+v, AgentsReady %+v", c.Status.Agents, metaCondition(c, v1alpha1.ConditionAgentsReady))
	}
}

func TestFakeUnplacedReasonReachesTheCondition(t *testing.T) {
	ns, name := fakeCluster(t, "agents: {replicas: 3}")
	f := newFakeBridge(running("server-0", true, ""), running("agent-0", true, ""))
	f.unplaced = map[string]string{"agent-1": "no fitting offer among 1: constraint hostname:UNIQUE (1)", "agent-2": "no fitting offer among 1: constraint hostname:UNIQUE (1)"}
	c := passes(t, f, ns, name, time.Now(), 2)
	want := "1/3 agents ready; agent-1: no fitting offer among 1: constraint hostname:UNIQUE (1) (and 1 more)"
	if got := metaCondition(c, v1alpha1.ConditionAgentsReady).Message; got != want {
		t.Errorf("AgentsReady message %q, want %q", got, want)
	}
}

func TestFakeFailedAgentWaitsOutItsBackoff(t *testing.T) {
	ns, name := fakeCluster(t, "{agents: {replicas: 2}, remediation: {relaunchBackoff: 1m}}")
	failed := running("agent-1", false, "")
	failed.State, failed.Healthy, failed.Message = mesosbridge.TaskFailed, nil, "Command exited with status 1"
	f := newFakeBridge(running("server-0", true, ""), running("agent-0", true, ""), failed)
	now := time.Now()
	passes(t, f, ns, name, now, 1)
	if !slices.Contains(f.lastEnsured(), "agent-1") {
		t.Errorf("agent-1 not relaunched at once after its first failure: %v", f.lastEnsured())
	}
	// Its relaunch fails too: now it waits out the back-off.
	again := running("agent-1", false, "")
	again.TaskID, again.State, again.Healthy, again.Message = "agent-1.bbbb", mesosbridge.TaskFailed, nil, "Command exited with status 1"
	f.mu.Lock()
	f.tasks["agent-1"] = again
	f.mu.Unlock()
	c := passes(t, f, ns, name, now, 2)
	if slices.Contains(f.lastEnsured(), "agent-1") {
		t.Errorf("agent-1 handed to the bridge during its back-off: %v", f.lastEnsured())
	}
	var st v1alpha1.TaskStatus
	for _, ts := range c.Status.Tasks {
		if ts.Name == "agent-1" {
			st = ts
		}
	}
	if st.ConsecutiveFailures != 2 || st.LastFailureTime == nil {
		t.Errorf("agent-1 status %+v", st)
	}
	// Once the back-off is over the task is desired again.
	passes(t, f, ns, name, now.Add(2*time.Minute), 1)
	if !slices.Contains(f.lastEnsured(), "agent-1") {
		t.Errorf("agent-1 not relaunched after its back-off: %v", f.lastEnsured())
	}
}

func TestFakeRolloutReplacesOneServerAtATime(t *testing.T) {
	ns, name := fakeCluster(t, "{datastore: {type: EmbeddedEtcd}, servers: {replicas: 3}, agents: {replicas: 0}}")
	f := newFakeBridge(running("server-0", true, "old"), running("server-1", true, "old"), running("server-2", true, "old"))
	passes(t, f, ns, name, time.Now(), 2)
	if got := f.kills(); len(got) == 0 || got[0] != "server-2" || slices.Contains(got, "server-1") {
		t.Fatalf("kills %v, want server-2 alone", got)
	}
}

// A server whose agent an operator marked gone is launched elsewhere (no pin to the gone
// agent) while the other servers hold the data; server-0, should its data be the one
// lost, rejoins through another server rather than starting a second etcd cluster.
func TestFakeGoneServerIsReplacedElsewhere(t *testing.T) {
	ns, name := fakeCluster(t, "{datastore: {type: EmbeddedEtcd}, servers: {replicas: 3}, agents: {replicas: 0}}")
	gone := running("server-0", false, "")
	gone.State, gone.Healthy, gone.AgentID, gone.Message = mesosbridge.TaskGoneByOp, nil, "agent-gone", "Agent has been marked gone"
	s1, s2 := running("server-1", true, ""), running("server-2", true, "")
	s1.Hostname, s2.Hostname = "10.0.0.2", "10.0.0.3"
	f := newFakeBridge(gone, s1, s2)
	c := passes(t, f, ns, name, time.Now(), 2)
	spec, ok := f.specs["server-0"]
	if !ok {
		t.Fatalf("server-0 not handed to the bridge: %v", f.lastEnsured())
	}
	if spec.Volume == nil || spec.Volume.AgentID != "" {
		t.Errorf("server-0 still pinned to its gone agent: %+v", spec.Volume)
	}
	if got := spec.BootstrapEnv[k3s.RejoinEnv]; got != "https://10.0.0.2:31000" {
		t.Errorf("server-0 rejoins through %q, want server-1", got)
	}
	if st := metaCondition(c, v1alpha1.ConditionStalled); st.Status != metav1.ConditionFalse {
		t.Errorf("Stalled %+v while two servers keep the data", st)
	}
}

// Every server's agent gone: the data is gone too. Nothing is launched, the cluster is
// Stalled with DataLost saying what a person can do, until the loss is accepted.
func TestFakeAllServersGoneIsDataLoss(t *testing.T) {
	ns, name := fakeCluster(t, "agents: {replicas: 0}")
	gone := running("server-0", false, "")
	gone.State, gone.Healthy, gone.Message = mesosbridge.TaskGoneByOp, nil, "Agent has been marked gone"
	f := newFakeBridge(gone)
	c := passes(t, f, ns, name, time.Now(), 2)
	if _, launched := f.specs["server-0"]; launched {
		t.Fatal("an empty server-0 was launched over the lost data")
	}
	st := metaCondition(c, v1alpha1.ConditionStalled)
	if st.Status != metav1.ConditionTrue || st.Reason != v1alpha1.ReasonDataLost ||
		!strings.Contains(st.Message, "the cluster's data is lost") || !strings.Contains(st.Message, v1alpha1.AcceptDataLossAnnotation) {
		t.Fatalf("Stalled %+v", st)
	}
	if ready := metaCondition(c, v1alpha1.ConditionReady); ready.Status == metav1.ConditionTrue {
		t.Fatalf("Ready %+v with the data lost", ready)
	}
	c.Annotations = map[string]string{v1alpha1.AcceptDataLossAnnotation: "true"}
	if err := env.Client.Update(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	passes(t, f, ns, name, time.Now(), 1)
	if spec, launched := f.specs["server-0"]; !launched || spec.Volume == nil || spec.Volume.AgentID != "" {
		t.Fatalf("after accepting the loss server-0 is not launched afresh: %+v", spec)
	}
}

func TestFakeLostAgentIsReplaced(t *testing.T) {
	ns, name := fakeCluster(t, "{agents: {replicas: 1}, remediation: {relaunchBackoff: 5s}}")
	lost := running("agent-0", true, "")
	lost.State, lost.StateSince = mesosbridge.TaskUnreachable, time.Now().Add(-time.Minute)
	f := newFakeBridge(running("server-0", true, ""), lost)
	passes(t, f, ns, name, time.Now(), 1)
	if got := f.kills(); !slices.Equal(got, []string{"agent-0"}) {
		t.Fatalf("kills %v, want the unreachable agent-0", got)
	}
}

func TestFakeDeletedCASecretStallsAndTouchesNothing(t *testing.T) {
	ns, name := fakeCluster(t, "agents: {replicas: 1}")
	f := newFakeBridge(running("server-0", true, ""), running("agent-0", true, ""))
	c := passes(t, f, ns, name, time.Now(), 2)
	if c.Status.FrameworkID != fakeFrameworkID {
		t.Fatalf("framework ID not persisted: %q", c.Status.FrameworkID)
	}
	ctx := context.Background()
	ca := &corev1.Secret{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-ca"}, ca); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, ca); err != nil {
		t.Fatal(err)
	}
	ensures := len(f.ensured)
	c = passes(t, f, ns, name, time.Now(), 2)
	st := metaCondition(c, v1alpha1.ConditionStalled)
	if st == nil || st.Status != metav1.ConditionTrue || st.Reason != v1alpha1.ReasonSecretLost ||
		!strings.Contains(st.Message, name+"-ca") || !strings.Contains(st.Message, "Restore the Secret from a backup") {
		t.Fatalf("Stalled = %+v", st)
	}
	if len(f.ensured) != ensures || len(f.kills()) != 0 {
		t.Errorf("the bridge was asked to act: %d more Ensures, kills %v", len(f.ensured)-ensures, f.kills())
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-ca"}, &corev1.Secret{}); err == nil {
		t.Error("a new CA Secret was generated for a running cluster")
	}
	if mc := metaCondition(c, v1alpha1.ConditionMesosConnected); mc.Status != metav1.ConditionTrue {
		t.Errorf("MesosConnected while stalled: %+v", mc)
	}
}
