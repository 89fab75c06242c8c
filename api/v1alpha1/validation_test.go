package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/hack/testenv"
)

// newCluster builds a K3sCluster from a YAML spec fragment, the way a user writes one.
func newCluster(t *testing.T, name, specYAML string) *unstructured.Unstructured {
	t.Helper()
	spec := map[string]any{}
	if err := yaml.Unmarshal([]byte(specYAML), &spec); err != nil {
		t.Fatalf("bad test spec: %v", err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("K3sCluster")
	u.SetNamespace("default")
	u.SetName(name)
	return u
}

// createCluster creates a K3sCluster from a YAML spec fragment in namespace ns, deletes it
// when the test ends, and returns it as the API server stored it (defaults applied).
func createCluster(t *testing.T, ns, name, specYAML string) *v1alpha1.K3sCluster {
	t.Helper()
	ctx := context.Background()
	obj := newCluster(t, name, specYAML)
	obj.SetNamespace(ns)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })
	var c v1alpha1.K3sCluster
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestValidationRejectsBadSpecs sends each bad input to the real API server and checks
// that it is refused with a message naming the offending field.
func TestValidationRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name      string
		spec      string
		wantField string // the field path the error must name
		wantText  string // a phrase the message must contain
	}{
		{"version without v", `version: 1.31.4+k3s1`, "spec.version", "should match"},
		{"version without k3s suffix", `version: v1.31.4`, "spec.version", "should match"},
		{"negative agents", `agents: {replicas: -1}`, "spec.agents.replicas", "greater than or equal to 0"},
		{"zero servers", `servers: {replicas: 0}`, "spec.servers.replicas", "greater than or equal to 1"},
		{"even servers with embedded etcd", `{datastore: {type: EmbeddedEtcd}, servers: {replicas: 2}}`, "spec.servers.replicas", "odd number of servers"},
		{"several servers with SQLite", `servers: {replicas: 3}`, "spec.servers.replicas", "SQLite supports exactly one server"},
		{"External without its Secret", `datastore: {type: External}`, "spec.datastore.externalSecretRef", "needs externalSecretRef"},
		{"zero CPUs", `servers: {resources: {cpus: "0", memory: 1Gi}}`, "spec.servers.resources.cpus", "cpus must be greater than zero"},
		{"negative memory", `agents: {resources: {cpus: "1", memory: "-1Gi"}}`, "spec.agents.resources.memory", "memory must be greater than zero"},
		{"server without a volume", `servers: {resources: {disk: "0"}}`, "spec.servers.resources.disk", "a server needs a persistent volume"},
		{"too many servers", `{datastore: {type: EmbeddedEtcd}, servers: {replicas: 9}}`, "spec.servers.replicas", "less than or equal to 7"},
		{"a hundred million agents", `agents: {replicas: 100000000}`, "spec.agents.replicas", "less than or equal to 1000"},
		{"Hostname with a capital H", `agents: {constraints: [{field: Hostname, operator: UNIQUE}]}`, "spec.agents.constraints[0].field", "spelt hostname"},
		{"reserved env name", `agents: {env: [{name: HOST, value: x}]}`, "spec.agents.env[0].name", "env name is reserved"},
		{"env name that would carry a secret", `servers: {env: [{name: K3S_TOKEN, value: guessable}]}`, "spec.servers.env[0].name", "carry the cluster's secrets"},
		{"failover timeout under a minute", `mesos: {failoverTimeout: 30s}`, "spec.mesos.failoverTimeout", "at least 1m"},
		{"unknown constraint operator", `servers: {constraints: [{field: hostname, operator: NEAR}]}`, "spec.servers.constraints[0].operator", "Unsupported value"},
		{"LIKE without value", `agents: {constraints: [{field: zone, operator: LIKE}]}`, "spec.agents.constraints[0].value", "needs a value"},
		{"MAX_PER not a number", `agents: {constraints: [{field: hostname, operator: MAX_PER, value: two}]}`, "spec.agents.constraints[0].value", "positive whole number"},
		{"UNIQUE with a value", `servers: {constraints: [{field: hostname, operator: UNIQUE, value: x}]}`, "spec.servers.constraints[0].value", "UNIQUE takes no value"},
		{"unknown network mode", `network: {mode: Bridge}`, "spec.network.mode", "Unsupported value"},
		{"CNI without network name", `network: {mode: CNI}`, "spec.network.name", "needs the name"},
		{"unknown runtime", `runtime: Podman`, "spec.runtime", "Unsupported value"},
		{"binaryURL with an unsupported scheme", `{runtime: Binary, binaryURL: "ftp://example.com/k3s"}`, "spec.binaryURL", "file://, http:// or https://"},
		{"binaryURL with runtime Image", `{runtime: Image, binaryURL: "https://example.com/k3s"}`, "spec.binaryURL", "applies to runtime Binary only"},
		{"runtime Docker", `runtime: Docker`, "spec.runtime", "the Docker containerizer does not resolve Mesos secrets"},
		{"cluster CIDR without prefix", `network: {clusterCIDR: 10.42.0.0}`, "spec.network.clusterCIDR", "must be a CIDR"},
		{"plain-HTTP kubeconfig endpoint", `kubeconfig: {endpoint: "http://k3s.example.com"}`, "spec.kubeconfig.endpoint", "https:// URL"},
		{"malformed node taint", `agents: {nodeTaints: ["dedicated"]}`, "spec.agents.nodeTaints[0]", "should match"},
		{"TLS CA and skip-verify together", `mesos: {tls: {caSecretRef: {name: ca}, insecureSkipVerify: true}}`, "spec.mesos.tls", "mutually exclusive"},
		{"even etcd datastore replicas", `datastore: {type: Etcd, replicas: 2}`, "spec.datastore.replicas", "odd number of replicas"},
		{"maxUnavailable over 100%", `rollout: {maxUnavailable: "150%"}`, "spec.rollout.maxUnavailable", "non-negative number or a percentage"},
		{"zero failure threshold", `remediation: {failureThreshold: 0}`, "spec.remediation.failureThreshold", "greater than or equal to 1"},
		{"the default role *", `mesos: {role: "*"}`, "spec.mesos.role", "should match"},
		{"malformed failover timeout", `mesos: {failoverTimeout: "a week"}`, "spec.mesos.failoverTimeout", ""},
		{"image tag of another version", `{runtime: Image, version: v1.31.4+k3s1, image: "rancher/k3s:v1.30.2-k3s1"}`, "spec.image", "not spec.version"},
		{"image with a malformed digest", `{runtime: Image, image: "rancher/k3s@sha256:abc"}`, "spec.image", "should match"},
	}
	ctx := context.Background()
	t.Run("a name too long for its node names", func(t *testing.T) {
		obj := newCluster(t, strings.Repeat("n", 54), `{}`)
		err := env.Client.Create(ctx, obj)
		if err == nil {
			_ = env.Client.Delete(ctx, obj)
			t.Fatal("a 54-character cluster name was accepted")
		}
		if !strings.Contains(err.Error(), "metadata.name must be at most 53 characters") {
			t.Fatalf("error does not name metadata.name and the limit: %v", err)
		}
	})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := newCluster(t, fmt.Sprintf("bad-%d", i), tc.spec)
			err := env.Client.Create(ctx, obj)
			if err == nil {
				_ = env.Client.Delete(ctx, obj)
				t.Fatalf("API server accepted bad spec %q", tc.spec)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error does not name field %s: %v", tc.wantField, err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error does not say %q: %v", tc.wantText, err)
			}
		})
	}
}

