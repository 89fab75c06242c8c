package soak

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

// TestInvariantChecksCatchBreaks: the checks find what they are for in a hand-made world
// (no API server needed): a duplicate task name, a task, a framework and a volume of a
// deleted cluster, an abandoned framework of a live one, and a Ready cluster whose server
// is not running.
func TestInvariantChecksCatchBreaks(t *testing.T) {
	const liveUID, goneUID = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	s := &soak{t: t, clusters: []*clusterRec{
		{name: "live", uid: liveUID},
		{name: "gone", uid: goneUID, deletedAt: time.Now().Add(-time.Minute), goneAt: time.Now().Add(-time.Minute)},
	}}
	uidLabel := func(uid string) []mesostest.StateLabel {
		return []mesostest.StateLabel{{Key: labelClusterUID, Value: uid}}
	}
	task := func(id, name, state, uid string) mesostest.StateTask {
		return mesostest.StateTask{ID: id, Name: name, State: state, Labels: uidLabel(uid)}
	}
	volumeID := persistencePrefix + goneUID + "-server-0"
	state := mesostest.State{
		Frameworks: []mesostest.StateFramework{
			{ID: "fw-live", Name: "k3s:soak/live", Labels: uidLabel(liveUID), Connected: true, Tasks: []mesostest.StateTask{
				task("agent-0.a", "agent-0", "TASK_RUNNING", liveUID),
				task("agent-0.b", "agent-0", "TASK_STAGING", liveUID),
				task("server-0.a", "server-0", "TASK_FAILED", liveUID),
			}},
			{ID: "fw-old", Name: "k3s:soak/live", Labels: uidLabel(liveUID)},
			{ID: "fw-gone", Name: "k3s:soak/gone", Labels: uidLabel(goneUID),
				UnreachableTasks: []mesostest.StateTask{task("agent-1.x", "agent-1", "TASK_UNREACHABLE", goneUID)}},
		},
		Slaves: []mesostest.StateAgent{{ID: "S0", Hostname: "127.0.0.1", ReservedResourcesFull: map[string][]mesos.Resource{
			"mesosk3s": {{Name: "disk", Scalar: &mesos.Value_Scalar{Value: 1024},
				Disk: &mesos.Resource_DiskInfo{Persistence: &mesos.Resource_DiskInfo_Persistence{ID: volumeID}}}},
		}}},
	}
	live := &v1alpha1.K3sCluster{}
	live.Name, live.Generation = "live", 1
	live.Spec.Servers.Replicas, live.Spec.Agents.Replicas = 1, 1
	live.Status.FrameworkID, live.Status.ObservedGeneration = "fw-live", 1
	live.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue}}
	snap := snapshot{at: time.Now(), clusters: map[string]*v1alpha1.K3sCluster{"live": live}, state: state}

	if d := duplicates(state); len(d) != 1 || d["fw-live/agent-0"].name != "agent-0" {
		t.Errorf("invariant 1: duplicates %v, want agent-0 in fw-live", d)
	}
	found := map[string]bool{}
	for _, v := range s.eventualViolations(snap) {
		found[v.key] = true
	}
	for _, want := range []string{"2 task agent-1.x", "3 framework fw-gone", "3 framework fw-old", "4 S0 mesosk3s disk 1024 volume " + volumeID} {
		if !found[want] {
			t.Errorf("missing violation %q; found %v", want, found)
		}
	}
	if found["3 framework fw-live"] {
		t.Error("the live cluster's own framework counted as orphaned")
	}
	miss := s.readyButMissing(snap)
	if m, ok := miss["live "+v1alpha1.ConditionReady]; !ok || !strings.Contains(strings.Join(m.missing, ";"), "server-0") {
		t.Errorf("invariant 5: %v, want server-0 missing under Ready", miss)
	}
	if ok, why := s.converged(snap); ok {
		t.Error("invariant 6: a broken world converged")
	} else if len(why) < 3 {
		t.Errorf("invariant 6 reasons: %v", why)
	}
}
