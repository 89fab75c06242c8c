package manifestcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var root = filepath.Join("..", "..")

// TestReleaseManifest renders what `make release-manifest` writes to dist/install.yaml
// (hack/deploy.sh render, kubectl's kustomize) with a release image and Mesos master,
// and checks that it installs everything, in one namespace, with the image replaced.
func TestReleaseManifest(t *testing.T) {
	const img = "registry.example.com:5000/mesosk3s/operator:v9.8.7"
	const master = "https://m1.mesos.example.com:5050,https://m2.mesos.example.com:5050"
	cmd := exec.Command("bash", filepath.Join(root, "hack", "deploy.sh"), "render", img)
	cmd.Env = append(os.Environ(), "MESOS_MASTER="+master)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("hack/deploy.sh render: %v\n%s", err, stderr)
	}
	objs, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); strings.Contains(s, "controller:latest") || strings.Contains(s, "mesosk3s/operator:dev") {
		t.Error("the release manifest still names the development image")
	}

	const ns = "mesosk3s-system"
	want := map[string][]string{
		"Namespace":                {ns},
		"CustomResourceDefinition": {"k3sclusters.cluster.mesosk3s.io"},
		"ServiceAccount":           {"mesosk3s-controller-manager"},
		"ClusterRole":              {"mesosk3s-manager-role", "mesosk3s-k3scluster-editor-role", "mesosk3s-k3scluster-viewer-role"},
		"ClusterRoleBinding":       {"mesosk3s-manager-rolebinding"},
		"Role":                     {"mesosk3s-leader-election-role"},
		"RoleBinding":              {"mesosk3s-leader-election-rolebinding"},
		"Deployment":               {"mesosk3s-controller-manager"},
		"Service":                  {"mesosk3s-controller-manager-metrics-service"},
	}
	count := 0
	for kind, names := range want {
		for _, n := range names {
			o := Find(objs, kind, n)
			if o == nil {
				t.Errorf("no %s %s", kind, n)
				continue
			}
			clusterScoped := kind == "Namespace" || kind == "CustomResourceDefinition" || strings.HasPrefix(kind, "Cluster")
			if !clusterScoped && o.GetNamespace() != ns {
				t.Errorf("%s %s is in namespace %q, want %s", kind, n, o.GetNamespace(), ns)
			}
		}
		count += len(names)
	}
	if len(objs) != count {
		t.Errorf("%d objects, want %d: something unexpected is in the manifest", len(objs), count)
	}

	crd, rules, err := LoadGenerated(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := Find(objs, "CustomResourceDefinition", "k3sclusters.cluster.mesosk3s.io"); got != nil {
		if same, diff := SameObject(got, crd); !same {
			t.Errorf("the CRD differs from %s: %s", GeneratedCRD, diff)
		}
	}
	if o := Find(objs, "ClusterRole", "mesosk3s-manager-role"); o != nil {
		var role rbacv1.ClusterRole
		if err := Decode(o, &role); err != nil {
			t.Fatal(err)
		}
		if !SameRules(role.Rules, rules) {
			t.Errorf("manager ClusterRole rules differ from %s:\n%+v\n%+v", GeneratedRole, role.Rules, rules)
		}
	}
	if o := Find(objs, "ClusterRoleBinding", "mesosk3s-manager-rolebinding"); o != nil {
		var b rbacv1.ClusterRoleBinding
		if err := Decode(o, &b); err != nil {
			t.Fatal(err)
		}
		if b.RoleRef.Name != "mesosk3s-manager-role" || len(b.Subjects) != 1 ||
			b.Subjects[0].Name != "mesosk3s-controller-manager" || b.Subjects[0].Namespace != ns {
			t.Errorf("ClusterRoleBinding binds %+v to %+v", b.RoleRef, b.Subjects)
		}
	}

	var d appsv1.Deployment
	if o := Find(objs, "Deployment", "mesosk3s-controller-manager"); o != nil {
		if err := Decode(o, &d); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range DeploymentProblems(&d) {
		t.Error("Deployment:", p)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	if got := Image(&d); got != img {
		t.Errorf("image = %q, want %q", got, img)
	}
	if got := EnvValue(&d.Spec.Template.Spec.Containers[0], "MESOS_MASTER"); got != master {
		t.Errorf("MESOS_MASTER = %q, want %q", got, master)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "mesosk3s-controller-manager" {
		t.Errorf("service account %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	var svc corev1.Service
	if o := Find(objs, "Service", "mesosk3s-controller-manager-metrics-service"); o != nil {
		if err := Decode(o, &svc); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ServiceProblems(&svc, &d) {
		t.Error("metrics Service:", p)
	}
}

// TestReleaseManifestByDigest: a release can pin the image by digest.
func TestReleaseManifestByDigest(t *testing.T) {
	img := "registry.example.com/mesosk3s/operator@sha256:" + strings.Repeat("ab", 32)
	out, err := exec.Command("bash", filepath.Join(root, "hack", "deploy.sh"), "render", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := Decode(Find(objs, "Deployment", "mesosk3s-controller-manager"), &d); err != nil {
		t.Fatal(err)
	}
	if got := Image(&d); got != img {
		t.Errorf("image = %q, want %q", got, img)
	}
	// Without MESOS_MASTER the Deployment keeps config/manager's default.
	if got := EnvValue(&d.Spec.Template.Spec.Containers[0], "MESOS_MASTER"); got != "http://leader.mesos:5050" {
		t.Errorf("MESOS_MASTER = %q", got)
	}
}

// TestDeploymentProblemsCatches: a bare Deployment fails every rule.
func TestDeploymentProblemsCatches(t *testing.T) {
	d := &appsv1.Deployment{}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "manager", Args: []string{"--leader-elect=false"}}}
	got := strings.Join(DeploymentProblems(d), "\n")
	for _, want := range []string{"--leader-elect", "serviceAccountName", "liveness", "readiness", "metrics", "requests",
		"memory limit", "runAsNonRoot", "securityContext", "MESOS_MASTER"} {
		if !strings.Contains(got, want) {
			t.Errorf("no problem mentions %q:\n%s", want, got)
		}
	}
	svc := &corev1.Service{}
	svc.Spec.Selector = map[string]string{"app": "other"}
	if p := ServiceProblems(svc, d); len(p) < 2 {
		t.Errorf("ServiceProblems = %q, want a selector and a port problem", p)
	}
}

// TestPrometheusObjects: config/prometheus renders, in the operator's namespace, with a
// ServiceMonitor that selects the metrics Service of the release manifest.
func TestPrometheusObjects(t *testing.T) {
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, "config", "prometheus")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/prometheus: %v", err)
	}
	objs, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	sm := Find(objs, "ServiceMonitor", "mesosk3s-controller-manager-metrics-monitor")
	if sm == nil || Find(objs, "PrometheusRule", "mesosk3s-alerts") == nil {
		t.Fatalf("want the ServiceMonitor and the PrometheusRule, got %d objects", len(objs))
	}
	main, err := exec.Command("kubectl", "kustomize", filepath.Join(root, "config", "default")).Output()
	if err != nil {
		t.Fatal(err)
	}
	deployed, err := Parse(main)
	if err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	if err := Decode(Find(deployed, "Service", "mesosk3s-controller-manager-metrics-service"), &svc); err != nil {
		t.Fatal(err)
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, the Service has %q", k, v, svc.Labels[k])
		}
	}
	if sm.GetNamespace() != svc.Namespace {
		t.Errorf("ServiceMonitor in %q, Service in %q", sm.GetNamespace(), svc.Namespace)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["port"] != svc.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor endpoints %v, Service ports %+v", eps, svc.Spec.Ports)
	}
}
