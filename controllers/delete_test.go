package controllers_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

// deleteAndWaitGone deletes the cluster and waits until the object is gone.
func (h *harness) deleteAndWaitGone(name string) {
	h.t.Helper()
	if err := h.c.Delete(h.ctx, h.get(name)); err != nil {
		h.t.Fatal(err)
	}
	h.eventually(waitDeploy, name+" gone", func() bool {
		err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: name}, &v1alpha1.K3sCluster{})
		return apierrors.IsNotFound(err)
	}, h.describe(name))
}

// frameworkState is the emulator's view of a framework; false once the master forgot it.
func (h *harness) frameworkState(id string) (mesostest.StateFramework, bool) {
	for _, f := range h.mesos.State().Frameworks {
		if f.ID == id {
			return f, true
		}
	}
	return mesostest.StateFramework{}, false
}

// A paused cluster can be deleted: pausing stops the operator's changes, not a delete.
// Before, the pause was checked first and the delete waited on the finalizer forever.
func TestPausedClusterCanBeDeleted(t *testing.T) {
	h := newHarness(t, 2)
	h.apply("paused-gone", `{agents: {replicas: 1}}`)
	h.waitCondition("paused-gone", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	id := h.get("paused-gone").Status.FrameworkID
	h.update("paused-gone", func(c *v1alpha1.K3sCluster) { c.Spec.Paused = true })
	h.waitCondition("paused-gone", v1alpha1.ConditionPaused, metav1.ConditionTrue, 10*time.Second)

	h.deleteAndWaitGone("paused-gone")
	if f, ok := h.frameworkState(id); ok {
		t.Fatalf("framework %s still registered with %d tasks", id, len(f.Tasks))
	}
}

// Deleting a namespace takes the Mesos credentials Secret with the cluster, in no set
// order: the delete still tears the framework down with the credentials the bridge
// connected with. (envtest runs no namespace controller, so the test deletes what it
// would: the Secret, then the cluster.)
func TestDeleteAfterTheCredentialsWent(t *testing.T) {
	h := newHarnessWith(t, 2, mesostest.Options{Credentials: map[string]string{"mesosk3s": "s3cret"}})
	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "mesos-creds"},
		StringData: map[string]string{"principal": "mesosk3s", "secret": "s3cret"},
	}
	if err := h.c.Create(h.ctx, creds); err != nil {
		t.Fatal(err)
	}
	h.apply("creds-gone", `{agents: {replicas: 1}, mesos: {credentialsSecretRef: {name: mesos-creds}}}`)
	h.waitCondition("creds-gone", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)
	id := h.get("creds-gone").Status.FrameworkID

	if err := h.c.Delete(h.ctx, creds); err != nil {
		t.Fatal(err)
	}
	h.deleteAndWaitGone("creds-gone")
	if f, ok := h.frameworkState(id); ok {
		t.Fatalf("framework %s still registered with %d tasks after the delete", id, len(f.Tasks))
	}
}
