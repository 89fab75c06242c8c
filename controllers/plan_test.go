package controllers

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// testCluster is a K3sCluster with the CRD's defaults filled in, as the API server
// would store a near-empty spec.
func testCluster(mutate ...func(*v1alpha1.K3sCluster)) *v1alpha1.K3sCluster {
	disk := resource.MustParse("2Gi")
	res := v1alpha1.TaskResources{CPUs: resource.MustParse("1"), Memory: resource.MustParse("1Gi"), Disk: &disk}
	c := &v1alpha1.K3sCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "team", UID: "uid-1"},
		Spec: v1alpha1.K3sClusterSpec{
			Version: "v1.31.4+k3s1", Runtime: v1alpha1.RuntimeImage, Image: "rancher/k3s",
			Servers:   v1alpha1.ServersSpec{Replicas: 1, Resources: res},
			Agents:    v1alpha1.AgentsSpec{Replicas: 1, Resources: res},
			Datastore: v1alpha1.DatastoreSpec{Type: v1alpha1.DatastoreSQLite},
			Network: v1alpha1.NetworkSpec{Mode: v1alpha1.NetworkHost, ClusterCIDR: "10.42.0.0/16",
				ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"},
		},
	}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func names(ts []mesosbridge.TaskSpec) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// mustPlan renders the desired tasks, failing the test on an error.
func mustPlan(t *testing.T, c *v1alpha1.K3sCluster, in planInputs) []mesosbridge.TaskSpec {
	t.Helper()
	if in.token == "" {
		in.token, in.agentToken = "K10hash::server:secret", "K10hash::node:agentsecret"
	}
	tasks, err := desiredTasks(c, in)
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func TestDesiredTasksFollowThePlan(t *testing.T) {
	c := testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Datastore.Type = v1alpha1.DatastoreEmbeddedEtcd
		c.Spec.Servers.Replicas = 3
		c.Spec.Agents.Replicas = 2
		c.Spec.Kubeconfig.Endpoint = "https://k3s.example.com:6443"
	})
	tasks := mustPlan(t, c, planInputs{serverURL: "https://h0:31000"})
	if got, want := names(tasks), []string{"server-0", "server-1", "server-2", "agent-0", "agent-1"}; !slices.Equal(got, want) {
		t.Fatalf("tasks = %v, want %v", got, want)
	}
	s0, s1, a0 := tasks[0], tasks[1], tasks[3]
	if !(s0.Order < s1.Order && s1.Order < a0.Order) {
		t.Errorf("plan order broken: server-0 %d, server-1 %d, agent-0 %d", s0.Order, s1.Order, a0.Order)
	}
	if !strings.Contains(s0.Command, "set -- --cluster-init") || strings.Contains(s0.Command, "--server=https") ||
		strings.Contains(s1.Command, "--cluster-init") || !strings.Contains(s1.Command, " --server=https://h0:31000 ") {
		t.Errorf("embedded etcd: server-0 must init, others join:\n%s\n%s", s0.Command, s1.Command)
	}
	if !slices.Equal(s0.Ports, []string{k3s.PortAPI, k3s.PortAPIServer}) || len(a0.Ports) != 6 || a0.Ports[0] != k3s.PortKubelet {
		t.Errorf("ports: server %v agent %v", s0.Ports, a0.Ports)
	}
	if !strings.Contains(s0.Command, " --tls-san=k3s.example.com ") || !strings.Contains(s0.Command, " --disable-agent") {
		t.Errorf("server command lacks the endpoint SAN or --disable-agent:\n%s", s0.Command)
	}
	if !strings.Contains(s0.Command, " --node-name=demo-server-0") || !strings.Contains(a0.Command, " --node-name=demo-agent-0") {
		t.Errorf("node names:\n%s\n%s", s0.Command, a0.Command)
	}
	if s0.HealthCheck == nil || s0.HealthCheck.Protocol != mesosbridge.HealthHTTPS || s0.HealthCheck.Port != k3s.PortAPI ||
		a0.HealthCheck == nil || a0.HealthCheck.Protocol != mesosbridge.HealthHTTP || a0.HealthCheck.Port != k3s.PortKubeletHealthz {
		t.Errorf("health checks: server %+v agent %+v", s0.HealthCheck, a0.HealthCheck)
	}
	if s0.Volume == nil || s0.Volume.SizeMiB != 2048 || s0.Resources.DiskMiB != 0 {
		t.Errorf("server data must be on a 2048 MiB volume, got %+v, disk %v", s0.Volume, s0.Resources.DiskMiB)
	}
	if a0.Resources != (mesosbridge.Resources{CPUs: 1, MemMiB: 1024, DiskMiB: 2048}) {
		t.Errorf("agent resources = %+v", a0.Resources)
	}
	if string(a0.Secrets[k3s.EnvToken]) != "K10hash::node:agentsecret" || string(s0.Secrets[k3s.EnvAgentToken]) != "agentsecret" {
		t.Errorf("agents must join with the agent token and servers accept it: agent %q, server --agent-token %q",
			a0.Secrets[k3s.EnvToken], s0.Secrets[k3s.EnvAgentToken])
	}
	for _, task := range tasks {
		for name, v := range task.Secrets {
			if task.Role == roleAgent && string(v) == "K10hash::server:secret" {
				t.Errorf("%s holds the server token in %s", task.Name, name)
			}
		}
		if err := mesosbridge.ValidateTaskSpec(task); err != nil {
			t.Errorf("%s is not launchable: %v", task.Name, err)
		}
		if !hasHostnameUnique(task.Constraints) {
			t.Errorf("%s lacks hostname:UNIQUE under Host networking", task.Name)
		}
	}
}

