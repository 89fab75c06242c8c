// Package charts holds the tests of the Helm chart in charts/mesosk3s: `helm lint` and
// `helm template` through the Helm SDK, with no cluster and no network.
package charts

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	mc "github.com/mesosk3s/mesosk3s/hack/manifestcheck"
)

const (
	chartDir  = "mesosk3s"
	release   = "mesosk3s"
	namespace = "mesosk3s-system"
	root      = ".."
)

// kubeVersions are the oldest Kubernetes the chart supports (Chart.yaml's kubeVersion)
// and the one the project tests against.
var kubeVersions = []chartutil.KubeVersion{
	{Version: "v1.31.0", Major: "1", Minor: "31"},
	{Version: "v1.37.1", Major: "1", Minor: "37"},
}

// TestChartFilesAreGenerated: the chart's copies of controller-gen's CRD and ClusterRole
// are byte for byte what config/ holds (`make manifests` copies them).
func TestChartFilesAreGenerated(t *testing.T) {
	for copy, generated := range map[string]string{
		"mesosk3s/files/crd/cluster.mesosk3s.io_k3sclusters.yaml": mc.GeneratedCRD,
		"mesosk3s/files/rbac/role.yaml":                           mc.GeneratedRole,
	} {
		a, err := os.ReadFile(copy)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, generated))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/%s differs from %s: run `make manifests`", copy, generated)
		}
	}
}

// TestChartLints runs helm lint (strict: warnings fail too) with the default values and
// with every optional part turned on.
func TestChartLints(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults": nil,
		"everything": {
			"metrics":        map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}},
			"image":          map[string]any{"digest": "sha256:" + strings.Repeat("0", 64)},
			"extraEnv":       []any{map[string]any{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}},
			"serviceAccount": map[string]any{"annotations": map[string]any{"a": "b"}},
		},
	} {
		for _, kv := range kubeVersions {
			kv := kv
			l := lint.AllWithKubeVersion(chartDir, vals, namespace, &kv)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("%s, Kubernetes %s: %s", name, kv.Version, m)
				}
			}
		}
	}
}

