package controllers

import (
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// Launch plan order: the datastore first, then the first server, the other servers, and
// the agents last. The bridge never lets a later step overtake an earlier one within an
// offer round; gate() decides which steps may start at all.
const (
	orderDatastore   = 0
	orderFirstServer = 100
	orderServers     = 200
	orderAgents      = 300
)

// k3sReleaseURL is where runtime Binary fetches K3s from when spec.binaryURL is unset.
const k3sReleaseURL = "https://github.com/k3s-io/k3s/releases/download/%s/k3s"

// serverDataVolume is where a server's persistent volume is mounted, relative to the sandbox.
const serverDataVolume = "k3s-data"

// planInputs is everything the desired tasks depend on besides the spec.
type planInputs struct {
	// serverSecrets are the Mesos secrets every server receives: the CAs, the service-account
	// key, the join token and (External datastore) the datastore endpoint.
	serverSecrets map[string][]byte
	// agentSecrets are the agents' secrets: the join token.
	agentSecrets map[string][]byte
	// serverURL is where agents and joining servers register: the endpoint override, or
	// server-0's host and API port once it has them; empty before.
	serverURL string
	// serverAgentIDs pins a server to the agent holding its persistent volume.
	serverAgentIDs map[string]string
}

// desiredTasks is the whole desired state of a cluster as a pure function of its spec:
// every task, in plan order, whether or not it may be launched yet (see gate).
func desiredTasks(c *v1alpha1.K3sCluster, in planInputs) []mesosbridge.TaskSpec {
	s := c.Spec
	tasks := make([]mesosbridge.TaskSpec, 0, int(s.Servers.Replicas+s.Agents.Replicas))
	for i := 0; i < int(s.Servers.Replicas); i++ {
		tasks = append(tasks, serverTask(c, i, in))
	}
	for i := 0; i < int(s.Agents.Replicas); i++ {
		tasks = append(tasks, agentTask(c, i, in))
	}
	return tasks
}

// baseTask holds what every K3s task of the cluster shares.
func baseTask(c *v1alpha1.K3sCluster, role mesosbridge.TaskRole, index int, res v1alpha1.TaskResources, pool v1alpha1.NodePoolSpec) mesosbridge.TaskSpec {
	s := c.Spec
	t := mesosbridge.TaskSpec{
		Name:        fmt.Sprintf("%s-%d", role, index),
		Role:        role,
		Index:       index,
		Resources:   taskResources(res),
		Constraints: constraints(pool.Constraints),
		Runtime:     mesosbridge.Runtime(s.Runtime),
		NetworkMode: mesosbridge.NetworkMode(s.Network.Mode),
		NetworkName: s.Network.Name,
		Env:         envMap(pool.Env),
		K3s: mesosbridge.K3sSettings{
			Version:       s.Version,
			ClusterCIDR:   s.Network.ClusterCIDR,
			ServiceCIDR:   s.Network.ServiceCIDR,
			ClusterDNS:    s.Network.ClusterDNS,
			ClusterDomain: s.Network.ClusterDomain,
			NodeLabels:    pool.NodeLabels,
			NodeTaints:    pool.NodeTaints,
			// Node names must stay unique however Mesos places the tasks: two agents on
			// one Mesos host would otherwise both register under the host name.
			NodeName: fmt.Sprintf("%s-%s", c.Name, fmt.Sprintf("%s-%d", role, index)),
		},
	}
	switch s.Runtime {
	case v1alpha1.RuntimeBinary:
		t.BinaryURL = s.BinaryURL
		if t.BinaryURL == "" {
			t.BinaryURL = fmt.Sprintf(k3sReleaseURL, url.PathEscape(s.Version))
		}
	default:
		t.Image = s.Image
	}
	// With Host networking K3s binds fixed ports besides the offered ones (kubelet 10250,
	// the controller-manager, scheduler and embedded etcd), so two tasks of one role can
	// never share a Mesos agent.
	if s.Network.Mode == v1alpha1.NetworkHost && !hasHostnameUnique(t.Constraints) {
		t.Constraints = append(t.Constraints, mesosbridge.Constraint{Field: "hostname", Operator: mesosbridge.OpUnique})
	}
	return t
}

func serverTask(c *v1alpha1.K3sCluster, i int, in planInputs) mesosbridge.TaskSpec {
	s := c.Spec
	t := baseTask(c, mesosbridge.RoleServer, i, s.Servers.Resources, s.Servers.NodePoolSpec)
	t.Order = orderServers + i
	if i == 0 {
		t.Order = orderFirstServer
	}
	t.Ports = []string{mesosbridge.PortAPI, mesosbridge.PortAPIServer}
	t.Secrets = in.serverSecrets
	t.K3s.TLSSANs = tlsSANs(c)
	// Servers run the control plane only: workloads go to agents, which Mesos sizes and
	// places separately, and a server needs no container runtime on its agent.
	t.K3s.ExtraArgs = append([]string{"--disable-agent"}, s.Servers.Args...)
	if s.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd {
		t.K3s.ClusterInit = i == 0
		if i > 0 {
			t.K3s.ServerURL = in.serverURL
		}
	}
	if disk := s.Servers.Resources.Disk; disk != nil && !disk.IsZero() {
		// The server's state (SQLite or etcd data) lives on a persistent volume, so a
		// relaunch lands on the same agent and finds its data.
		t.Volume = &mesosbridge.VolumeRequest{
			SizeMiB:       mebibytes(*disk),
			ContainerPath: serverDataVolume,
			AgentID:       in.serverAgentIDs[t.Name],
		}
		t.Resources.DiskMiB = 0
	}
	t.SpecHash = mesosbridge.SpecHash(t)
	return t
}

func agentTask(c *v1alpha1.K3sCluster, i int, in planInputs) mesosbridge.TaskSpec {
	s := c.Spec
	t := baseTask(c, mesosbridge.RoleAgent, i, s.Agents.Resources, s.Agents.NodePoolSpec)
	t.Order = orderAgents
	t.Secrets = in.agentSecrets
	t.K3s.ServerURL = in.serverURL
	t.K3s.ExtraArgs = s.Agents.Args
	t.SpecHash = mesosbridge.SpecHash(t)
	return t
}

// tlsSANs are the extra names the server certificate carries: the endpoint override's host.
func tlsSANs(c *v1alpha1.K3sCluster) []string {
	if c.Spec.Kubeconfig.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(c.Spec.Kubeconfig.Endpoint)
	if err != nil || u.Hostname() == "" {
		return nil // the CRD validates the endpoint; nothing to add for a bad one
	}
	return []string{u.Hostname()}
}

func taskResources(r v1alpha1.TaskResources) mesosbridge.Resources {
	out := mesosbridge.Resources{CPUs: r.CPUs.AsApproximateFloat64(), MemMiB: mebibytes(r.Memory)}
	if r.Disk != nil {
		out.DiskMiB = mebibytes(*r.Disk)
	}
	return out
}

// mebibytes converts a Kubernetes quantity of bytes to the MiB Mesos counts in.
func mebibytes(q resource.Quantity) float64 { return q.AsApproximateFloat64() / (1 << 20) }

func constraints(in []v1alpha1.Constraint) []mesosbridge.Constraint {
	if len(in) == 0 {
		return nil
	}
	out := make([]mesosbridge.Constraint, len(in))
	for i, c := range in {
		out[i] = mesosbridge.Constraint{Field: c.Field, Operator: mesosbridge.ConstraintOperator(c.Operator), Value: c.Value}
	}
	return out
}

func hasHostnameUnique(cs []mesosbridge.Constraint) bool {
	for _, c := range cs {
		if strings.EqualFold(c.Field, "hostname") && c.Operator == mesosbridge.OpUnique {
			return true
		}
	}
	return false
}

func envMap(env []v1alpha1.EnvVar) map[string]string {
	if len(env) == 0 {
		return nil
	}
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}