func TestDesiredTasksRuntimesAndConstraints(t *testing.T) {
	bin := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) { c.Spec.Runtime = v1alpha1.RuntimeBinary }), planInputs{})[0]
	if len(bin.Fetch) != 1 || bin.Fetch[0].URL != "https://github.com/k3s-io/k3s/releases/download/v1.31.4+k3s1/k3s" ||
		bin.Container.Type != mesosbridge.ContainerNone || !strings.Contains(bin.Command, `exec "$MESOS_SANDBOX"/k3s server `) {
		t.Errorf("binary runtime: fetch %+v container %+v\n%s", bin.Fetch, bin.Container, bin.Command)
	}
	img := mustPlan(t, testCluster(), planInputs{})[0]
	if img.Container.Type != mesosbridge.ContainerImage || img.Container.Image != "rancher/k3s:v1.31.4-k3s1" ||
		len(img.Fetch) != 0 || !strings.Contains(img.Command, "exec k3s server ") || !strings.Contains(img.Command, ` --log="$MESOS_SANDBOX"/k3s.log`) {
		t.Errorf("image runtime: %+v", img)
	}
	own := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Servers.Constraints = []v1alpha1.Constraint{{Field: "hostname", Operator: v1alpha1.ConstraintUnique}, {Field: "rack", Operator: v1alpha1.ConstraintIs, Value: "r1"}}
	}), planInputs{})[0]
	if len(own.Constraints) != 2 {
		t.Errorf("a user's hostname:UNIQUE must not be doubled: %+v", own.Constraints)
	}
	cni := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Network.Mode, c.Spec.Network.Name = v1alpha1.NetworkCNI, "k3s-net"
	}), planInputs{})[0]
	if hasHostnameUnique(cni.Constraints) || cni.NetworkName != "k3s-net" {
		t.Errorf("CNI tasks have their own addresses and need no host spreading: %+v", cni)
	}
}

func TestDesiredTasksRefuseWhatCannotRun(t *testing.T) {
	c := testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Agents.Env = []v1alpha1.EnvVar{{Name: "K3S_TOKEN", Value: "mine"}}
	})
	_, err := desiredTasks(c, planInputs{token: "t", agentToken: "K10h::node:a", serverURL: "https://h0:31000"})
	if err == nil || !strings.Contains(err.Error(), "spec.agents") || !strings.Contains(err.Error(), "K3S_TOKEN") {
		t.Fatalf("an env var that would shadow the token: %v", err)
	}
}

// What the API server accepted but would never run is refused with the field named: a
// server without a volume (an object stored before disk had its own default), a LIKE
// that does not compile.
func TestDesiredTasksNameTheFieldTheyRefuse(t *testing.T) {
	in := planInputs{token: "t", agentToken: "K10h::node:a", serverURL: "https://h0:31000"}
	for _, tc := range []struct {
		name, want string
		mutate     func(*v1alpha1.K3sCluster)
	}{
		{"server without disk", "spec.servers.resources.disk: a server needs a persistent volume", func(c *v1alpha1.K3sCluster) { c.Spec.Servers.Resources.Disk = nil }},
		{"server with zero disk", "resources.disk", func(c *v1alpha1.K3sCluster) { zero := resource.MustParse("0"); c.Spec.Servers.Resources.Disk = &zero }},
		{"bad LIKE", "spec.agents.constraints: constraint zone LIKE: invalid regular expression", func(c *v1alpha1.K3sCluster) {
			c.Spec.Agents.Constraints = []v1alpha1.Constraint{{Field: "zone", Operator: "LIKE", Value: "eu-(west"}}
		}},
	} {
		if _, err := desiredTasks(testCluster(tc.mutate), in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error saying %q, got %v", tc.name, tc.want, err)
		}
	}
}

