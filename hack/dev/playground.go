package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/hack/hostguard"
	"github.com/mesosk3s/mesosk3s/hack/testenv"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

// Agent attributes the playground sample's constraints use: K3s servers go to the
// control-plane hosts, K3s agents to the worker hosts. Every emulated Mesos agent is a host
// of its own (a network namespace with its own address) whose containers live in cgroups,
// as the Linux launcher and cgroups isolators make them: real K3s agents run there.
const (
	attrPlayground   = "playground"
	hostControlPlane = "control-plane"
	hostWorkers      = "workers"
)

type playground struct {
	o   options
	out io.Writer

	api      *testenv.Env
	mesos    *mesostest.Server
	machine  hostguard.Snapshot
	hosts    []string // the emulated hosts' addresses, control plane first
	demoHost string   // a node's address, where the demo's NodePort answers
	operator *operatorProcess
	logSync  func()

	kubeconfig string
	cluster    client.ObjectKey
}

func (p *playground) step(format string, args ...any) {
	fmt.Fprintf(p.out, "==> "+format+"\n", args...)
}

func (p *playground) start(ctx context.Context) error {
	p.step("starting the management API server (kube-apiserver + etcd from %s)", p.o.assetsPath)
	if p.o.assetsPath == "" {
		return fmt.Errorf("no envtest binaries: pass --assets or set KUBEBUILDER_ASSETS (make dev does)")
	}
	os.Setenv("KUBEBUILDER_ASSETS", p.o.assetsPath)
	api, err := testenv.Start()
	if err != nil {
		return err
	}
	p.api = api
	p.kubeconfig = filepath.Join(p.o.stateDir, "kubeconfig")
	data, err := os.ReadFile(api.KubeconfigPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.kubeconfig, data, 0o600); err != nil {
		return err
	}
	p.step("CRDs installed; management kubeconfig: %s", p.kubeconfig)

	sandboxes := filepath.Join(p.o.stateDir, "sandboxes")
	if err := os.RemoveAll(sandboxes); err != nil {
		return err
	}
	zl, err := fileLogger(filepath.Join(p.o.stateDir, "mesos.log"))
	if err != nil {
		return err
	}
	p.logSync = func() { _ = zl.Sync() }
	p.mesos, err = mesostest.NewServerAt(p.o.mesosAddr, mesostest.Options{
		AllocationInterval: 200 * time.Millisecond,
		HeartbeatInterval:  5 * time.Second,
		SandboxRoot:        sandboxes,
		ServeAdmin:         true,
		Logger:             zapr.NewLogger(zl),
	})
	if err != nil {
		return fmt.Errorf("starting the Mesos master emulator: %w", err)
	}
	p.machine = hostguard.Take()
	for _, a := range p.agents() {
		if _, err := p.mesos.TryAddAgent(a); err != nil {
			return fmt.Errorf("adding a Mesos agent (real K3s nodes need root, iproute2 and cgroup v1: hack/node-prereqs.sh): %w", err)
		}
	}
	for _, a := range p.mesos.State().Slaves {
		p.hosts = append(p.hosts, a.Hostname)
	}
	p.step("Mesos master emulator at %s (instance %s) with %d agents, each a host of its own: %s (logs: %s)", p.mesos.URL(),
		p.mesos.Instance(), len(p.hosts), strings.Join(p.hosts, ", "), filepath.Join(p.o.stateDir, "mesos.log"))

	if err := p.runOperator(); err != nil {
		return err
	}
	return p.applySample(ctx)
}

func (p *playground) runOperator() error {
	opLog := filepath.Join(p.o.stateDir, "operator.log")
	var err error
	if p.operator, err = startOperator(p.o.manager, p.kubeconfig, p.mesos.URL(), opLog); err != nil {
		return err
	}
	p.step("operator running (logs: %s)", opLog)
	return nil
}

// restartOperator stops the operator (Mesos keeps its tasks, as when a real operator is
// upgraded) and starts the binary found at --manager now.
func (p *playground) restartOperator() error {
	p.step("restarting the operator from %s", p.o.manager)
	p.operator.stop(5 * time.Second)
	return p.runOperator()
}

// agents are the Mesos agents: p.o.servers control-plane hosts, p.o.agents worker hosts.
func (p *playground) agents() []mesostest.AgentConfig {
	host := func(kind string) mesostest.AgentConfig {
		return mesostest.AgentConfig{
			CPUs: 2, MemMiB: 4096, DiskMiB: 8192, Ports: []mesostest.PortRange{{Begin: 31000, End: 31099}},
			Attributes:   map[string]string{attrPlayground: kind},
			RunProcesses: true, OwnHost: true, Cgroups: true,
		}
	}
	var agents []mesostest.AgentConfig
	for i := 0; i < p.o.servers; i++ {
		agents = append(agents, host(hostControlPlane))
	}
	for i := 0; i < p.o.agents; i++ {
		agents = append(agents, host(hostWorkers))
	}
	return agents
}

