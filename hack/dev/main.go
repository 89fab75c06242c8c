// Command dev is the local playground behind `make dev`: the whole system on one
// machine with no Mesos and no Docker. It starts a real management API server
// (kube-apiserver and etcd from hack/envtest-assets.sh) with the CRDs installed, the Mesos
// master emulator with agents that are hosts of their own (network namespaces, containers
// in cgroups), and the real operator binary against both; applies the playground
// K3sCluster, whose server and agents run the real static K3s binary as Mesos tasks (the
// agents with Debian's containerd and runc: real nodes); waits until it is Ready, its
// nodes included; deploys a demo web server and waits until it answers; prints the
// commands to try; and on Ctrl-C stops all it started and puts the machine back. It
// needs root (network namespaces, cgroups, mounts).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type options struct {
	stateDir   string
	k3sBinary  string
	manager    string
	sample     string
	mesosAddr  string
	agents     int
	servers    int
	nodeAssets string
	ha         bool
	waitReady  time.Duration
	exitReady  bool
	assetsPath string
	// clusterFile, when set, is where the K3sCluster is written instead of being applied.
	clusterFile string
}

func main() {
	var o options
	flag.StringVar(&o.stateDir, "state-dir", "bin/dev", "where the playground keeps its kubeconfig, logs, sandboxes and lock")
	flag.StringVar(&o.k3sBinary, "k3s", "bin/k3s", "the static K3s binary (hack/build-k3s.sh builds it)")
	flag.StringVar(&o.manager, "manager", "bin/manager", "the operator binary (make build)")
	flag.StringVar(&o.sample, "sample", "", "the K3sCluster to apply (default config/samples/playground/k3scluster.yaml, with --ha k3scluster-ha.yaml)")
	flag.BoolVar(&o.ha, "ha", false, "three K3s servers on embedded etcd, each on a host of its own")
	flag.StringVar(&o.nodeAssets, "node-assets", "bin/node", "CNI plugins, flannel config and images for the K3s agents (hack/node-assets.sh builds them)")
	flag.StringVar(&o.mesosAddr, "mesos-listen", "127.0.0.1:0", "address of the Mesos master emulator (port 0: any free port)")
	flag.IntVar(&o.agents, "agents", 3, "Mesos agents (hosts) for the K3s agents")
	flag.IntVar(&o.servers, "servers", 0, "Mesos agents (hosts) for the K3s servers (default 1, with --ha 3)")
	flag.DurationVar(&o.waitReady, "wait", 5*time.Minute, "how long to wait for the cluster to be Ready")
	flag.BoolVar(&o.exitReady, "exit-when-ready", false, "stop everything once Ready (for scripts)")
	flag.StringVar(&o.clusterFile, "cluster-file", "", "write the K3sCluster, ready for this machine, to this file instead of applying it: apply it yourself (from Git with Flux, say)")
	flag.StringVar(&o.assetsPath, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory with kube-apiserver and etcd (hack/envtest-assets.sh prints it)")
	flag.Parse()
	if o.sample == "" {
		o.sample = "config/samples/playground/k3scluster.yaml"
		if o.ha {
			o.sample = "config/samples/playground/k3scluster-ha.yaml"
		}
	}
	if o.servers == 0 {
		o.servers = 1
		if o.ha {
			o.servers = 3
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Whoever reads the output may go away (a closed terminal, a test that died): a write
	// to the broken pipe must fail, not kill the playground before it has put the machine
	// back (Go exits on SIGPIPE on stdout unless SIGPIPE is notified).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "make dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the playground runs real K3s nodes (network namespaces, cgroups, mounts) and needs root")
	}
	for _, p := range []*string{&o.stateDir, &o.k3sBinary, &o.manager, &o.sample, &o.nodeAssets, &o.clusterFile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	lock, err := lockStateDir(o.stateDir)
	if err != nil {
		return err
	}
	defer lock.release()
	for _, f := range []string{o.k3sBinary, o.manager} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is missing: run `make dev`, which builds it", f)
		}
	}

	pg := &playground{o: o, out: os.Stdout}
	defer pg.shutdown()
	if err := pg.start(ctx); err != nil {
		return err
	}
	if o.clusterFile == "" {
		if err := pg.waitReady(ctx); err != nil {
			return err
		}
		if err := pg.runDemo(ctx); err != nil {
			return err
		}
		pg.printNextSteps()
	}
	if o.exitReady {
		return nil
	}
	// SIGHUP restarts the operator from the binary on disk: rebuild bin/manager and
	// `kill -HUP` the playground to upgrade the operator under a running cluster.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(pg.out, "\nstopping the playground…")
			return nil
		case <-hup:
			if err := pg.restartOperator(); err != nil {
				return err
			}
		}
	}
}
