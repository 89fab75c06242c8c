package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// kubectl runs the real kubectl binary against the test API server.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return env.Kubectl(t, args...)
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestKubectlScaleChangesAgents drives the scale subresource the way a user does.
func TestKubectlScaleChangesAgents(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, "scale")
	created := createCluster(t, "scale", "scaled", `{}`)
	key := client.ObjectKeyFromObject(created)

	kubectl(t, "-n", "scale", "scale", "k3scluster", "scaled", "--replicas=5")

	var c v1alpha1.K3sCluster
	if err := env.Client.Get(ctx, key, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Agents.Replicas != 5 {
		t.Fatalf("spec.agents.replicas = %d after kubectl scale --replicas=5", c.Spec.Agents.Replicas)
	}
	if c.Spec.Servers.Replicas != 1 {
		t.Fatalf("kubectl scale touched servers: %d", c.Spec.Servers.Replicas)
	}

	// Scaling to zero agents is allowed (a server-only cluster); a negative count is not.
	kubectl(t, "-n", "scale", "scale", "k3sc", "scaled", "--replicas=0")
	if err := env.Client.Get(ctx, key, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Agents.Replicas != 0 {
		t.Fatalf("spec.agents.replicas = %d after scale to 0", c.Spec.Agents.Replicas)
	}

	// The scale subresource reports the status selector and replicas the controller sets.
	c.Status.Agents.Replicas = 0
	c.Status.Selector = v1alpha1.ClusterNameLabel + "=scaled," + v1alpha1.RoleLabel + "=agent"
	if err := env.Client.Status().Update(ctx, &c); err != nil {
		t.Fatal(err)
	}
	scale := kubectl(t, "-n", "scale", "get", "--raw", "/apis/cluster.mesosk3s.io/v1alpha1/namespaces/scale/k3sclusters/scaled/scale")
	if !strings.Contains(scale, `"selector":"cluster.x-k8s.io/cluster-name=scaled,cluster.mesosk3s.io/role=agent"`) {
		t.Fatalf("scale subresource does not carry the selector: %s", scale)
	}
}

// TestKubectlGetPrintsColumns checks the printer columns by short name.
func TestKubectlGetPrintsColumns(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, "columns")
	c := createCluster(t, "columns", "printed", `{agents: {replicas: 3}}`)
	c.Status.Phase = v1alpha1.PhaseRunning
	c.Status.Endpoint = "https://10.0.0.7:31001"
	c.Status.Servers = v1alpha1.RoleStatus{Replicas: 1, ReadyReplicas: 1, UpdatedReplicas: 1}
	c.Status.Agents = v1alpha1.RoleStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 3}
	c.Status.Conditions = []metav1.Condition{{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady,
		Message: "ready", LastTransitionTime: metav1.Now(),
	}}
	if err := env.Client.Status().Update(ctx, c); err != nil {
		t.Fatal(err)
	}

	out := kubectl(t, "-n", "columns", "get", "k3sc")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row, got:\n%s", out)
	}
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	wantHeader := []string{"NAME", "VERSION", "SERVERS", "AGENTS", "DESIRED", "PHASE", "READY", "AGE"}
	if strings.Join(header, " ") != strings.Join(wantHeader, " ") {
		t.Fatalf("header = %v, want %v", header, wantHeader)
	}
	wantRow := []string{"printed", "v1.31.4+k3s1", "1", "2", "3", "Running", "True"}
	if strings.Join(row[:len(wantRow)], " ") != strings.Join(wantRow, " ") {
		t.Fatalf("row = %v, want prefix %v", row, wantRow)
	}

	wide := kubectl(t, "-n", "columns", "get", "k3sc", "-o", "wide")
	if !strings.Contains(wide, "ENDPOINT") || !strings.Contains(wide, "https://10.0.0.7:31001") {
		t.Fatalf("-o wide lacks the endpoint column:\n%s", wide)
	}
	if strings.Contains(out, "ENDPOINT") {
		t.Fatalf("endpoint should be a priority-1 column, shown only with -o wide:\n%s", out)
	}
}
