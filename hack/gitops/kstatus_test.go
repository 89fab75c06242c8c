package gitops

import (
	"context"
	"strings"
	"testing"
	"time"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clusterv1alpha1 "github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

func k3sClusterYAML(agents string) string {
	return `apiVersion: v1
kind: Namespace
metadata:
  name: clusters
---
apiVersion: cluster.mesosk3s.io/v1alpha1
kind: K3sCluster
metadata:
  name: demo
  namespace: clusters
spec:
  agents:
    replicas: ` + agents + `
`
}

// TestFluxWaitsOnK3sClusterStatus shows how `wait: true` judges a K3sCluster (Flux uses
// kstatus), with no operator running: the test writes the status the operator would. It
// pins what the K3sCluster end-to-end test must allow for: a K3sCluster whose status is
// still empty counts as ready.
func TestFluxWaitsOnK3sClusterStatus(t *testing.T) {
	env := StartEnv(t)
	git := NewGitServer(t)
	flux := StartFlux(t, env)
	ctx := context.Background()

	sha := git.Commit(t, "clusters: demo", map[string]string{"clusters/demo.yaml": k3sClusterYAML("1")})
	repo := GitRepository("fleet", git, 5*time.Second)
	if err := env.Client.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, Kustomization("clusters", "fleet", "./clusters", time.Minute)); err != nil {
		t.Fatal(err)
	}
	// No status at all: kstatus has nothing to wait for and calls the object Current.
	flux.WaitKustomizationReady(t, "clusters", git.Revision(sha), time.Minute)
	demo := &clusterv1alpha1.K3sCluster{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "clusters", Name: "demo"}, demo); err != nil {
		t.Fatal(err)
	}
	if len(demo.Status.Conditions) != 0 || demo.Status.ObservedGeneration != 0 {
		t.Fatalf("status was written by someone: %+v", demo.Status)
	}
	t.Log("Kustomization Ready although the K3sCluster has no status (kstatus: Current)")

	// What the operator writes while it works on generation 1.
	setStatus(t, env.Client, demo, demo.Generation, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, "Provisioning")

	// A change to the spec: generation 2 is not observed yet, so Flux waits.
	sha = git.Commit(t, "clusters: demo gets 2 agents", map[string]string{"clusters/demo.yaml": k3sClusterYAML("2")})
	flux.RequestReconcile(t, repo)
	// While health checks run, kustomize-controller sets Ready=Unknown (Progressing).
	k := flux.WaitKustomization(t, "clusters", time.Minute, healthChecking(git.Revision(sha)))
	t.Logf("waiting on the operator: %s", apimeta.FindStatusCondition(k.Status.Conditions, meta.HealthyCondition).Message)
	time.Sleep(6 * time.Second) // more than one 5 s health poll: still waiting
	k = flux.WaitKustomization(t, "clusters", time.Second, healthChecking(git.Revision(sha)))
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(demo), demo); err != nil {
		t.Fatal(err)
	}
	if demo.Generation != 2 {
		t.Fatalf("generation = %d, want 2", demo.Generation)
	}
	// The operator catches up: observedGeneration 2, Reconciling=False, Ready=True.
	start := time.Now()
	setStatus(t, env.Client, demo, 2, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, "Running")
	flux.WaitKustomizationReady(t, "clusters", git.Revision(sha), time.Minute)
	t.Logf("K3sCluster status Ready → Kustomization Ready: %s", time.Since(start).Round(time.Millisecond))

	// Stalled=True on the current generation fails the health check.
	sha = git.Commit(t, "clusters: demo gets 3 agents", map[string]string{"clusters/demo.yaml": k3sClusterYAML("3")})
	flux.RequestReconcile(t, repo)
	flux.WaitKustomization(t, "clusters", time.Minute, healthChecking(git.Revision(sha)))
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(demo), demo); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	setStatus(t, env.Client, demo, demo.Generation, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, "Failed")
	k = flux.WaitKustomization(t, "clusters", time.Minute, func(k *kustomizev1.Kustomization) (bool, string) {
		ready := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
		return ready != nil && ready.Reason == meta.HealthCheckFailedReason, condString(ready)
	})
	msg := ReadyMessage(k.Status.Conditions)
	t.Logf("Stalled → Kustomization HealthCheckFailed after %s: %s", time.Since(start).Round(time.Millisecond), msg)
	if !strings.Contains(msg, "K3sCluster/clusters/demo") {
		t.Errorf("HealthCheckFailed message does not name the cluster: %s", msg)
	}
}

