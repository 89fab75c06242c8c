package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/fluxcd/pkg/apis/meta"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/hack/gitops"
	"github.com/mesosk3s/mesosk3s/hack/hostguard"
)

// The workload the second Kustomization applies into the new cluster: a namespace, a
// ConfigMap and the demo web server from the agents' preloaded image.
const fluxAppsYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: app
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: app
data:
  greeting: from-git
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: app
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: docker.io/mesosk3s/busybox:1.35
          imagePullPolicy: Never
          command: ["sh", "-c", "echo from-git > /index.html && exec httpd -f -p 8080 -h /"]
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 2
`

// TestFluxManagesAPlaygroundCluster is GitOps for real: the playground's real Mesos
// emulator hosts, operator and K3s, and the real Flux source- and kustomize-controller
// applying from a Git repository the Kustomizations docs/gitops.md shows. A K3sCluster
// committed to Git becomes a cluster, the Kustomization is Ready only once the cluster
// is; a second Kustomization deploys into the new cluster through the kubeconfig Secret;
// a commit scales it; `kubectl scale` is set back by Flux; a bad spec is reported with
// the field; removing the file from Git deletes the cluster and frees Mesos.
func TestFluxManagesAPlaygroundCluster(t *testing.T) {
	gitops.Assets(t) // skips (or fails with MESOSK3S_REQUIRE_FLUX) without bin/flux
	root, k3s, assets, work, dev, manager := e2eSetup(t)
	state := filepath.Join(work, "state")
	clusterFile := filepath.Join(work, "cluster.yaml")
	pg := startPlayground(t, dev, "--state-dir", state, "--k3s", k3s, "--manager", manager, "--assets", assets,
		"--node-assets", filepath.Join(root, "bin", "node"), "--cluster-file", clusterFile,
		"--sample", filepath.Join(root, "config/samples/playground/k3scluster.yaml"))
	pg.waitOutput(t, "wrote the K3sCluster", 2*time.Minute)
	mgmtKC := filepath.Join(state, "kubeconfig")
	mgmt := kubectlAt(mgmtKC)

	cfg, err := clientcmd.BuildConfigFromFlags("", mgmtKC)
	if err != nil {
		t.Fatal(err)
	}
	scheme := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{clientgoscheme.AddToScheme, gitops.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	gitops.InstallCRDs(t, cfg)
	flux := gitops.StartFluxAt(t, mgmtKC, c)
	git := gitops.NewGitServer(t)
	ctx := context.Background()

	// The cluster in Git: the playground's, as `demo` in namespace clusters, two agents.
	demo := func(replicas int64) string {
		obj := &unstructured.Unstructured{}
		data, err := os.ReadFile(clusterFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatal(err)
		}
		obj.SetName("demo")
		obj.SetNamespace("clusters")
		if err := unstructured.SetNestedField(obj.Object, replicas, "spec", "agents", "replicas"); err != nil {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(obj.Object)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	namespace := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: clusters\n"
	committed := time.Now()
	sha := git.Commit(t, "clusters: demo with two agents", map[string]string{
		"clusters/namespace.yaml": namespace, "clusters/demo.yaml": demo(2), "apps/demo/app.yaml": fluxAppsYAML,
	})
	if err := c.Create(ctx, gitops.GitRepository("fleet", git, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	docs := fluxKustomizationsFromDocs(t, filepath.Join(root, "docs", "gitops.md"))
	clusters, apps := docs["k3s-clusters"], docs["demo-apps"]
	if clusters == nil || apps == nil {
		t.Fatalf("docs/gitops.md has no k3s-clusters and demo-apps Kustomizations: %v", kustomizationNames(docs))
	}
	// Failed applies are retried every few seconds here instead of after the docs' 10m.
	for _, k := range []*kustomizev1.Kustomization{clusters, apps} {
		k.Spec.RetryInterval = &metav1.Duration{Duration: 2 * time.Second}
	}
	if err := c.Create(ctx, clusters); err != nil {
		t.Fatal(err)
	}

	// The Kustomization is Ready only once the K3sCluster is.
	key := client.ObjectKey{Namespace: "clusters", Name: "demo"}
	for {
		k, cluster := &kustomizev1.Kustomization{}, &v1alpha1.K3sCluster{}
		_ = c.Get(ctx, client.ObjectKeyFromObject(clusters), k)
		clusterErr := c.Get(ctx, key, cluster)
		kReady := apimeta.IsStatusConditionTrue(k.Status.Conditions, meta.ReadyCondition) && k.Status.LastAppliedRevision == git.Revision(sha)
		if kReady {
			// Read the cluster after the Kustomization: it was Ready no later than that.
			if clusterErr != nil || !apimeta.IsStatusConditionTrue(cluster.Status.Conditions, v1alpha1.ConditionReady) {
				_ = c.Get(ctx, key, cluster)
				if !apimeta.IsStatusConditionTrue(cluster.Status.Conditions, v1alpha1.ConditionReady) {
					t.Fatalf("the Kustomization is Ready while the K3sCluster is not: %+v", cluster.Status.Conditions)
				}
			}
			t.Logf("commit → K3sCluster applied, Ready, Kustomization Ready: %.1fs", time.Since(committed).Seconds())
			break
		}
		if time.Since(committed) > 5*time.Minute {
			t.Fatalf("the Kustomization is not Ready after 5 min: %s; cluster phase %q", gitops.ReadyMessage(k.Status.Conditions), cluster.Status.Phase)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The second Kustomization deploys into the new cluster through its kubeconfig Secret.
	start := time.Now()
	if err := c.Create(ctx, apps); err != nil {
		t.Fatal(err)
	}
	waitKustomizationIn(t, c, apps, git.Revision(sha), 4*time.Minute)
	t.Logf("demo-apps created → applied into the workload cluster and Ready: %.1fs", time.Since(start).Seconds())
	clusterKC := filepath.Join(work, "demo.kubeconfig")
	writeKubeconfigFrom(t, mgmt, "clusters", "demo-kubeconfig", clusterKC)
	wl := kubectlAt(clusterKC)
	if got := wl.run(t, "get", "configmap", "config", "-n", "app", "-o", "jsonpath={.data.greeting}"); got != "from-git" {
		t.Fatalf("the ConfigMap from Git in the workload cluster says %q", got)
	}
	wl.run(t, "rollout", "status", "deployment/web", "-n", "app", "--timeout=120s")
	t.Logf("demo-apps created → the Deployment from Git rolled out in the workload cluster: %.1fs", time.Since(start).Seconds())

	// A commit scales the agents.
	committed = time.Now()
	sha = git.Commit(t, "clusters: demo with three agents", map[string]string{"clusters/demo.yaml": demo(3)})
	waitClusterJSONPath(t, mgmt, "clusters", "demo", `{.status.tasks[?(@.name=="agent-2")].state}`, "TASK_RUNNING", 3*time.Minute)
	t.Logf("scale commit → third agent task running: %.1fs", time.Since(committed).Seconds())
	waitNodes(t, wl, []string{"demo-agent-0", "demo-agent-1", "demo-agent-2"}, 3*time.Minute)
	flux.WaitKustomizationReady(t, "k3s-clusters", git.Revision(sha), 3*time.Minute)

	// kubectl scale on a Flux-managed cluster lasts until Flux's next reconcile.
	mgmt.run(t, "scale", "k3scluster", "demo", "-n", "clusters", "--replicas=1")
	if got := mgmt.run(t, "get", "k3sc", "demo", "-n", "clusters", "-o", "jsonpath={.spec.agents.replicas}"); got != "1" {
		t.Fatalf("kubectl scale --replicas=1 left spec.agents.replicas at %s", got)
	}
	flux.RequestReconcile(t, clusters)
	waitClusterJSONPath(t, mgmt, "clusters", "demo", "{.spec.agents.replicas}", "3", time.Minute)
	t.Logf("kubectl scale --replicas=1 set back to Git's 3 by Flux's reconcile")

	// A bad spec: the Kustomization names the field the API server refused.
	bad := strings.Replace(demo(3), "replicas: 3", "replicas: -1", 1)
	sha = git.Commit(t, "clusters: a bad replica count", map[string]string{"clusters/demo.yaml": bad})
	k := flux.WaitKustomizationFailed(t, "k3s-clusters", git.Revision(sha), 2*time.Minute)
	if msg := gitops.ReadyMessage(k.Status.Conditions); !strings.Contains(msg, "spec.agents.replicas") {
		t.Fatalf("the failed Kustomization does not name the field: %s", msg)
	}
	if got := mgmt.run(t, "get", "k3sc", "demo", "-n", "clusters", "-o", "jsonpath={.spec.agents.replicas}"); got != "3" {
		t.Fatalf("the refused commit changed the cluster: replicas %s", got)
	}

	// Removing the cluster from Git deletes it (prune: true); the operator tears its
	// framework down. The apps go first, while their cluster still answers.
	if err := c.Delete(ctx, apps); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, apps, 2*time.Minute)
	committed = time.Now()
	sha = git.Commit(t, "clusters: remove demo", nil, "clusters/demo.yaml")
	flux.WaitKustomizationReady(t, "k3s-clusters", git.Revision(sha), 3*time.Minute)
	waitGone(t, c, &v1alpha1.K3sCluster{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "clusters"}}, 3*time.Minute)
	t.Logf("removal commit → K3sCluster deleted, framework torn down: %.1fs", time.Since(committed).Seconds())
	if left := emulatorLeftovers(t, pg.mesosURL(t), "k3s:clusters/demo"); len(left) > 0 {
		t.Fatalf("the emulator still holds: %v", left)
	}

	instance := pg.instance(t)
	pg.stop(t)
	if left := hostguard.Leftovers(instance, state); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// fluxKustomizationsFromDocs reads the Kustomizations of the "## Flux" section of
// docs/gitops.md, by name: the test applies what the page shows.
func fluxKustomizationsFromDocs(t *testing.T, path string) map[string]*kustomizev1.Kustomization {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Flux")
	if start < 0 {
		t.Fatalf("%s has no Flux section", path)
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	out := map[string]*kustomizev1.Kustomization{}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(section, -1) {
		k := &kustomizev1.Kustomization{}
		if err := yaml.UnmarshalStrict([]byte(m[1]), k); err != nil {
			t.Fatalf("a YAML block of %s's Flux section is no Kustomization: %v\n%s", path, err, m[1])
		}
		out[k.Name] = k
	}
	return out
}

// waitKustomizationIn waits until a Kustomization (in any namespace) applied revision and
// is Ready.
func waitKustomizationIn(t *testing.T, c client.Client, k *kustomizev1.Kustomization, revision string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := &kustomizev1.Kustomization{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(k), got); err == nil &&
			apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ReadyCondition) && got.Status.LastAppliedRevision == revision {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("Kustomization %s not Ready with %s within %s: %v %s", k.Name, revision, timeout, err, gitops.ReadyMessage(got.Status.Conditions))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitGone waits until obj no longer exists.
func waitGone(t *testing.T, c client.Client, obj client.Object, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if client.IgnoreNotFound(err) == nil && err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s still there after %s (err %v)", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func kustomizationNames(m map[string]*kustomizev1.Kustomization) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
