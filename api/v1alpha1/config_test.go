package v1alpha1_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// TestDeployManifestsApply renders config/default with kubectl's kustomize and applies it
// to the real API server, so a broken kustomization or manifest fails here, not at a
// user's `make deploy`.
func TestDeployManifestsApply(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "config", "default")
	out := kubectl(t, "apply", "--server-side", "--force-conflicts", "-k", dir)
	for _, want := range []string{
		"namespace/mesosk3s-system",
		"customresourcedefinition.apiextensions.k8s.io/k3sclusters.cluster.mesosk3s.io",
		"serviceaccount/mesosk3s-controller-manager",
		"clusterrole.rbac.authorization.k8s.io/mesosk3s-manager-role",
		"clusterrolebinding.rbac.authorization.k8s.io/mesosk3s-manager-rolebinding",
		"role.rbac.authorization.k8s.io/mesosk3s-leader-election-role",
		"deployment.apps/mesosk3s-controller-manager",
		"service/mesosk3s-controller-manager-metrics-service",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k config/default did not apply %s:\n%s", want, out)
		}
	}
	// The Deployment runs the service account the RBAC binds.
	sa := kubectl(t, "-n", "mesosk3s-system", "get", "deployment", "mesosk3s-controller-manager",
		"-o", "jsonpath={.spec.template.spec.serviceAccountName}")
	if sa != "mesosk3s-controller-manager" {
		t.Errorf("deployment service account = %q", sa)
	}
	// Leave the CRD (the other tests need it); remove the rest.
	kubectl(t, "delete", "-n", "mesosk3s-system", "deployment,service,serviceaccount,role,rolebinding", "--all")
}
