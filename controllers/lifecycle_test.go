package controllers_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// TestOperatorRestartMidDeploy: the operator stops after server-0 is launched and before
// the agents; a new operator process re-subscribes with the same framework ID, adopts
// server-0 without a duplicate, and completes the deploy.
func TestOperatorRestartMidDeploy(t *testing.T) {
	h := newHarness(t, 4)
	h.apply("restart", `{agents: {replicas: 3}}`)
	h.eventually(waitDeploy, "server-0 launched and recorded", func() bool {
		return len(h.liveTasks("restart")["server-0"]) == 1 && h.taskStatus("restart", "server-0").Ports["api"] != 0
	}, h.describe("restart"))
	frameworkID := h.get("restart").Status.FrameworkID
	h.stopOperator()
	serverID := h.liveTasks("restart")["server-0"][0].ID

	// While no operator runs, Mesos keeps the task (failover timeout).
	time.Sleep(300 * time.Millisecond)
	if live := h.liveTasks("restart"); len(live["server-0"]) != 1 {
		t.Fatalf("server-0 did not survive the operator's absence: %v", h.mesosTasks())
	}

	if c := h.get("restart"); c.Status.Agents.Replicas != 0 {
		t.Fatalf("not mid-deploy: %d agents already", c.Status.Agents.Replicas)
	}
	h.startOperator()
	h.waitCondition("restart", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	h.waitCondition("restart", v1alpha1.ConditionReady, metav1.ConditionTrue, waitDeploy)
	c := h.get("restart")
	if c.Status.FrameworkID != frameworkID {
		t.Fatalf("framework ID changed across the restart: %s → %s", frameworkID, c.Status.FrameworkID)
	}
	live := h.liveTasks("restart")
	if len(live) != 4 {
		t.Fatalf("want server-0 and three agents, got %v", h.mesosTasks())
	}
	for name, ts := range live {
		if len(ts) != 1 {
			t.Fatalf("duplicate %s: %v", name, h.mesosTasks())
		}
	}
	if live["server-0"][0].ID != serverID {
		t.Fatalf("server-0 was relaunched (%s → %s) instead of adopted", serverID, live["server-0"][0].ID)
	}
	frameworks := 0
	for _, f := range h.mesos.State().Frameworks {
		if f.Name == "k3s:"+h.ns+"/restart" {
			frameworks++
		}
	}
	if frameworks != 1 {
		t.Fatalf("%d frameworks registered for one cluster", frameworks)
	}
}

// TestPauseStopsMesosActions: while paused, a scale-up launches nothing on Mesos; after
// the pause the new agents come.
func TestPauseStopsMesosActions(t *testing.T) {
	h := newHarness(t, 4)
	h.apply("paused", `{}`)
	h.waitCondition("paused", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)

	h.update("paused", func(c *v1alpha1.K3sCluster) { c.Spec.Paused = true })
	h.waitCondition("paused", v1alpha1.ConditionPaused, metav1.ConditionTrue, 10*time.Second)
	h.update("paused", func(c *v1alpha1.K3sCluster) { c.Spec.Agents.Replicas = 3 })
	time.Sleep(time.Second) // many allocation intervals: nothing may launch
	if live := h.liveTasks("paused"); len(live) != 2 {
		t.Fatalf("tasks launched while paused: %v", h.mesosTasks())
	}
	if c := h.get("paused"); c.Status.ObservedGeneration == c.Generation {
		t.Fatal("observedGeneration moved while paused")
	}

	// The Cluster API annotation pauses too: lifting spec.paused alone is not enough.
	h.update("paused", func(c *v1alpha1.K3sCluster) {
		c.Spec.Paused = false
		c.Annotations = map[string]string{v1alpha1.PausedAnnotation: "true"}
	})
	time.Sleep(500 * time.Millisecond)
	if live := h.liveTasks("paused"); len(live) != 2 {
		t.Fatalf("tasks launched while paused by annotation: %v", h.mesosTasks())
	}

	h.update("paused", func(c *v1alpha1.K3sCluster) { c.Annotations = nil })
	h.waitCondition("paused", v1alpha1.ConditionPaused, metav1.ConditionFalse, 10*time.Second)
	h.eventually(waitDeploy, "three agents after the pause", func() bool {
		c := h.get("paused")
		return c.Status.Agents.ReadyReplicas == 3 && c.Status.ObservedGeneration == c.Generation
	}, h.describe("paused"))
}

// TestDeleteLeavesNothing: deleting a cluster kills its tasks, tears the framework down
// and removes its Secrets; the emulator's /state keeps nothing of it.
func TestDeleteLeavesNothing(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("gone", `{agents: {replicas: 2}}`)
	h.waitCondition("gone", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	frameworkID := h.get("gone").Status.FrameworkID

	if err := h.c.Delete(h.ctx, h.get("gone")); err != nil {
		t.Fatal(err)
	}
	h.eventually(waitDeploy, "the cluster object gone", func() bool {
		err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "gone"}, &v1alpha1.K3sCluster{})
		return apierrors.IsNotFound(err)
	}, h.describe("gone"))
	for _, f := range h.mesos.State().Frameworks {
		if f.ID == frameworkID {
			t.Fatalf("framework %s still registered with %d tasks", f.ID, len(f.Tasks))
		}
	}
	// The server's persistent volume and its disk reservation were released too.
	for _, a := range h.mesos.State().Slaves {
		if r := a.ReservedResourcesFull["mesosk3s"]; len(r) != 0 {
			t.Fatalf("agent %s keeps the cluster's reservations: %+v", a.Hostname, r)
		}
	}
	for _, name := range []string{"gone-kubeconfig", "gone-ca", "gone-token"} {
		err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("secret %s left behind: %v", name, err)
		}
	}
}