// applySample creates the playground K3sCluster with binaryURL pointing at the local
// K3s binary, which the emulator's fetcher copies into the task's sandbox.
func (p *playground) applySample(ctx context.Context) error {
	data, err := os.ReadFile(p.o.sample)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		return fmt.Errorf("%s: %w", p.o.sample, err)
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	if err := unstructured.SetNestedField(obj.Object, "file://"+p.o.k3sBinary, "spec", "binaryURL"); err != nil {
		return err
	}
	if err := p.withNodeAssets(obj); err != nil {
		return err
	}
	if p.o.clusterFile != "" {
		out, err := yaml.Marshal(obj.Object)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p.o.clusterFile, out, 0o644); err != nil {
			return err
		}
		p.step("wrote the K3sCluster for this machine to %s: apply it yourself (kubectl --kubeconfig %s apply -f, or from Git)", p.o.clusterFile, p.kubeconfig)
		return nil
	}
	if err := p.api.Client.Create(ctx, obj); err != nil {
		return fmt.Errorf("applying %s: %w", p.o.sample, err)
	}
	p.cluster = client.ObjectKeyFromObject(obj)
	p.step("applied K3sCluster %s (runtime Binary, binaryURL file://%s; node assets from %s)", p.cluster, p.o.k3sBinary, p.o.nodeAssets)
	return nil
}

// waitReady shows progress until the cluster is Ready.
func (p *playground) waitReady(ctx context.Context) error {
	p.step("waiting for %s to be Ready (up to %s)…", p.cluster.Name, p.o.waitReady)
	start := time.Now()
	deadline := time.NewTimer(p.o.waitReady)
	defer deadline.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		c := &v1alpha1.K3sCluster{}
		if err := p.api.Client.Get(ctx, p.cluster, c); err == nil {
			if line := progressLine(c); line != last && c.Status.Phase != "" {
				fmt.Fprintf(p.out, "    [%5.1fs] %s\n", time.Since(start).Seconds(), line)
				last = line
			}
			if meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionReady) {
				p.step("%s is Ready after %.1fs", p.cluster.Name, time.Since(start).Seconds())
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for Ready")
		case <-deadline.C:
			return fmt.Errorf("%s not Ready after %s; see %s and %s", p.cluster.Name, p.o.waitReady,
				filepath.Join(p.o.stateDir, "operator.log"), filepath.Join(p.o.stateDir, "mesos.log"))
		case <-tick.C:
		}
	}
}

// progressLine summarises the cluster: phase, the first condition that is not True, tasks.
func progressLine(c *v1alpha1.K3sCluster) string {
	parts := []string{"phase=" + c.Status.Phase}
	for _, t := range []string{v1alpha1.ConditionMesosConnected, v1alpha1.ConditionServersReady, v1alpha1.ConditionKubeconfigAvailable, v1alpha1.ConditionAgentsReady} {
		if cond := meta.FindStatusCondition(c.Status.Conditions, t); cond != nil && cond.Status != metav1.ConditionTrue {
			parts = append(parts, fmt.Sprintf("%s: %s", t, cond.Message))
			break
		}
	}
	for _, t := range c.Status.Tasks {
		parts = append(parts, fmt.Sprintf("%s=%s", t.Name, strings.TrimPrefix(t.State, "TASK_")))
	}
	return strings.Join(parts, "  ")
}

func (p *playground) printNextSteps() {
	fmt.Fprintf(p.out, `
The playground is up. In another shell:

  export KUBECONFIG=%[1]s
  # watch the cluster (-o wide adds the endpoint); conditions and events:
  kubectl get k3sc -w
  kubectl describe k3sc %[2]s
  # scale the agents: a new real node joins; scaling down drains and removes nodes
  kubectl scale k3scluster %[2]s --replicas=3

  # the workload cluster, through the admin kubeconfig the operator wrote
  # (kubectl get secret %[2]s-kubeconfig -o jsonpath='{.data.value}' | base64 -d):
  kubectl --kubeconfig %[3]s get nodes -o wide
  kubectl --kubeconfig %[3]s get pods -o wide
  kubectl --kubeconfig %[3]s logs deploy/%[4]s
  kubectl --kubeconfig %[3]s exec deploy/%[4]s -- ps
  curl http://%[5]s:%[6]d/

  # the Mesos emulator's view, and its fault injection endpoints:
  curl -s %[7]s/state
  curl -s %[7]s/admin

Every Mesos agent is a host of its own (%[8]s); the K3s processes, containerd and the
pods run in their tasks' sandboxes under %[9]s.
Press Ctrl-C to stop everything.
`, p.kubeconfig, p.cluster.Name, p.clusterKubeconfig(), demoName, p.demoHost, demoNodePort,
		p.mesos.URL(), strings.Join(p.hosts, ", "), filepath.Join(p.o.stateDir, "sandboxes"))
}

// shutdown stops what start started, newest first: the operator (Mesos keeps the
// tasks), the emulator (which destroys every container, K3s and its pods included, and
// removes the hosts' namespaces and links), the API server; then it puts back what the
// kubelets changed on the machine.
func (p *playground) shutdown() {
	if p.operator != nil {
		p.operator.stop(5 * time.Second)
	}
	if p.mesos != nil {
		p.mesos.Close()
		for _, c := range p.machine.Restore() {
			fmt.Fprintf(p.out, "    put back: %s\n", c)
		}
		if left := hostguard.Leftovers(p.mesos.Instance(), p.o.stateDir); len(left) > 0 {
			fmt.Fprintf(p.out, "    left behind (remove by hand): %s\n", strings.Join(left, "; "))
		}
	}
	if p.logSync != nil {
		p.logSync()
	}
	if p.api != nil {
		_ = p.api.Stop()
	}
}

func fileLogger(path string) (*zap.Logger, error) {
	cfg := zap.NewDevelopmentConfig()
	cfg.OutputPaths = []string{path}
	cfg.ErrorOutputPaths = []string{path}
	return cfg.Build()
}