// healthChecking holds while kustomize-controller waits for the objects of revision:
// Ready=Unknown ("Reconciliation in progress") and Healthy=Unknown, reason Progressing,
// "Running health checks for revision ...".
func healthChecking(revision string) func(k *kustomizev1.Kustomization) (bool, string) {
	return func(k *kustomizev1.Kustomization) (bool, string) {
		ready := apimeta.FindStatusCondition(k.Status.Conditions, meta.ReadyCondition)
		healthy := apimeta.FindStatusCondition(k.Status.Conditions, meta.HealthyCondition)
		ok := ready != nil && ready.Status == metav1.ConditionUnknown &&
			healthy != nil && healthy.Status == metav1.ConditionUnknown && healthy.Reason == meta.ProgressingReason &&
			strings.Contains(healthy.Message, "health checks for revision "+revision)
		return ok, "Ready " + condString(ready) + ", Healthy " + condString(healthy)
	}
}

// setStatus writes a K3sCluster status as the operator would.
func setStatus(t *testing.T, c client.Client, k *clusterv1alpha1.K3sCluster, observed int64, reconciling, ready, stalled metav1.ConditionStatus, phase string) {
	t.Helper()
	k.Status.ObservedGeneration = observed
	k.Status.Phase = phase
	for _, cond := range []struct {
		typ    string
		status metav1.ConditionStatus
	}{{clusterv1alpha1.ConditionReconciling, reconciling}, {clusterv1alpha1.ConditionReady, ready}, {clusterv1alpha1.ConditionStalled, stalled}} {
		apimeta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{
			Type: cond.typ, Status: cond.status, Reason: "Test", Message: "set by the test: " + cond.typ + "=" + string(cond.status),
			ObservedGeneration: observed,
		})
	}
	if err := c.Status().Update(context.Background(), k); err != nil {
		t.Fatalf("updating K3sCluster status: %v", err)
	}
}

// k3sClusterHealth is a CEL health check for K3sCluster that, unlike kstatus's default,
// does not take a missing status for ready: Current needs Ready=True on the observed
// generation. While the object has no status at all, Flux's CEL evaluation fails ("no such
// attribute(s): status.observedGeneration": `?.` does not help when status itself is
// missing); the poller records that as status Unknown and goes on waiting, which is what
// we want, though by way of an error.
var k3sClusterHealth = kustomize.CustomHealthCheck{
	APIVersion: clusterv1alpha1.GroupVersion.String(),
	Kind:       "K3sCluster",
	HealthCheckExpressions: kustomize.HealthCheckExpressions{
		Current: "status.?observedGeneration.orValue(0) == metadata.generation && " +
			"status.?conditions.orValue([]).exists(c, c.type == 'Ready' && c.status == 'True')",
		Failed: "status.?conditions.orValue([]).exists(c, c.type == 'Stalled' && c.status == 'True')",
	},
}

// TestFluxHealthCheckExprsWaitForK3sClusterReady: with spec.healthCheckExprs, Flux waits
// for the operator's Ready=True even while the status is still empty.
func TestFluxHealthCheckExprsWaitForK3sClusterReady(t *testing.T) {
	env := StartEnv(t)
	git := NewGitServer(t)
	flux := StartFlux(t, env)
	ctx := context.Background()

	sha := git.Commit(t, "clusters: demo", map[string]string{"clusters/demo.yaml": k3sClusterYAML("1")})
	if err := env.Client.Create(ctx, GitRepository("fleet", git, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	k := Kustomization("clusters", "fleet", "./clusters", time.Minute)
	k.Spec.HealthCheckExprs = []kustomize.CustomHealthCheck{k3sClusterHealth}
	if err := env.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	k = flux.WaitKustomization(t, "clusters", time.Minute, healthChecking(git.Revision(sha)))
	time.Sleep(11 * time.Second) // two 5 s health polls
	k = flux.WaitKustomization(t, "clusters", time.Second, healthChecking(git.Revision(sha)))
	t.Logf("no status, still waiting: %s", apimeta.FindStatusCondition(k.Status.Conditions, meta.HealthyCondition).Message)

	demo := &clusterv1alpha1.K3sCluster{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "clusters", Name: "demo"}, demo); err != nil {
		t.Fatal(err)
	}
	setStatus(t, env.Client, demo, demo.Generation, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, "Provisioning")
	time.Sleep(6 * time.Second)
	flux.WaitKustomization(t, "clusters", time.Second, healthChecking(git.Revision(sha)))
	start := time.Now()
	setStatus(t, env.Client, demo, demo.Generation, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, "Running")
	flux.WaitKustomizationReady(t, "clusters", git.Revision(sha), time.Minute)
	t.Logf("K3sCluster Ready=True → Kustomization Ready: %s", time.Since(start).Round(time.Millisecond))
}