// TestChartDefaults renders the chart with its defaults: a production Deployment with
// two replicas and leader election, its metrics Service, RBAC equal to what config/
// holds and the generated CRD, kept on uninstall.
func TestChartDefaults(t *testing.T) {
	objs, ch := render(t, nil)
	for _, o := range objs {
		clusterScoped := o.GetKind() == "CustomResourceDefinition" || strings.HasPrefix(o.GetKind(), "Cluster")
		if !clusterScoped && o.GetNamespace() != namespace {
			t.Errorf("%s %s is in namespace %q, want the release's", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if o.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s %s lacks the chart's labels: %v", o.GetKind(), o.GetName(), o.GetLabels())
		}
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	sort.Strings(kinds)
	want := "ClusterRole/mesosk3s-k3scluster-editor ClusterRole/mesosk3s-k3scluster-viewer ClusterRole/mesosk3s-manager " +
		"ClusterRoleBinding/mesosk3s-manager CustomResourceDefinition/k3sclusters.cluster.mesosk3s.io Deployment/mesosk3s " +
		"Role/mesosk3s-leader-election RoleBinding/mesosk3s-leader-election Service/mesosk3s-metrics ServiceAccount/mesosk3s"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("objects:\n got %s\nwant %s", got, want)
	}

	d := deployment(t, objs)
	for _, p := range mc.DeploymentProblems(d) {
		t.Error("Deployment:", p)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if want := "mesosk3s/operator:" + ch.Metadata.AppVersion; c.Image != want || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s), want %s (IfNotPresent)", c.Image, c.ImagePullPolicy, want)
	}
	if got := mc.EnvValue(&c, "MESOS_MASTER"); got != "http://leader.mesos:5050" {
		t.Errorf("MESOS_MASTER = %q", got)
	}
	if !contains(c.Args, "--leader-elect=true") || !contains(c.Args, "--log-level=info") {
		t.Errorf("args %q", c.Args)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "mesosk3s" {
		t.Errorf("service account %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	var svc corev1.Service
	decode(t, mc.Find(objs, "Service", "mesosk3s-metrics"), &svc)
	for _, p := range mc.ServiceProblems(&svc, d) {
		t.Error("metrics Service:", p)
	}

	crd, rules, err := mc.LoadGenerated(root)
	if err != nil {
		t.Fatal(err)
	}
	got := mc.Find(objs, "CustomResourceDefinition", "k3sclusters.cluster.mesosk3s.io")
	if same, diff := mc.SameObject(got, crd, "labels", "annotations"); !same {
		t.Errorf("the chart's CRD differs from %s: %s", mc.GeneratedCRD, diff)
	}
	if got.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the CRD lacks helm.sh/resource-policy: keep: %v", got.GetAnnotations())
	}
	for k, v := range crd.GetAnnotations() {
		if got.GetAnnotations()[k] != v {
			t.Errorf("the CRD lost annotation %s=%s", k, v)
		}
	}

	var role rbacv1.ClusterRole
	decode(t, mc.Find(objs, "ClusterRole", "mesosk3s-manager"), &role)
	if !mc.SameRules(role.Rules, rules) {
		t.Errorf("the chart's ClusterRole rules differ from %s:\n got %+v\nwant %+v", mc.GeneratedRole, role.Rules, rules)
	}
	// The hand-written roles match config/rbac/ too.
	for chartName, file := range map[string]string{
		"Role/mesosk3s-leader-election":          "leader_election_role.yaml",
		"ClusterRole/mesosk3s-k3scluster-editor": "k3scluster_editor_role.yaml",
		"ClusterRole/mesosk3s-k3scluster-viewer": "k3scluster_viewer_role.yaml",
	} {
		kind, name, _ := strings.Cut(chartName, "/")
		var inChart, inConfig rbacv1.ClusterRole // Role and ClusterRole rules decode alike
		o := mc.Find(objs, kind, name)
		if o == nil {
			t.Errorf("no %s", chartName)
			continue
		}
		decode(t, o, &inChart)
		cfg, err := mc.ParseFile(filepath.Join(root, "config", "rbac", file))
		if err != nil {
			t.Fatal(err)
		}
		decode(t, cfg[0], &inConfig)
		if !mc.SameRules(inChart.Rules, inConfig.Rules) {
			t.Errorf("%s rules differ from config/rbac/%s", chartName, file)
		}
		for k, v := range cfg[0].GetLabels() {
			if o.GetLabels()[k] != v {
				t.Errorf("%s lacks label %s=%s", chartName, k, v)
			}
		}
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range mc.OfKind(objs, kind) {
			var b rbacv1.RoleBinding
			decode(t, o, &b)
			if len(b.Subjects) != 1 || b.Subjects[0].Name != "mesosk3s" || b.Subjects[0].Namespace != namespace {
				t.Errorf("%s %s binds %+v", kind, o.GetName(), b.Subjects)
			}
		}
	}
}

// TestChartValues: the values people change end up where they belong.
func TestChartValues(t *testing.T) {
	objs, _ := render(t, map[string]any{
		"image":          map[string]any{"repository": "registry.example.com/mesosk3s/operator", "tag": "v0.2.0", "pullPolicy": "Always"},
		"replicaCount":   3,
		"mesosMaster":    "https://m1:5050,https://m2:5050",
		"logLevel":       "debug",
		"extraEnv":       []any{map[string]any{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}},
		"extraArgs":      []any{"--leader-election-id=other"},
		"resources":      map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "256Mi"}, "limits": map[string]any{"memory": "1Gi"}},
		"nodeSelector":   map[string]any{"node-role.kubernetes.io/control-plane": "true"},
		"tolerations":    []any{map[string]any{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}},
		"affinity":       map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{"weight": 100, "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname", "labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "mesosk3s"}}}}}}},
		"podAnnotations": map[string]any{"example.com/team": "platform"},
		"serviceAccount": map[string]any{"create": false, "name": "existing-sa"},
		"metrics":        map[string]any{"port": 9090, "serviceMonitor": map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "prometheus"}}},
		"installCRDs":    false,
	})
	d := deployment(t, objs)
	for _, p := range mc.DeploymentProblems(d) {
		if !strings.Contains(p, "metrics") { // the metrics port moved on purpose
			t.Error("Deployment:", p)
		}
	}
	c := d.Spec.Template.Spec.Containers[0]
	spec := d.Spec.Template.Spec
	checks := map[string]bool{
		"image":           c.Image == "registry.example.com/mesosk3s/operator:v0.2.0" && c.ImagePullPolicy == corev1.PullAlways,
		"replicas":        d.Spec.Replicas != nil && *d.Spec.Replicas == 3,
		"MESOS_MASTER":    mc.EnvValue(&c, "MESOS_MASTER") == "https://m1:5050,https://m2:5050",
		"extraEnv":        mc.EnvValue(&c, "HTTPS_PROXY") == "http://proxy:3128",
		"logLevel":        contains(c.Args, "--log-level=debug"),
		"extraArgs":       contains(c.Args, "--leader-election-id=other"),
		"metrics port":    contains(c.Args, "--metrics-bind-address=:9090") && len(c.Ports) == 2 && c.Ports[0].ContainerPort == 9090,
		"resources":       c.Resources.Requests.Cpu().String() == "250m" && c.Resources.Limits.Memory().String() == "1Gi",
		"nodeSelector":    spec.NodeSelector["node-role.kubernetes.io/control-plane"] == "true",
		"tolerations":     len(spec.Tolerations) == 1 && spec.Tolerations[0].Key == "dedicated",
		"affinity":        spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil,
		"podAnnotations":  d.Spec.Template.Annotations["example.com/team"] == "platform",
		"service account": spec.ServiceAccountName == "existing-sa" && mc.Find(objs, "ServiceAccount", "existing-sa") == nil && len(mc.OfKind(objs, "ServiceAccount")) == 0,
		"no CRD":          len(mc.OfKind(objs, "CustomResourceDefinition")) == 0,
		"selector unchanged": d.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] == release &&
			d.Spec.Selector.MatchLabels["example.com/team"] == "",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s not applied", what)
		}
	}
	for _, o := range append(mc.OfKind(objs, "ClusterRoleBinding"), mc.OfKind(objs, "RoleBinding")...) {
		var b rbacv1.RoleBinding
		decode(t, o, &b)
		if b.Subjects[0].Name != "existing-sa" {
			t.Errorf("%s binds %s", o.GetName(), b.Subjects[0].Name)
		}
	}
	var svc corev1.Service
	decode(t, mc.Find(objs, "Service", "mesosk3s-metrics"), &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
		t.Errorf("metrics Service ports %+v", svc.Spec.Ports)
	}
	sm := mc.Find(objs, "ServiceMonitor", "mesosk3s")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["interval"] != "15s" ||
		sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor: endpoints %v, labels %v", eps, sm.GetLabels())
	}
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, the Service has %q", k, v, svc.Labels[k])
		}
	}
}

