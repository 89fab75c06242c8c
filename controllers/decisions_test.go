package controllers

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// Table tests for the decisions a reconcile pass makes from what it observes; the
// scenario tests show the same against the emulator, these show every branch in
// milliseconds.

var (
	healthy   = boolPtr(true)
	unhealthy = boolPtr(false)
)

func boolPtr(b bool) *bool { return &b }

// obsTask is an observed task of the given role and index, with a spec hash.
func obsTask(role mesosbridge.TaskRole, i int, state mesosbridge.TaskState, h *bool, hash string) mesosbridge.ObservedTask {
	name := taskName(role, i)
	return mesosbridge.ObservedTask{Name: name, TaskID: name + ".1", Role: role, Index: i, State: state, Healthy: h, SpecHash: hash}
}

func observedMap(ts ...mesosbridge.ObservedTask) map[string]mesosbridge.ObservedTask {
	m := map[string]mesosbridge.ObservedTask{}
	for _, t := range ts {
		m[t.Name] = t
	}
	return m
}

// specs are desired tasks with the given hash: servers then agents.
func specs(servers, agents int, hash string) []mesosbridge.TaskSpec {
	var out []mesosbridge.TaskSpec
	for i := 0; i < servers; i++ {
		out = append(out, mesosbridge.TaskSpec{Name: taskName(roleServer, i), Role: roleServer, Index: i, SpecHash: hash})
	}
	for i := 0; i < agents; i++ {
		out = append(out, mesosbridge.TaskSpec{Name: taskName(roleAgent, i), Role: roleAgent, Index: i, SpecHash: hash})
	}
	return out
}