func TestSpecHashFollowsTheSpec(t *testing.T) {
	in := planInputs{serverURL: "https://a:1"}
	base := mustPlan(t, testCluster(), in)
	same := mustPlan(t, testCluster(), in)
	args := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) { c.Spec.Agents.Args = []string{"--kubelet-arg=max-pods=50"} }), in)
	if base[0].SpecHash != same[0].SpecHash || base[1].SpecHash != same[1].SpecHash {
		t.Fatal("the same spec hashes differently")
	}
	if base[1].SpecHash == args[1].SpecHash {
		t.Fatal("agent args changed but the agent's hash did not")
	}
	if base[0].SpecHash != args[0].SpecHash {
		t.Fatal("agent args changed the server's hash")
	}
	rotated := mustPlan(t, testCluster(), planInputs{serverURL: "https://a:1", token: "K10hash::server:other", agentToken: "K10hash::node:other"})
	if rotated[0].SpecHash != base[0].SpecHash {
		t.Fatal("a secret's value entered the hash")
	}
}

func observedTask(name string, role mesosbridge.TaskRole, state mesosbridge.TaskState, healthy *bool) mesosbridge.ObservedTask {
	return mesosbridge.ObservedTask{Name: name, Role: role, State: state, Healthy: healthy, TaskID: name + ".x"}
}

func TestGateLaunchesInPlanOrder(t *testing.T) {
	yes, no := true, false
	etcd := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Datastore.Type = v1alpha1.DatastoreEmbeddedEtcd
		c.Spec.Servers.Replicas = 3
		c.Spec.Agents.Replicas = 2
	}), planInputs{serverURL: "https://h0:31000"})
	noBackoff := func(string) bool { return false }
	cases := []struct {
		name      string
		observed  []mesosbridge.ObservedTask
		serverURL string
		backoff   func(string) bool
		want      []string
		waiting   string
	}{
		{"nothing yet: only the first server", nil, "", noBackoff, []string{"server-0"}, "server-1 waits"},
		{"first server starting", []mesosbridge.ObservedTask{observedTask("server-0", roleServer, mesosbridge.TaskRunning, nil)}, "https://h0:31000", noBackoff, []string{"server-0"}, "server-1 waits"},
		{"first server unhealthy", []mesosbridge.ObservedTask{observedTask("server-0", roleServer, mesosbridge.TaskRunning, &no)}, "https://h0:31000", noBackoff, []string{"server-0"}, "server-1 waits"},
		{"first server ready: next server and the agents", []mesosbridge.ObservedTask{observedTask("server-0", roleServer, mesosbridge.TaskRunning, &yes)}, "https://h0:31000", noBackoff, []string{"server-0", "server-1", "agent-0", "agent-1"}, "server-2 waits"},
		{"two servers ready: the third", []mesosbridge.ObservedTask{
			observedTask("server-0", roleServer, mesosbridge.TaskRunning, &yes),
			observedTask("server-1", roleServer, mesosbridge.TaskRunning, &yes)}, "https://h0:31000", noBackoff, []string{"server-0", "server-1", "server-2", "agent-0", "agent-1"}, ""},
		{"a failed agent waits out its back-off", []mesosbridge.ObservedTask{
			observedTask("server-0", roleServer, mesosbridge.TaskRunning, &yes),
			observedTask("server-1", roleServer, mesosbridge.TaskRunning, &yes),
			observedTask("server-2", roleServer, mesosbridge.TaskRunning, &yes),
			observedTask("agent-1", roleAgent, mesosbridge.TaskFailed, nil)}, "https://h0:31000",
			func(n string) bool { return n == "agent-1" }, []string{"server-0", "server-1", "server-2", "agent-0"}, "agent-1 is waiting out its relaunch back-off"},
		{"a live task is always tracked", []mesosbridge.ObservedTask{
			observedTask("server-0", roleServer, mesosbridge.TaskFailed, nil),
			observedTask("agent-0", roleAgent, mesosbridge.TaskRunning, nil)}, "https://h0:31000", noBackoff, []string{"server-0", "agent-0"}, "server-1 waits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := map[string]mesosbridge.ObservedTask{}
			for _, o := range tc.observed {
				obs[o.Name] = o
			}
			got, waiting := gate(etcd, obs, tc.serverURL, true, tc.backoff, mesosOnly)
			if !slices.Equal(names(got), tc.want) {
				t.Fatalf("launchable = %v, want %v", names(got), tc.want)
			}
			if !strings.HasPrefix(waiting, tc.waiting) {
				t.Fatalf("waiting = %q, want prefix %q", waiting, tc.waiting)
			}
		})
	}
}