// TestDatastoreTypeIsImmutable checks the transition rule: an update that changes
// datastore.type is refused and the stored object keeps its type.
func TestDatastoreTypeIsImmutable(t *testing.T) {
	ctx := context.Background()
	obj := newCluster(t, "immutable-datastore", `datastore: {type: EmbeddedEtcd}`)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })

	if err := unstructured.SetNestedField(obj.Object, "SQLite", "spec", "datastore", "type"); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Update(ctx, obj)
	if err == nil || !strings.Contains(err.Error(), "spec.datastore.type") || !strings.Contains(err.Error(), "cannot be changed after creation") {
		t.Fatalf("want the type change refused naming spec.datastore.type, got %v", err)
	}
	var stored v1alpha1.K3sCluster
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Spec.Datastore.Type != v1alpha1.DatastoreEmbeddedEtcd {
		t.Fatalf("stored datastore type changed to %s", stored.Spec.Datastore.Type)
	}

	// Other fields of the datastore stay editable.
	var fresh v1alpha1.K3sCluster
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), &fresh); err != nil {
		t.Fatal(err)
	}
	fresh.Spec.Servers.Replicas = 3
	if err := env.Client.Update(ctx, &fresh); err != nil {
		t.Fatalf("scaling servers of an EmbeddedEtcd cluster to 3 was refused: %v", err)
	}
}