// TestChartMetricsOff: no metrics, no Service, no port, and the endpoint turned off.
func TestChartMetricsOff(t *testing.T) {
	objs, _ := render(t, map[string]any{"metrics": map[string]any{"enabled": false, "serviceMonitor": map[string]any{"enabled": true}}})
	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	if !contains(c.Args, "--metrics-bind-address=0") || len(c.Ports) != 1 {
		t.Errorf("args %q, ports %+v", c.Args, c.Ports)
	}
	if len(mc.OfKind(objs, "Service")) != 0 || len(mc.OfKind(objs, "ServiceMonitor")) != 0 {
		t.Error("a Service or ServiceMonitor without metrics")
	}
}

// TestChartRefuses: values that would break the operator fail the install.
func TestChartRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"two replicas without leader election": {map[string]any{"leaderElection": map[string]any{"enabled": false}}, "leaderElection"},
		"unknown log level":                    {map[string]any{"logLevel": "verbose"}, "logLevel"},
		"misspelt value":                       {map[string]any{"replicas": 3}, "replicas"},
		"metrics on the probe port":            {map[string]any{"metrics": map[string]any{"port": 8081}}, "port"},
		"no service account name":              {map[string]any{"serviceAccount": map[string]any{"create": false}}, "serviceAccount.name"},
		"bad digest":                           {map[string]any{"image": map[string]any{"digest": "latest"}}, "digest"},
	} {
		_, err := renderErr(tc.vals)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
	// One replica without leader election is allowed (e.g. a test cluster).
	objs, _ := render(t, map[string]any{"replicaCount": 1, "leaderElection": map[string]any{"enabled": false}})
	if c := deployment(t, objs).Spec.Template.Spec.Containers[0]; !contains(c.Args, "--leader-elect=false") {
		t.Errorf("args %q", c.Args)
	}
}

func render(t *testing.T, vals map[string]any) ([]*unstructured.Unstructured, *chart.Chart) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderErr(vals)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := mc.Parse([]byte(out))
	if err != nil {
		t.Fatalf("rendered manifests do not parse: %v\n%s", err, out)
	}
	return objs, ch
}

// renderErr is `helm template` at the oldest supported Kubernetes: all rendered
// manifests but NOTES.txt, in file order.
func renderErr(vals map[string]any) (string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return "", err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersions[0]
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return "", err
	}
	var names []string
	for n := range files {
		if !strings.HasSuffix(n, "NOTES.txt") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString("---\n# Source: " + n + "\n" + files[n] + "\n")
	}
	return b.String(), nil
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	ds := mc.OfKind(objs, "Deployment")
	if len(ds) != 1 {
		t.Fatalf("%d Deployments", len(ds))
	}
	var d appsv1.Deployment
	decode(t, ds[0], &d)
	return &d
}

func decode(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if o == nil {
		t.Fatalf("no object to decode into %T", into)
	}
	if err := mc.Decode(o, into); err != nil {
		y, _ := yaml.Marshal(o.Object)
		t.Fatalf("%v\n%s", err, y)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