func TestScaleDownVictims(t *testing.T) {
	run := mesosbridge.TaskRunning
	cases := []struct {
		name     string
		desired  []mesosbridge.TaskSpec
		observed map[string]mesosbridge.ObservedTask
		want     []string
	}{
		{"nothing to remove", specs(1, 2, "h"), observedMap(obsTask(roleServer, 0, run, healthy, "h"), obsTask(roleAgent, 0, run, nil, "h"), obsTask(roleAgent, 1, run, nil, "h")), []string{}},
		{"highest index first", specs(1, 1, "h"), observedMap(
			obsTask(roleAgent, 0, run, nil, "h"), obsTask(roleAgent, 1, run, nil, "h"), obsTask(roleAgent, 2, run, nil, "h")),
			[]string{"agent-2", "agent-1"}},
		{"a broken one before a serving one", specs(1, 1, "h"), observedMap(
			obsTask(roleAgent, 1, run, nil, "h"), obsTask(roleAgent, 2, mesosbridge.TaskStarting, nil, "h")),
			[]string{"agent-2", "agent-1"}},
		{"a not-ready low index before a ready high one", specs(1, 0, "h"), observedMap(
			obsTask(roleAgent, 0, mesosbridge.TaskStaging, nil, "h"), obsTask(roleAgent, 5, run, nil, "h")),
			[]string{"agent-0", "agent-5"}},
		{"agents before servers", specs(1, 0, "h"), observedMap(
			obsTask(roleServer, 2, run, healthy, "h"), obsTask(roleAgent, 0, run, nil, "h")),
			[]string{"agent-0", "server-2"}},
		{"killing and dead tasks are not killed again", specs(1, 0, "h"), observedMap(
			obsTask(roleAgent, 0, mesosbridge.TaskKilling, nil, "h"), obsTask(roleAgent, 1, mesosbridge.TaskFailed, nil, "h")),
			[]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := scaleDownKills(tc.desired, tc.observed); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRolloutKills(t *testing.T) {
	run := mesosbridge.TaskRunning
	one, half := intstr.FromInt32(1), intstr.FromString("50%")
	two := intstr.FromInt32(2)
	cases := []struct {
		name           string
		desired        []mesosbridge.TaskSpec
		observed       map[string]mesosbridge.ObservedTask
		maxUnavailable *intstr.IntOrString
		want           []string
	}{
		{"everything current", specs(1, 1, "new"), observedMap(obsTask(roleServer, 0, run, healthy, "new"), obsTask(roleAgent, 0, run, nil, "new")), &one, nil},
		{"one server at a time, highest index first", specs(3, 0, "new"), observedMap(
			obsTask(roleServer, 0, run, healthy, "old"), obsTask(roleServer, 1, run, healthy, "old"), obsTask(roleServer, 2, run, healthy, "old")),
			&one, []string{"server-2"}},
		{"no server while one is not ready", specs(3, 0, "new"), observedMap(
			obsTask(roleServer, 0, run, healthy, "old"), obsTask(roleServer, 1, run, healthy, "old"), obsTask(roleServer, 2, run, unhealthy, "new")),
			&one, nil},
		{"agents within maxUnavailable", specs(0, 4, "new"), observedMap(
			obsTask(roleAgent, 0, run, nil, "old"), obsTask(roleAgent, 1, run, nil, "old"), obsTask(roleAgent, 2, run, nil, "old"), obsTask(roleAgent, 3, run, nil, "old")),
			&two, []string{"agent-3", "agent-2"}},
		{"agents already down count against the budget", specs(0, 4, "new"), observedMap(
			obsTask(roleAgent, 0, run, nil, "old"), obsTask(roleAgent, 1, run, nil, "old"), obsTask(roleAgent, 2, run, nil, "old"), obsTask(roleAgent, 3, mesosbridge.TaskStaging, nil, "new")),
			&two, []string{"agent-2"}},
		{"a percentage rounds down but never to zero", specs(0, 3, "new"), observedMap(
			obsTask(roleAgent, 0, run, nil, "old"), obsTask(roleAgent, 1, run, nil, "old"), obsTask(roleAgent, 2, run, nil, "old")),
			&half, []string{"agent-2"}},
		{"unset means one", specs(0, 2, "new"), observedMap(obsTask(roleAgent, 0, run, nil, "old"), obsTask(roleAgent, 1, run, nil, "old")), nil, []string{"agent-1"}},
		{"an unknown hash (adopted, never recorded) is not rolled", specs(0, 1, "new"), observedMap(obsTask(roleAgent, 0, run, nil, "")), &one, nil},
		{"a task being killed is not killed again", specs(0, 1, "new"), observedMap(obsTask(roleAgent, 0, mesosbridge.TaskKilling, nil, "old")), &one, nil},
		{"agents wait until every server is updated", specs(1, 1, "new"), observedMap(obsTask(roleServer, 0, run, healthy, "old"), obsTask(roleAgent, 0, run, nil, "old")), &one, []string{"server-0"}},
		{"agents wait until the updated servers serve", specs(1, 1, "new"), observedMap(obsTask(roleServer, 0, run, unhealthy, "new"), obsTask(roleAgent, 0, run, nil, "old")), &one, nil},
		{"agents once the servers are updated and serve", specs(1, 1, "new"), observedMap(obsTask(roleServer, 0, run, healthy, "new"), obsTask(roleAgent, 0, run, nil, "old")), &one, []string{"agent-0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := planRollout(tc.desired, tc.observed, tc.maxUnavailable, mesosOnly)
			if !slices.Equal(got.kills, tc.want) {
				t.Errorf("got %v, want %v", got.kills, tc.want)
			}
		})
	}
}

// With embedded etcd, the next server goes only while etcd lists a member per server and
// every member is healthy; the step says what it waits for.
func TestRolloutWaitsForEtcd(t *testing.T) {
	run := mesosbridge.TaskRunning
	observed := observedMap(obsTask(roleServer, 0, run, healthy, "old"), obsTask(roleServer, 1, run, healthy, "new"), obsTask(roleServer, 2, run, healthy, "new"))
	serving := func(etcdHealthy bool) map[string]serverHealth {
		out := map[string]serverHealth{}
		for name, o := range observed {
			out[name] = serverHealth{taskID: o.TaskID, reachable: true, apiReady: true, k3sReady: true, etcdChecked: true, etcdHealthy: etcdHealthy || name != "server-1", etcdMessage: "etcd /health answered 503"}
		}
		return out
	}
	cases := []struct {
		name     string
		probe    probeResult
		want     []string
		wantStep string
	}{
		{"a member missing", probeResult{servers: serving(true), etcd: &etcdHealth{members: []string{"a", "b"}}}, nil, "waiting for etcd: 2 members [a b], want 3"},
		{"a member unhealthy", probeResult{servers: serving(false), etcd: &etcdHealth{members: []string{"a", "b", "c"}}}, nil, "waiting for server-1 to serve"},
		{"members unknown", probeResult{servers: serving(true), etcd: &etcdHealth{problem: "no etcd member answered"}}, nil, "waiting for etcd: no etcd member answered"},
		{"all there and healthy", probeResult{servers: serving(true), etcd: &etcdHealth{members: []string{"a", "b", "c"}}}, []string{"server-0"}, "2 of 3 servers updated; replacing server-0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probe := tc.probe
			got := planRollout(specs(3, 0, "new"), observed, nil, readiness{probe: &probe})
			if !slices.Equal(got.kills, tc.want) || !strings.Contains(got.step, tc.wantStep) {
				t.Errorf("kills %v step %q; want %v, %q", got.kills, got.step, tc.want, tc.wantStep)
			}
		})
	}
}

func TestVersionSkew(t *testing.T) {
	for _, tc := range []struct {
		from, to, want string
	}{
		{"", "v1.25.4+k3s1", ""},
		{"v1.25.2+k3s1", "v1.25.4+k3s1", ""},
		{"v1.25.4+k3s1", "v1.25.2+k3s1", ""},
		{"v1.25.4+k3s1", "v1.25.4+k3s2", ""},
		{"v1.25.4+k3s1", "v1.26.0+k3s1", ""},
		{"v1.25.4+k3s1", "v1.27.1+k3s1", "skips Kubernetes minor versions"},
		{"v1.26.1+k3s1", "v1.25.4+k3s1", "downgrade Kubernetes 1.26 to 1.25"},
		{"v1.25.4+k3s1", "v2.25.4+k3s1", "major"},
	} {
		if got := versionSkew(tc.from, tc.to); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("versionSkew(%s, %s) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestUnreachableReplacements(t *testing.T) {
	now := time.Now()
	lost := func(role mesosbridge.TaskRole, i int, since time.Duration) mesosbridge.ObservedTask {
		o := obsTask(role, i, mesosbridge.TaskUnreachable, nil, "h")
		o.StateSince = now.Add(-since)
		return o
	}
	desired := specs(1, 3, "h")
	desired[0].Volume = &mesosbridge.VolumeRequest{SizeMiB: 1, ContainerPath: "d"}
	names, wait := unreachableReplacements(desired, observedMap(
		lost(roleServer, 0, time.Hour),     // has a volume: waits for its agent
		lost(roleAgent, 0, 11*time.Second), // past the grace: replaced
		lost(roleAgent, 1, 4*time.Second),  // 6 s to go
		obsTask(roleAgent, 2, mesosbridge.TaskRunning, nil, "h"),
	), 10*time.Second, now)
	if !slices.Equal(names, []string{"agent-0"}) || wait != 6*time.Second {
		t.Errorf("replace %v, next in %s", names, wait)
	}
}

func TestTrackTasksCountsEachFailureOnce(t *testing.T) {
	rem := remediation{backoff: 10 * time.Second, maxBackoff: time.Minute, threshold: 3}
	desired := map[string]mesosbridge.TaskSpec{"agent-0": {Name: "agent-0", Role: roleAgent, SpecHash: "h"}}
	t0 := time.Now()
	failed := obsTask(roleAgent, 0, mesosbridge.TaskFailed, nil, "h")
	failed.Message = "Command exited with status 1"

	// First pass: the failure is counted, an event is due, and a first failure is
	// relaunched at once.
	tr := trackTasks(nil, observedMap(failed), desired, "v1", rem, t0)
	if len(tr.newFailures) != 1 || tr.tasks[0].ConsecutiveFailures != 1 || !slices.Equal(tr.failed, []string{"agent-0"}) {
		t.Fatalf("first pass: %+v", tr)
	}
	if until, waits := tr.backoffUntil["agent-0"]; waits {
		t.Errorf("a first failure waits until %s", until)
	}
	// The same failed task seen again is not a second failure.
	again := trackTasks(tr.tasks, observedMap(failed), desired, "v1", rem, t0.Add(time.Second))
	if len(again.newFailures) != 0 || again.tasks[0].ConsecutiveFailures != 1 {
		t.Fatalf("counted twice: %+v", again.tasks[0])
	}
	// Relaunched, failed again: two in a row, the back-off starts, restarts counts it.
	second := failed
	second.TaskID = "agent-0.2"
	tr2 := trackTasks(again.tasks, observedMap(second), desired, "v1", rem, t0.Add(20*time.Second))
	if tr2.tasks[0].ConsecutiveFailures != 2 || tr2.tasks[0].Restarts != 1 {
		t.Fatalf("second failure: %+v", tr2.tasks[0])
	}
	if until := tr2.backoffUntil["agent-0"]; !until.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("back-off until %s, want +30s (the 10 s back-off after the second failure)", until.Sub(t0))
	}
	if d := rem.delay(3); d != 20*time.Second {
		t.Errorf("after a third failure %s, want 20s (doubled)", d)
	}
	// Third failure: at the threshold the cluster is stalled.
	third := failed
	third.TaskID = "agent-0.3"
	tr3 := trackTasks(tr2.tasks, observedMap(third), desired, "v1", rem, t0.Add(60*time.Second))
	if tr3.stalled == "" {
		t.Errorf("three failures in a row must stall: %+v", tr3.tasks[0])
	}
	// Serving for stableAfter resets the count, and the task records the version it runs.
	serving := obsTask(roleAgent, 0, mesosbridge.TaskRunning, nil, "h")
	serving.TaskID, serving.StateSince = "agent-0.4", t0.Add(61*time.Second)
	tr4 := trackTasks(tr3.tasks, observedMap(serving), desired, "v1", rem, t0.Add(61*time.Second+stableAfter))
	if tr4.tasks[0].ConsecutiveFailures != 0 || tr4.stalled != "" || tr4.tasks[0].Version != "v1" {
		t.Errorf("served long enough: %+v", tr4.tasks[0])
	}
}

// A failure streak belongs to a spec: when the spec changes (a version set back, a fixed
// binaryURL), the failed task is relaunched at once and the cluster is no longer stalled.
func TestTrackTasksForgetsTheFailuresOfAnotherSpec(t *testing.T) {
	rem := remediation{backoff: 10 * time.Second, maxBackoff: time.Minute, threshold: 3}
	now := time.Now()
	prev := []v1alpha1.TaskStatus{{Name: "server-0", TaskID: "server-0.5", Role: "server", State: "TASK_FAILED", SpecHash: "bad",
		ConsecutiveFailures: 5, LastFailureTime: &metav1.Time{Time: now}}}
	failed := obsTask(roleServer, 0, mesosbridge.TaskFailed, nil, "bad")
	failed.TaskID = "server-0.5"
	still := trackTasks(prev, observedMap(failed), map[string]mesosbridge.TaskSpec{"server-0": {Name: "server-0", Role: roleServer, SpecHash: "bad"}}, "v2", rem, now)
	if still.stalled == "" || still.backoffUntil["server-0"].IsZero() {
		t.Fatalf("same spec: want stalled and backing off: %+v", still)
	}
	fixed := trackTasks(prev, observedMap(failed), map[string]mesosbridge.TaskSpec{"server-0": {Name: "server-0", Role: roleServer, SpecHash: "good"}}, "v1", rem, now)
	if fixed.stalled != "" || !fixed.backoffUntil["server-0"].IsZero() || fixed.tasks[0].ConsecutiveFailures != 0 {
		t.Errorf("another spec: want no stall, no back-off, no count: stalled %q, back-off %v, %+v", fixed.stalled, fixed.backoffUntil, fixed.tasks[0])
	}
}

func TestTrackTasksIgnoresWhatTheOperatorEnded(t *testing.T) {
	rem := remediationOf(v1alpha1.RemediationSpec{})
	now := time.Now()
	// Scaled away: not desired any more, killed, gone from status.
	killed := obsTask(roleAgent, 3, mesosbridge.TaskKilled, nil, "h")
	tr := trackTasks([]v1alpha1.TaskStatus{{Name: "agent-3", TaskID: "agent-3.1", Role: "agent", State: "TASK_RUNNING"}},
		observedMap(killed), map[string]mesosbridge.TaskSpec{}, "v1", rem, now)
	if len(tr.tasks) != 0 || len(tr.newFailures) != 0 {
		t.Errorf("a scaled-away task is forgotten, not failed: %+v", tr)
	}
	// Replaced by the rollout: killed with the old hash while the new one is desired.
	old := obsTask(roleAgent, 0, mesosbridge.TaskKilled, nil, "old")
	tr = trackTasks([]v1alpha1.TaskStatus{{Name: "agent-0", TaskID: "agent-0.1", Role: "agent", State: "TASK_RUNNING", SpecHash: "old"}},
		observedMap(old), map[string]mesosbridge.TaskSpec{"agent-0": {Name: "agent-0", SpecHash: "new"}}, "v1", rem, now)
	if len(tr.newFailures) != 0 || tr.tasks[0].ConsecutiveFailures != 0 {
		t.Errorf("a rolled task is not a failure: %+v", tr.tasks)
	}
}

// "Ready" means working: a server whose API or K3s runtime core does not answer, or an
// agent whose Node is not Ready, does not serve, however healthy Mesos sees it. Where the
// operator's checks reach nothing, Mesos' view is all there is.
func TestReadinessNeedsWhatTheChecksSee(t *testing.T) {
	run := mesosbridge.TaskRunning
	server := obsTask(roleServer, 0, run, healthy, "h")
	agent := obsTask(roleAgent, 0, run, nil, "h")
	node := func(task string) string { return "demo-" + task }
	cases := []struct {
		name          string
		probe         *probeResult
		server, agent bool
	}{
		{"no checks yet", nil, true, true},
		{"nothing answers", &probeResult{servers: map[string]serverHealth{"server-0": {taskID: server.TaskID}}, nodesErr: "no server's API answers"}, true, true},
		{"runtime core not ready, no Node", &probeResult{
			servers: map[string]serverHealth{"server-0": {taskID: server.TaskID, reachable: true, apiReady: true, message: "runtime core not ready"}},
			nodes:   map[string]nodeHealth{}}, false, false},
		{"everything works", &probeResult{
			servers: map[string]serverHealth{"server-0": {taskID: server.TaskID, reachable: true, apiReady: true, k3sReady: true}},
			nodes:   map[string]nodeHealth{"demo-agent-0": {ready: true}}}, true, true},
		{"Node not Ready", &probeResult{
			servers: map[string]serverHealth{"server-0": {taskID: server.TaskID, reachable: true, apiReady: true, k3sReady: true}},
			nodes:   map[string]nodeHealth{"demo-agent-0": {message: "container runtime network not ready"}}}, true, false},
		{"a result for an earlier task of the name", &probeResult{
			servers: map[string]serverHealth{"server-0": {taskID: "server-0.old", reachable: true}}}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := readiness{probe: tc.probe, nodeName: node}
			if got := r.serves(server); got != tc.server {
				t.Errorf("server serves = %v, want %v (%s)", got, tc.server, r.why(server))
			}
			if got := r.serves(agent); got != tc.agent {
				t.Errorf("agent serves = %v, want %v (%s)", got, tc.agent, r.why(agent))
			}
		})
	}
	r := readiness{probe: &probeResult{nodes: map[string]nodeHealth{}}, nodeName: node}
	if why := r.why(agent); why != "its Node demo-agent-0 has not registered" {
		t.Errorf("why = %q", why)
	}
	stopped := obsTask(roleAgent, 0, mesosbridge.TaskStaging, nil, "h")
	if r.serves(stopped) || r.why(stopped) != "" {
		t.Errorf("a task Mesos does not see running never serves, and needs no explaining")
	}
}

// K3s names an etcd member <node name>-<8 hex>: each server task finds its member, and no
// task of another cluster whose name merely starts alike does.
func TestEtcdMembersOfTasks(t *testing.T) {
	servers := map[string]serverAddress{"server-0": {}, "server-1": {}, "server-10": {}}
	got := membersOfTasks("demo", []etcdMember{
		{ID: "11", Name: "demo-server-0-1a2b3c4d"}, {ID: "12", Name: "demo-server-1-5e6f7a8b"},
		{ID: "13", Name: "demo-server-10-9c0d1e2f"}, {ID: "14", Name: "demo2-server-0-aaaaaaaa"},
	}, servers)
	want := map[string]string{"server-0": "11", "server-1": "12", "server-10": "13"}
	if !maps.Equal(got, want) {
		t.Errorf("members of tasks %v, want %v", got, want)
	}
}

// A server scale-down with embedded etcd goes one server at a time, only while every
// member is healthy and the quorum survives the step.
func TestEtcdScaleDownStep(t *testing.T) {
	run := mesosbridge.TaskRunning
	observed := observedMap(obsTask(roleServer, 0, run, healthy, "h"), obsTask(roleServer, 1, run, healthy, "h"), obsTask(roleServer, 2, run, healthy, "h"))
	members := map[string]string{"server-0": "10", "server-1": "11", "server-2": "12"}
	servers := func(unhealthy ...string) map[string]serverHealth {
		out := map[string]serverHealth{}
		for name := range observed {
			out[name] = serverHealth{etcdChecked: true, etcdHealthy: !slices.Contains(unhealthy, name)}
		}
		return out
	}
	names := []string{"demo-server-0-a", "demo-server-1-b", "demo-server-2-c"}
	killing := maps.Clone(observed)
	s1 := killing["server-1"]
	s1.State = mesosbridge.TaskKilling
	killing["server-1"] = s1
	cases := []struct {
		name     string
		known    map[string]mesosbridge.ObservedTask
		probe    *probeResult
		want     string
		wantWait string
	}{
		{"no view of etcd: Mesos alone", observed, nil, "server-2", ""},
		{"all healthy", observed, &probeResult{servers: servers(), etcd: &etcdHealth{members: names, memberOf: members}}, "server-2", ""},
		{"another server still stopping", killing, &probeResult{servers: servers(), etcd: &etcdHealth{members: names, memberOf: members}}, "", "waiting for server-1 to stop"},
		{"a member unhealthy", observed, &probeResult{servers: servers("server-0"), etcd: &etcdHealth{members: names, memberOf: members}}, "", "every etcd member to be healthy (2 of 3"},
		{"membership unknown", observed, &probeResult{servers: servers(), etcd: &etcdHealth{problem: "no etcd member answered"}}, "", "etcd membership is unknown (no etcd member answered)"},
		{"the last member", observedMap(obsTask(roleServer, 0, run, healthy, "h")), &probeResult{servers: servers(), etcd: &etcdHealth{members: names[:1], memberOf: map[string]string{"server-0": "10"}}}, "", "without a quorum"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			victim := "server-2"
			if tc.name == "the last member" {
				victim = "server-0"
			}
			got, wait := etcdScaleDownStep(victim, tc.known, readiness{probe: tc.probe})
			if got != tc.want || !strings.Contains(wait, tc.wantWait) {
				t.Errorf("got %q, %q; want %q, %q", got, wait, tc.want, tc.wantWait)
			}
		})
	}
}