// TestDeleteWhileMesosIsDown: with the master unreachable the delete waits and says why;
// the force-delete annotation lets a person give up on Mesos.
func TestDeleteWhileMesosIsDown(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("stuck", `{agents: {replicas: 1}}`)
	h.waitCondition("stuck", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)

	frameworkID := h.get("stuck").Status.FrameworkID
	h.mesos.SetUnavailable(true)
	h.mesos.DropStream(frameworkID)
	if err := h.c.Delete(h.ctx, h.get("stuck")); err != nil {
		t.Fatal(err)
	}
	h.eventually(20*time.Second, "MesosConnected=False explaining the stuck delete", func() bool {
		cond := metaCondition(h.get("stuck"), v1alpha1.ConditionMesosConnected)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == v1alpha1.ReasonMesosUnreachable &&
			containsAll(cond.Message, v1alpha1.ForceDeleteAnnotation)
	}, h.describe("stuck"))
	if c := h.get("stuck"); c.Status.Phase != v1alpha1.PhaseDeleting {
		t.Fatalf("phase %s, want Deleting", c.Status.Phase)
	}

	h.update("stuck", func(c *v1alpha1.K3sCluster) {
		c.Annotations = map[string]string{v1alpha1.ForceDeleteAnnotation: "true"}
	})
	h.eventually(waitDeploy, "the force-deleted cluster gone", func() bool {
		err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "stuck"}, &v1alpha1.K3sCluster{})
		return apierrors.IsNotFound(err)
	}, h.describe("stuck"))

	// Nobody is behind the framework any more: when the master is back, the bridge
	// finishes the teardown instead of leaving a framework with tasks and no cluster.
	h.mesos.SetUnavailable(false)
	h.eventually(waitDeploy, "the force-deleted cluster's framework torn down once Mesos is back", func() bool {
		_, registered := h.frameworkState(frameworkID)
		return !registered
	}, func() string { f, _ := h.frameworkState(frameworkID); return fmt.Sprintf("%+v", f) })
}

// TestThreeClustersSideBySide: three clusters on one Mesos get three frameworks, and
// scaling or deleting one does not touch the others.
func TestThreeClustersSideBySide(t *testing.T) {
	// Six agents need six hosts (Host-network agents of different clusters never share
	// one), and the servers pile up where the offers put them: eight hosts.
	h := newHarness(t, 8)
	for _, name := range []string{"red", "green", "blue"} {
		h.apply(name, `{agents: {replicas: 2}}`)
	}
	for _, name := range []string{"red", "green", "blue"} {
		h.waitCondition(name, v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	}
	ids := map[string]bool{}
	for _, name := range []string{"red", "green", "blue"} {
		ids[h.get(name).Status.FrameworkID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("three clusters share frameworks: %v", ids)
	}
	greenTasks := fmt.Sprint(h.liveTasks("green"))
	blueTasks := fmt.Sprint(h.liveTasks("blue"))

	kubectl(t, "-n", h.ns, "scale", "k3sc", "red", "--replicas=4")
	if err := h.c.Delete(h.ctx, h.get("blue")); err != nil {
		t.Fatal(err)
	}
	h.eventually(waitDeploy, "red at four agents", func() bool {
		return h.get("red").Status.Agents.ReadyReplicas == 4
	}, h.describe("red"))
	h.eventually(waitDeploy, "blue gone", func() bool {
		return len(h.liveTasks("blue")) == 0
	}, func() string { return blueTasks + " → " + fmt.Sprint(h.mesosTasks()) })
	if got := fmt.Sprint(h.liveTasks("green")); got != greenTasks {
		t.Fatalf("green's tasks changed: %s → %s", greenTasks, got)
	}
	if !conditionIs(h.get("green"), v1alpha1.ConditionReady, metav1.ConditionTrue) {
		t.Fatal("green is no longer Ready")
	}
}

// TestKstatusFollowsTheCluster: kstatus (what Flux and kubectl wait build on) reads the
// real object as InProgress while deploying and Current once Ready; a cluster that
// cannot be built reads Failed.
func TestKstatusFollowsTheCluster(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("kstat", `{agents: {replicas: 1}}`)
	sawInProgress := false
	// Before the operator's first pass the object has no status, which kstatus reads as
	// Current for any custom resource; the operator writes its conditions at once.
	h.eventually(10*time.Second, "the operator's first status", func() bool {
		return len(h.get("kstat").Status.Conditions) > 0
	}, h.describe("kstat"))
	h.eventually(waitDeploy, "kstatus Current", func() bool {
		res := h.kstatus("kstat")
		sawInProgress = sawInProgress || res == status.InProgressStatus
		return res == status.CurrentStatus
	}, h.describe("kstat"))
	if !sawInProgress {
		t.Fatal("kstatus never read InProgress while deploying")
	}
	h.apply("unsupported", `{datastore: {type: MySQL}, servers: {replicas: 1}}`)
	h.eventually(10*time.Second, "kstatus Failed for an unsupported datastore", func() bool {
		return h.kstatus("unsupported") == status.FailedStatus
	}, h.describe("unsupported"))
	if c := metaCondition(h.get("unsupported"), v1alpha1.ConditionStalled); c.Reason != v1alpha1.ReasonUnsupportedSpec {
		t.Fatalf("stalled reason %s", c.Reason)
	}
	if live := h.liveTasks("unsupported"); len(live) != 0 {
		t.Fatalf("an unsupported cluster launched tasks: %v", live)
	}
}

func (h *harness) kstatus(name string) status.Status {
	h.t.Helper()
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(h.get(name))
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: raw})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Status
}