// TestVersionChangesFollowTheSkewRules: spec.version may move within its Kubernetes
// minor (up or down) and up one minor; a skipped minor or a minor downgrade is refused
// naming spec.version, and the stored version stays.
func TestVersionChangesFollowTheSkewRules(t *testing.T) {
	ctx := context.Background()
	obj := newCluster(t, "skew", `version: v1.30.2+k3s1`)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })
	for _, step := range []struct {
		to string
		ok bool
	}{
		{"v1.30.4+k3s1", true}, {"v1.30.1+k3s2", true}, {"v1.32.0+k3s1", false}, {"v1.31.4+k3s1", true},
		{"v1.30.4+k3s1", false}, {"v2.31.4+k3s1", false}, {"v1.31.1+k3s1", true},
	} {
		var c v1alpha1.K3sCluster
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), &c); err != nil {
			t.Fatal(err)
		}
		from := c.Spec.Version
		c.Spec.Version = step.to
		err := env.Client.Update(ctx, &c)
		switch {
		case step.ok && err != nil:
			t.Errorf("%s -> %s refused: %v", from, step.to, err)
		case !step.ok && err == nil:
			t.Errorf("%s -> %s accepted", from, step.to)
		case !step.ok && (!strings.Contains(err.Error(), "spec.version") || !strings.Contains(err.Error(), "up one minor")):
			t.Errorf("%s -> %s: the error does not name spec.version and the rule: %v", from, step.to, err)
		}
	}
}

// A digest pins the image whatever the version; a tag equal to the version is accepted.
func TestImageTagOrDigest(t *testing.T) {
	ctx := context.Background()
	for i, image := range []string{"rancher/k3s@sha256:" + strings.Repeat("ab", 32), "rancher/k3s:v1.31.4-k3s1", "registry.example.com:5000/rancher/k3s"} {
		obj := newCluster(t, fmt.Sprintf("image-%d", i), fmt.Sprintf(`{runtime: Image, version: v1.31.4+k3s1, image: %q}`, image))
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Errorf("image %s refused: %v", image, err)
			continue
		}
		_ = env.Client.Delete(ctx, obj)
	}
}

