package gitops

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

const namespaceYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: app
`

func configMapYAML(name, greeting string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata:
  name: ` + name + `
  namespace: app
data:
  greeting: ` + greeting + `
`
}

// A Deployment without selector and containers: the API server's validation rejects it
// (Flux's server-side dry-run sees that before anything is applied).
const badDeploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
  namespace: app
spec:
  template:
    metadata:
      labels:
        app: broken
    spec:
      containers: []
`

// TestFluxAppliesFromGit drives a real source-controller and kustomize-controller from a
// Git repository on 127.0.0.1: first apply, a change, a commit the API server rejects, and
// pruning an object removed from Git.
func TestFluxAppliesFromGit(t *testing.T) {
	env := StartEnv(t)
	git := NewGitServer(t)
	flux := StartFlux(t, env)
	t.Logf("controllers ready in %s", flux.Started.Round(time.Millisecond))
	ctx := context.Background()

	sha := git.Commit(t, "app: namespace and config", map[string]string{
		"deploy/namespace.yaml": namespaceYAML,
		"deploy/config.yaml":    configMapYAML("config", "hello"),
	})
	start := time.Now()
	// 5 s between polls of the branch: commits are picked up without help within that.
	repo := GitRepository("fleet", git, 5*time.Second)
	if err := env.Client.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	k := Kustomization("app", "fleet", "./deploy", time.Minute)
	if err := env.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	flux.WaitGitRepository(t, "fleet", git.Revision(sha), time.Minute)
	t.Logf("GitRepository created → Ready with %s: %s", sha[:8], time.Since(start).Round(time.Millisecond))
	flux.WaitKustomizationReady(t, "app", git.Revision(sha), time.Minute)
	t.Logf("GitRepository created → Kustomization Ready (first apply): %s", time.Since(start).Round(time.Millisecond))
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["greeting"] != "hello" {
		t.Fatalf("greeting = %q, want hello", cm.Data["greeting"])
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "app"}, &corev1.Namespace{}); err != nil {
		t.Fatal(err)
	}

	// A change found by polling alone (spec.interval 5 s).
	sha = git.Commit(t, "app: new greeting", map[string]string{"deploy/config.yaml": configMapYAML("config", "bonjour")})
	start = time.Now()
	flux.WaitKustomizationReady(t, "app", git.Revision(sha), time.Minute)
	t.Logf("commit → Kustomization Ready (GitRepository polling every 5 s): %s", time.Since(start).Round(time.Millisecond))
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["greeting"] != "bonjour" {
		t.Fatalf("greeting = %q, want bonjour", cm.Data["greeting"])
	}

	// The same, with `flux reconcile source git`'s annotation right after the push.
	sha = git.Commit(t, "app: another greeting", map[string]string{"deploy/config.yaml": configMapYAML("config", "hola")})
	start = time.Now()
	flux.RequestReconcile(t, repo)
	flux.WaitKustomizationReady(t, "app", git.Revision(sha), time.Minute)
	t.Logf("commit → Kustomization Ready (reconcile requested on the GitRepository): %s", time.Since(start).Round(time.Millisecond))

	// A commit the API server rejects: the Kustomization goes Ready=False with the
	// validation message, and nothing of that revision is applied.
	bad := git.Commit(t, "app: broken deployment", map[string]string{
		"deploy/broken.yaml": badDeploymentYAML,
		"deploy/config.yaml": configMapYAML("config", "ciao"),
	})
	start = time.Now()
	flux.RequestReconcile(t, repo)
	k = flux.WaitKustomizationFailed(t, "app", git.Revision(bad), time.Minute)
	t.Logf("bad commit → Kustomization Ready=False: %s", time.Since(start).Round(time.Millisecond))
	msg := ReadyMessage(k.Status.Conditions)
	t.Logf("Ready=False message: %s", msg)
	for _, want := range []string{"Deployment/app/broken", "spec.selector", "spec.template.spec.containers"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not mention %q", msg, want)
		}
	}
	if k.Status.LastAppliedRevision != git.Revision(sha) {
		t.Errorf("lastAppliedRevision = %q, want the last good %q", k.Status.LastAppliedRevision, git.Revision(sha))
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["greeting"] != "hola" {
		t.Errorf("greeting = %q after the rejected commit, want hola (nothing of it applied)", cm.Data["greeting"])
	}

	// Removing the ConfigMap (and the broken Deployment) from Git prunes it.
	sha = git.Commit(t, "app: drop config", nil, "deploy/config.yaml", "deploy/broken.yaml")
	start = time.Now()
	flux.RequestReconcile(t, repo)
	flux.WaitKustomizationReady(t, "app", git.Revision(sha), time.Minute)
	t.Logf("removal commit → Kustomization Ready: %s", time.Since(start).Round(time.Millisecond))
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, cm)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("ConfigMap app/config after it left Git: err = %v, want NotFound (pruned)", err)
	}
	t.Logf("git server answered %d HTTP requests", git.Requests())
}

// TestFluxAppliesToRemoteCluster applies through spec.kubeConfig.secretRef into a second
// API server, whose admin kubeconfig is a Secret of the first under key value, the form of
// the operator's "<name>-kubeconfig" Secret.
func TestFluxAppliesToRemoteCluster(t *testing.T) {
	mgmt := StartEnv(t)
	remote := StartEnv(t)
	git := NewGitServer(t)
	flux := StartFlux(t, mgmt)
	ctx := context.Background()

	kubeconfig, err := os.ReadFile(remote.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{Data: map[string][]byte{"value": kubeconfig}}
	secret.Name, secret.Namespace = "workload-kubeconfig", Namespace
	if err := mgmt.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}

	sha := git.Commit(t, "workload: namespace and config", map[string]string{
		"workload/namespace.yaml": namespaceYAML,
		"workload/config.yaml":    configMapYAML("config", "remote"),
	})
	start := time.Now()
	if err := mgmt.Client.Create(ctx, GitRepository("fleet", git, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	k := KubeConfigSecret(Kustomization("workload", "fleet", "./workload", time.Minute), "workload-kubeconfig")
	if err := mgmt.Client.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	flux.WaitKustomizationReady(t, "workload", git.Revision(sha), time.Minute)
	t.Logf("GitRepository created → remote Kustomization Ready: %s", time.Since(start).Round(time.Millisecond))

	cm := &corev1.ConfigMap{}
	if err := remote.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, cm); err != nil {
		t.Fatalf("ConfigMap app/config in the remote cluster: %v", err)
	}
	if cm.Data["greeting"] != "remote" {
		t.Fatalf("remote greeting = %q, want remote", cm.Data["greeting"])
	}
	err = mgmt.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, &corev1.ConfigMap{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("ConfigMap app/config in the management cluster: err = %v, want NotFound", err)
	}
}

// TestFluxOnAnotherAPIServer runs Flux against an API server known only by its kubeconfig
// file and started without Flux's CRDs, as the playground's (hack/dev) is.
func TestFluxOnAnotherAPIServer(t *testing.T) {
	Assets(t)
	env, err := testenv.Start() // the project's CRDs only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	cfg, err := clientcmd.BuildConfigFromFlags("", env.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	InstallCRDs(t, cfg)
	git := NewGitServer(t)
	flux := StartFluxAt(t, env.KubeconfigPath, c)
	ctx := context.Background()

	sha := git.Commit(t, "app", map[string]string{
		"deploy/namespace.yaml": namespaceYAML,
		"deploy/config.yaml":    configMapYAML("config", "elsewhere"),
	})
	if err := c.Create(ctx, GitRepository("fleet", git, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, Kustomization("app", "fleet", "./deploy", time.Minute)); err != nil {
		t.Fatal(err)
	}
	flux.WaitKustomizationReady(t, "app", git.Revision(sha), time.Minute)
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "app", Name: "config"}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["greeting"] != "elsewhere" {
		t.Fatalf("greeting = %q, want elsewhere", cm.Data["greeting"])
	}
}
