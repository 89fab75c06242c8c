package controllers_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// TestDeployMinimalCluster: a minimal K3sCluster is launched in plan order, becomes
// Ready, and its kubeconfig Secret is a working client config signed by the cluster's CA.
func TestDeployMinimalCluster(t *testing.T) {
	h := newHarness(t, 3)
	h.apply("mini", `{kubeconfig: {endpoint: "https://k3s.mini.example.com:6443"}}`)
	h.waitCondition("mini", v1alpha1.ConditionReady, metav1.ConditionTrue, waitDeploy)
	h.waitCondition("mini", v1alpha1.ConditionAgentsReady, metav1.ConditionTrue, waitDeploy)

	c := h.get("mini")
	if c.Status.FrameworkID == "" || c.Status.Phase != v1alpha1.PhaseRunning {
		t.Fatalf("status: frameworkID %q phase %q", c.Status.FrameworkID, c.Status.Phase)
	}
	for _, typ := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled,
		v1alpha1.ConditionMesosConnected, v1alpha1.ConditionDatastoreReady, v1alpha1.ConditionServersReady,
		v1alpha1.ConditionAgentsReady, v1alpha1.ConditionKubeconfigAvailable, v1alpha1.ConditionPaused} {
		if cond := metaCondition(c, typ); cond == nil || cond.Reason == "" || cond.Message == "" {
			t.Errorf("condition %s missing or without reason/message: %+v", typ, cond)
		}
	}

	// Plan order on Mesos: agent-0 was launched only after server-0 was healthy.
	live := h.liveTasks("mini")
	if len(live["server-0"]) != 1 || len(live["agent-0"]) != 1 || len(live) != 2 {
		t.Fatalf("want exactly server-0 and agent-0 running, got %v", h.mesosTasks())
	}
	serverHealthy := firstStatusTime(live["server-0"][0], func(s statusView) bool { return s.Healthy != nil && *s.Healthy })
	agentLaunched := firstStatusTime(live["agent-0"][0], func(statusView) bool { return true })
	if serverHealthy == 0 || agentLaunched < serverHealthy {
		t.Fatalf("agent-0 launched at %f, before server-0 was healthy at %f", agentLaunched, serverHealthy)
	}

	// The kubeconfig Secret is in the Cluster API form and parses with client-go.
	secret := &corev1.Secret{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "mini-kubeconfig"}, secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != v1alpha1.KubeconfigSecretType || secret.Labels[v1alpha1.ClusterNameLabel] != "mini" {
		t.Fatalf("secret type %q labels %v", secret.Type, secret.Labels)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != c.UID {
		t.Fatalf("kubeconfig secret not owned by the cluster: %+v", secret.OwnerReferences)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(secret.Data["value"])
	if err != nil {
		t.Fatalf("kubeconfig does not parse: %v", err)
	}
	if cfg.Host != "https://k3s.mini.example.com:6443" || cfg.Host != c.Status.Endpoint {
		t.Fatalf("kubeconfig server %q, status endpoint %q", cfg.Host, c.Status.Endpoint)
	}

	// Its client certificate verifies against the client CA in <name>-ca, for client auth.
	ca := &corev1.Secret{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "mini-ca"}, ca); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.Data["client-ca.crt"]) {
		t.Fatal("no client CA in mini-ca")
	}
	block, _ := pem.Decode(cfg.CertData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify against the cluster's client CA: %v", err)
	}
	if string(cfg.CAData) != string(ca.Data["server-ca.crt"]) {
		t.Fatal("kubeconfig does not trust the cluster's server CA")
	}

	// The join token is K3s's secure form, bound to the server CA.
	token := &corev1.Secret{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: "mini-token"}, token); err != nil {
		t.Fatal(err)
	}
	if tok := string(token.Data["token"]); len(tok) < 70 || tok[:3] != "K10" {
		t.Fatalf("token %q is not in K3s's secure form", tok)
	}
}