// TestDefaultsGiveAWorkingSingleServerCluster checks what the API server fills into an
// empty spec.
func TestDefaultsGiveAWorkingSingleServerCluster(t *testing.T) {
	c := createCluster(t, "default", "defaults", `{}`)
	s := c.Spec
	checks := []struct {
		field     string
		got, want any
	}{
		{"version", s.Version, "v1.31.4+k3s1"},
		{"runtime", s.Runtime, v1alpha1.RuntimeBinary},
		{"image", s.Image, "rancher/k3s"},
		{"servers.replicas", s.Servers.Replicas, int32(1)},
		{"servers.resources.cpus", s.Servers.Resources.CPUs.String(), "1"},
		{"servers.resources.memory", s.Servers.Resources.Memory.String(), "1Gi"},
		{"servers.resources.disk", s.Servers.Resources.Disk.String(), "2Gi"},
		{"agents.replicas", s.Agents.Replicas, int32(1)},
		{"agents.resources.memory", s.Agents.Resources.Memory.String(), "1Gi"},
		{"datastore.type", s.Datastore.Type, v1alpha1.DatastoreSQLite},
		{"mesos.role", s.Mesos.Role, "mesosk3s"},
		{"mesos.failoverTimeout", s.Mesos.FailoverTimeout.Duration.String(), "168h0m0s"},
		{"network.mode", s.Network.Mode, v1alpha1.NetworkHost},
		{"network.clusterCIDR", s.Network.ClusterCIDR, "10.42.0.0/16"},
		{"network.serviceCIDR", s.Network.ServiceCIDR, "10.43.0.0/16"},
		{"network.clusterDNS", s.Network.ClusterDNS, "10.43.0.10"},
		{"network.clusterDomain", s.Network.ClusterDomain, "cluster.local"},
		{"rollout.maxUnavailable", s.Rollout.MaxUnavailable.String(), "1"},
		{"remediation.relaunchBackoff", s.Remediation.RelaunchBackoff.Duration.String(), "10s"},
		{"remediation.failureThreshold", s.Remediation.FailureThreshold, int32(5)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("default %s = %v, want %v", ch.field, ch.got, ch.want)
		}
	}
}

// TestPartialResourcesKeepTheOtherDefaults: each resource field left out takes its own
// default, so a server given only cpus (or cpus and memory) still gets its persistent
// volume. Before, disk defaulted only when resources was absent: {cpus, memory} gave a
// server no volume, and its next relaunch started an empty K3s.
func TestPartialResourcesKeepTheOtherDefaults(t *testing.T) {
	for i, tc := range []struct{ spec, cpus, memory, disk string }{
		{`servers: {resources: {cpus: "2"}}`, "2", "1Gi", "2Gi"},
		{`servers: {resources: {cpus: "2", memory: 4Gi}}`, "2", "4Gi", "2Gi"},
		{`servers: {resources: {disk: 10Gi}}`, "1", "1Gi", "10Gi"},
	} {
		r := createCluster(t, "default", fmt.Sprintf("partial-%d", i), tc.spec).Spec.Servers.Resources
		if r.CPUs.String() != tc.cpus || r.Memory.String() != tc.memory || r.Disk == nil || r.Disk.String() != tc.disk {
			t.Errorf("%s stored as cpus %s memory %s disk %v, want %s %s %s", tc.spec, r.CPUs.String(), r.Memory.String(), r.Disk, tc.cpus, tc.memory, tc.disk)
		}
	}
}

// TestDataIdentityIsImmutable: a live cluster's role and server disk size cannot change,
// since either would give the servers fresh, empty volumes under the same persistence IDs.
func TestDataIdentityIsImmutable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, field, want string
		change            func(*v1alpha1.K3sCluster)
	}{
		{"role", "spec.mesos.role", "mesos.role cannot change", func(c *v1alpha1.K3sCluster) { c.Spec.Mesos.Role = "other" }},
		{"disk", "spec.servers.resources.disk", "cannot change on a live cluster", func(c *v1alpha1.K3sCluster) {
			d := resource.MustParse("4Gi")
			c.Spec.Servers.Resources.Disk = &d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := createCluster(t, "default", "identity-"+tc.name, `{}`)
			tc.change(c)
			err := env.Client.Update(ctx, c)
			if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want the change refused naming %s, got %v", tc.field, err)
			}
		})
	}
	// Other resources of the servers stay editable (that is a rollout, not new data).
	c := createCluster(t, "default", "identity-cpus", `{}`)
	c.Spec.Servers.Resources.CPUs = resource.MustParse("2")
	if err := env.Client.Update(ctx, c); err != nil {
		t.Fatalf("changing the servers' cpus was refused: %v", err)
	}
}

// TestSamplesAreAccepted applies every file in config/samples to the real API server.
func TestSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "cluster_*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least a minimal and a full sample, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(data, &obj.Object); err != nil {
				t.Fatal(err)
			}
			obj.SetNamespace("samples")
			ensureNamespace(t, "samples")
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("sample refused: %v", err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })
		})
	}
}