func TestServerWithUnknownPortIsRelaunched(t *testing.T) {
	running := observedTask("server-0", roleServer, mesosbridge.TaskRunning, nil)
	withPort := running
	withPort.Ports = map[string]uint32{k3s.PortAPI: 31000}
	cases := []struct {
		name     string
		endpoint string
		known    map[string]mesosbridge.ObservedTask
		want     []string
	}{
		{"adopted without its port", "", map[string]mesosbridge.ObservedTask{"server-0": running}, []string{"server-0"}},
		{"port known", "", map[string]mesosbridge.ObservedTask{"server-0": withPort}, nil},
		{"endpoint override makes the port moot", "https://k3s.example.com", map[string]mesosbridge.ObservedTask{"server-0": running}, nil},
		{"no server yet", "", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testCluster(func(c *v1alpha1.K3sCluster) { c.Spec.Kubeconfig.Endpoint = tc.endpoint })
			if got := serverWithUnknownPort(c, tc.known); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnsupportedSpecIsNamed(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*v1alpha1.K3sCluster)
		want   string
	}{
		{"supported", func(*v1alpha1.K3sCluster) {}, ""},
		{"runtime Docker (stored before it was refused)", func(c *v1alpha1.K3sCluster) { c.Spec.Runtime = v1alpha1.RuntimeDocker }, "runtime Docker cannot deliver the cluster's CAs and tokens"},
		{"new cluster at any version", func(c *v1alpha1.K3sCluster) { c.Spec.Version = "v1.32.0+k3s1" }, ""},
		{"version change of a running cluster (a rollout, see versionSkew)", func(c *v1alpha1.K3sCluster) {
			c.Status.Version = "v1.31.4+k3s1"
			c.Spec.Version = "v1.32.0+k3s1"
		}, ""},
		{"MySQL on Mesos", func(c *v1alpha1.K3sCluster) { c.Spec.Datastore.Type = v1alpha1.DatastoreMySQL }, "datastore MySQL run as Mesos tasks is not supported yet"},
		{"etcd on Mesos", func(c *v1alpha1.K3sCluster) { c.Spec.Datastore.Type = v1alpha1.DatastoreEtcd }, "datastore Etcd run as Mesos tasks is not supported yet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := unsupportedSpec(testCluster(tc.mutate))
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAgentsPreloadImages(t *testing.T) {
	c := testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Runtime = v1alpha1.RuntimeBinary
		c.Spec.Agents.PauseImage = "registry.local/pause:3.9"
		c.Spec.Agents.Images = []string{"https://artifacts.local/app.tar", "file:///opt/images/busybox.tar"}
	})
	a := mustPlan(t, c, planInputs{serverURL: "https://h0:31000"})[1]
	if len(a.Fetch) != 3 || a.Fetch[1] != (mesosbridge.FetchURI{URL: "https://artifacts.local/app.tar", OutputFile: "image-0.tar"}) ||
		a.Fetch[2].OutputFile != "image-1.tar" || a.Fetch[2].Extract || a.Fetch[2].Executable {
		t.Errorf("fetch %+v", a.Fetch)
	}
	for _, want := range []string{` --pause-image=registry.local/pause:3.9`, `cp -f "$MESOS_SANDBOX"/image-0.tar "$DATA_DIR/k3s/agent/images/"`, `"$MESOS_SANDBOX"/image-1.tar`} {
		if !strings.Contains(a.Command, want) {
			t.Errorf("agent command lacks %q", want)
		}
	}
}

// Host-network agents, and servers with embedded etcd, hold host-global resources: they
// carry a host-exclusive class that keeps them off hosts where another cluster runs one.
func TestHostNetworkTasksAreHostExclusive(t *testing.T) {
	in := planInputs{serverURL: "https://h0:31000"}
	tasks := mustPlan(t, testCluster(), in)
	if tasks[0].HostExclusive != "" || tasks[1].HostExclusive != hostExclusiveAgent {
		t.Errorf("SQLite server %q, agent %q", tasks[0].HostExclusive, tasks[1].HostExclusive)
	}
	etcd := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) { c.Spec.Datastore.Type = v1alpha1.DatastoreEmbeddedEtcd }), in)
	if etcd[0].HostExclusive != hostExclusiveEtcd {
		t.Errorf("embedded etcd server %q", etcd[0].HostExclusive)
	}
	cni := mustPlan(t, testCluster(func(c *v1alpha1.K3sCluster) {
		c.Spec.Network.Mode, c.Spec.Network.Name = v1alpha1.NetworkCNI, "k3s-net"
	}), in)
	if cni[1].HostExclusive != "" {
		t.Errorf("a CNI agent has an address of its own, yet %q", cni[1].HostExclusive)
	}
}
