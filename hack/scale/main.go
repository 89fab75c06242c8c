// Command scale is the operator's scale benchmark (issue 15, "Performance at scale"): the
// real operator binary against a real management API server (envtest) and the Mesos
// master emulator with many simulated agents, M K3sClusters applied at once. It measures
// how long they take to become Ready, what the operator process costs (RSS, CPU,
// goroutines, file descriptors, connections, reconciles and API requests) while they
// deploy and at idle, the scheduler calls the emulator receives, and the same at idle
// with some clusters' API servers unreachable, plus how fast a healthy cluster's spec
// change is acted on with and without them. It prints a Markdown report.
//
//	export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
//	go run ./hack/scale -clusters 100 -agents-per-cluster 10 -hosts 1000 -idle 60s -unreachable 10 -out /tmp/scale.md
//
// docs/performance.md ("Scale: 100 clusters on 1,000 agents") has a run's figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/hack/testenv"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

const namespace = "scale"

type config struct {
	clusters, agentsPerCluster, hosts, unreachable int
	idle, settle, timeout                          time.Duration
	allocationInterval, heartbeat                  time.Duration
	scaleClusters                                  int
	out, logDir                                    string
	operatorArgs                                   []string
	sampleEvery                                    time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.clusters, "clusters", 100, "K3sClusters applied at once")
	fs.IntVar(&c.agentsPerCluster, "agents-per-cluster", 10, "agents of each cluster (each has one server)")
	fs.IntVar(&c.hosts, "hosts", 1000, "simulated Mesos agents (hosts); at least clusters × agents-per-cluster, since Host-network agents of different clusters never share a host")
	fs.IntVar(&c.unreachable, "unreachable", 10, "clusters whose API servers are made unreachable for the second idle measurement (0: skip it)")
	fs.DurationVar(&c.idle, "idle", 60*time.Second, "how long each idle measurement lasts")
	fs.DurationVar(&c.settle, "settle", 15*time.Second, "wait after everything is Ready (or the API servers went unreachable) before an idle measurement")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "bound for every cluster to become Ready")
	fs.DurationVar(&c.allocationInterval, "allocation-interval", time.Second, "the emulator's allocation interval (Mesos --allocation_interval; Mesos' default)")
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Second, "the emulator's HEARTBEAT interval (Mesos' default)")
	fs.IntVar(&c.scaleClusters, "scale-clusters", 3, "healthy clusters scaled down one agent and back up to time a spec change (two samples each, per phase)")
	fs.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&c.logDir, "logdir", "", "keep operator.log and mesos.log here (default: a temporary directory, removed)")
	opArgs := fs.String("operator-args", "", "extra operator flags, space-separated (e.g. --max-concurrent-reconciles=8)")
	fs.DurationVar(&c.sampleEvery, "sample-interval", time.Second, "how often /proc of the operator is read (its metrics endpoint every 5 samples)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.operatorArgs = strings.Fields(*opArgs)
	switch {
	case c.clusters < 1 || c.agentsPerCluster < 0:
		return c, errors.New("-clusters must be at least 1 and -agents-per-cluster not negative")
	case c.hosts < c.clusters*c.agentsPerCluster:
		return c, fmt.Errorf("-hosts %d < -clusters × -agents-per-cluster = %d: Host-network agents of different clusters never share a host", c.hosts, c.clusters*c.agentsPerCluster)
	case c.hosts > 250*250:
		return c, errors.New("-hosts: at most 62,500")
	case c.unreachable < 0 || c.unreachable > c.clusters-1 || c.unreachable > 250:
		return c, fmt.Errorf("-unreachable must be in 0..min(clusters-1, 250), got %d", c.unreachable)
	case c.scaleClusters < 0 || c.scaleClusters > c.clusters-c.unreachable:
		return c, errors.New("-scale-clusters must be at most the number of healthy clusters")
	case c.scaleClusters > 0 && c.agentsPerCluster < 1:
		return c, errors.New("-scale-clusters needs agents to scale")
	case c.idle <= 0 || c.sampleEvery <= 0:
		return c, errors.New("-idle and -sample-interval must be positive")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// bench is one run: what it started and what it measured.
type bench struct {
	cfg                config
	env                *testenv.Env
	mesos              *mesostest.Server
	calls              *callCounter
	op                 *operator
	tr                 *tracker
	bh                 *blackhole
	syn                *synDrop
	metrics            string // the operator's metrics URL
	apiHost            string // the management API server's host:port
	apiPort, mesosPort int

	sampler *sampler
	created map[string]time.Time
	names   []string
}

func run(ctx context.Context, cfg config) (retErr error) {
	b := &bench{cfg: cfg, created: map[string]time.Time{}}
	started := time.Now()
	loadBefore := loadavg()
	uptimeBefore := uptime()

	tmp, err := os.MkdirTemp("", "mesosk3s-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logDir := cfg.logDir
	if logDir == "" {
		logDir = tmp
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	logf("logs in %s", logDir)

	// The operator builds while the API server starts.
	binary := filepath.Join(tmp, "manager")
	built := make(chan error, 1)
	rep0 := treeState(testenv.RepoRoot())
	go func() { built <- buildOperator(testenv.RepoRoot(), binary) }()
	logf("starting the management API server (envtest) and building the operator")
	env, err := testenv.Start()
	if err != nil {
		<-built
		return err
	}
	b.env = env
	defer func() {
		if err := env.Stop(); err != nil {
			logf("stopping envtest: %v", err)
		}
	}()
	if err := <-built; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.apiHost = strings.TrimPrefix(strings.TrimPrefix(env.Config.Host, "https://"), "http://")
	if _, p, err := net.SplitHostPort(b.apiHost); err == nil {
		fmt.Sscan(p, &b.apiPort)
	}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}

	b.calls, err = newCallCounter(filepath.Join(logDir, "mesos.log"))
	if err != nil {
		return err
	}
	defer b.calls.close()
	serverHosts := serverHostsFor(cfg.clusters - cfg.unreachable)
	logf("starting the Mesos emulator: %d hosts for agents, %d for servers, %d for the servers that go unreachable", cfg.hosts, serverHosts, cfg.unreachable)
	b.mesos = mesostest.NewServer(mesostest.Options{
		AllocationInterval: cfg.allocationInterval,
		HeartbeatInterval:  cfg.heartbeat,
		Logger:             b.calls.logger(),
	}, agentConfigs(cfg.hosts, serverHosts, cfg.unreachable)...)
	defer func() {
		logf("stopping the emulator")
		b.mesos.Close()
	}()
	if _, p, err := net.SplitHostPort(strings.TrimPrefix(b.mesos.URL(), "http://")); err == nil {
		fmt.Sscan(p, &b.mesosPort)
	}
	defer func() { b.bh.stop(); b.syn.stop() }()

	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	b.metrics = "http://" + metricsAddr + "/metrics"
	b.op = &operator{binary: binary, kubeconfig: env.KubeconfigPath, master: b.mesos.URL(), metricsAddr: metricsAddr,
		logPath: filepath.Join(logDir, "operator.log"), extraArgs: cfg.operatorArgs}
	if err := b.op.start(); err != nil {
		return err
	}
	defer func() {
		logf("stopping the operator")
		b.op.stop(20 * time.Second)
	}()
	logf("operator pid %d, metrics %s, log %s", b.op.pid(), b.metrics, b.op.logPath)
	if err := waitMetrics(ctx, b.metrics, 60*time.Second); err != nil {
		return fmt.Errorf("the operator's metrics endpoint: %w (log: %s)", err, b.op.logPath)
	}

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	b.tr = newTracker(wc, namespace)
	trCtx, trCancel := context.WithCancel(ctx)
	var trDone sync.WaitGroup
	trDone.Add(1)
	go func() { defer trDone.Done(); b.tr.run(trCtx) }()
	defer func() { trCancel(); trDone.Wait() }()

	b.sampler = newSampler(b.op.pid(), b.metrics, cfg.sampleEvery)
	sCtx, sCancel := context.WithCancel(ctx)
	go b.sampler.run(sCtx)
	defer sCancel()

	rep := &report{cfg: cfg, started: started, loadBefore: loadBefore, uptimeBefore: uptimeBefore, args: os.Args[1:],
		apiHost: b.apiHost, apiPort: b.apiPort, mesosPort: b.mesosPort, tree: rep0}

	// Baseline: the operator with no cluster.
	logf("baseline: 10 s with no cluster")
	if rep.baseline, err = b.measure(ctx, "no cluster (10 s)", 10*time.Second, nil); err != nil {
		return err
	}

	// Deploy.
	logf("applying %d K3sClusters (1 server + %d agents each)", cfg.clusters, cfg.agentsPerCluster)
	deploy := b.begin("deploy")
	if err := b.createAll(ctx); err != nil {
		return err
	}
	err = b.tr.waitFor(ctx, cfg.timeout, func(objs map[string]*v1alpha1.K3sCluster) (bool, string) {
		n := 0
		var waiting []string
		for _, name := range b.names {
			if o := objs[name]; o != nil && fullyReady(o) {
				n++
			} else if len(waiting) < 5 {
				waiting = append(waiting, name+" "+describe(o))
			}
		}
		return n == len(b.names), fmt.Sprintf("%d/%d ready; waiting for %s", n, len(b.names), strings.Join(waiting, "; "))
	})
	if err != nil {
		return fmt.Errorf("deploy: %w (operator log: %s)", err, b.op.logPath)
	}
	if rep.deploy, err = b.end(ctx, deploy); err != nil {
		return err
	}
	rep.deployReady, rep.deployFull = b.readyLatencies()
	rep.deployTotal = rep.deploy.end.Sub(rep.deploy.start)
	logf("every cluster Ready and AgentsReady after %s", rep.deployTotal.Round(100*time.Millisecond))
	if err := b.op.exited(); err != nil {
		return err
	}

	// Idle, every API server "reachable" (connection refused: Mesos' health checks decide).
	if err := sleep(ctx, cfg.settle); err != nil {
		return err
	}
	logf("idle: %s", cfg.idle)
	if rep.idle, err = b.measure(ctx, "idle", cfg.idle, nil); err != nil {
		return err
	}
	if rep.scaleHealthy, err = b.scaleLatencies(ctx); err != nil {
		return err
	}

	if cfg.unreachable > 0 {
		logf("making the servers of %d clusters unreachable: SYNs dropped", cfg.unreachable)
		syn, err := startSynDrop(cfg.unreachable)
		if err != nil {
			return fmt.Errorf("SYN-dropping listeners: %w", err)
		}
		b.syn = syn
		if err := sleep(ctx, cfg.settle); err != nil {
			return err
		}
		logf("idle with %d unreachable: %s", cfg.unreachable, cfg.idle)
		if rep.idleUnreachable, err = b.measure(ctx, fmt.Sprintf("idle, %d unreachable (SYN dropped)", cfg.unreachable), cfg.idle, nil); err != nil {
			return err
		}
		if rep.scaleUnreachable, err = b.scaleLatencies(ctx); err != nil {
			return err
		}
		b.syn.stop()

		logf("making the servers of %d clusters hang: TCP accepted, never answered", cfg.unreachable)
		if b.bh, err = startBlackhole(cfg.unreachable); err != nil {
			return fmt.Errorf("blackhole listeners: %w", err)
		}
		if err := sleep(ctx, cfg.settle); err != nil {
			return err
		}
		logf("idle with %d hung: %s", cfg.unreachable, cfg.idle)
		if rep.idleHung, err = b.measure(ctx, fmt.Sprintf("idle, %d hung (TCP accepted, no answer)", cfg.unreachable), cfg.idle, nil); err != nil {
			return err
		}
		if rep.scaleHung, err = b.scaleLatencies(ctx); err != nil {
			return err
		}
		rep.hungAccepted, rep.hungOpen = b.bh.count()
		rep.readyAtEnd = b.countReady()
	}
	if err := b.op.exited(); err != nil {
		return err
	}
	saveMetrics(b.metrics, filepath.Join(logDir, "metrics-end.txt"))
	rep.loadAfter, rep.uptimeAfter = loadavg(), uptime()
	rep.finished = time.Now()
	rep.throttled = countLines(b.op.logPath, "client-side throttling")
	text := rep.markdown()
	fmt.Print(text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			return err
		}
		logf("report written to %s", cfg.out)
	}
	return nil
}

func describe(c *v1alpha1.K3sCluster) string {
	if c == nil {
		return "(not seen)"
	}
	var conds []string
	for _, cond := range c.Status.Conditions {
		if cond.Status != metav1.ConditionTrue && (cond.Type == v1alpha1.ConditionReady || cond.Type == v1alpha1.ConditionAgentsReady) {
			conds = append(conds, cond.Type+"="+string(cond.Status)+" "+cond.Reason)
		}
	}
	return fmt.Sprintf("(phase %s, gen %d/%d, agents %d/%d; %s)", c.Status.Phase, c.Status.ObservedGeneration, c.Generation,
		c.Status.Agents.ReadyReplicas, c.Spec.Agents.Replicas, strings.Join(conds, ", "))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitMetrics(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := scrape(url)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// saveMetrics keeps the operator's last metrics page beside the logs.
func saveMetrics(url, path string) {
	resp, err := scrapeClient.Get(url)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_ = os.WriteFile(path, body, 0o644)
}

// treeState is the commit the operator is built from and the tracked files changed in
// the working tree (the build takes them as they are).
func treeState(root string) string {
	head, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(not a git checkout)"
	}
	out := strings.TrimSpace(string(head))
	st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	var changed []string
	for _, l := range strings.Split(strings.TrimSpace(string(st)), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			changed = append(changed, f[len(f)-1])
		}
	}
	if len(changed) > 0 {
		out += " with uncommitted changes to " + strings.Join(changed, ", ")
	}
	return out
}

func countLines(path, substr string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	return strings.Count(string(data), substr)
}

func uptime() string {
	out, err := exec.Command("uptime").CombinedOutput()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}

// clusterName is the i-th cluster's name; the last -unreachable ones have their servers
// on the blackhole hosts.
func (b *bench) clusterName(i int) string { return fmt.Sprintf("c%03d", i+1) }

func (b *bench) unreachableCluster(i int) bool { return i >= b.cfg.clusters-b.cfg.unreachable }

// createAll applies every cluster at once (as `kubectl apply -f dir/` would, unset fields
// taking the CRD's defaults: SQLite, one server), 16 creates in flight.
func (b *bench) createAll(ctx context.Context) error {
	jobs := make(chan int)
	errs := make(chan error, b.cfg.clusters)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := b.clusterName(i)
				at := time.Now()
				if err := b.env.Client.Create(ctx, b.clusterObject(i)); err != nil {
					errs <- fmt.Errorf("creating %s: %w", name, err)
					continue
				}
				mu.Lock()
				b.created[name] = at
				mu.Unlock()
			}
		}()
	}
	for i := range b.cfg.clusters {
		b.names = append(b.names, b.clusterName(i))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

func (b *bench) clusterObject(i int) *unstructured.Unstructured {
	agentPlace := map[string]any{"field": "hostname", "operator": "LIKE", "value": agentHostRE}
	serverPlace := map[string]any{"field": "hostname", "operator": "LIKE", "value": serverHostRE}
	if b.unreachableCluster(i) {
		serverPlace = map[string]any{"field": "hostname", "operator": "LIKE", "value": blackholeHostRE}
	}
	spec := map[string]any{
		"servers": map[string]any{
			"resources":   map[string]any{"cpus": "100m", "memory": "64Mi", "disk": "256Mi"},
			"constraints": []any{serverPlace},
		},
		"agents": map[string]any{
			"replicas":    int64(b.cfg.agentsPerCluster),
			"resources":   map[string]any{"cpus": "100m", "memory": "64Mi"},
			"constraints": []any{agentPlace},
		},
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("K3sCluster")
	u.SetNamespace(namespace)
	u.SetName(b.clusterName(i))
	return u
}

func (b *bench) readyLatencies() (ready, full []time.Duration) {
	r, f := b.tr.readyTimes()
	for _, name := range b.names {
		c := b.created[name]
		if t, ok := r[name]; ok {
			ready = append(ready, t.Sub(c))
		}
		if t, ok := f[name]; ok {
			full = append(full, t.Sub(c))
		}
	}
	return ready, full
}

func (b *bench) countReady() int {
	n := 0
	for _, name := range b.names {
		if c := b.tr.get(name); c != nil && fullyReady(c) {
			n++
		}
	}
	return n
}

// scaleSample is one spec change of a healthy cluster, timed.
type scaleSample struct {
	cluster          string
	from, to         int32
	observed, agents time.Duration
}

// scaleLatencies scales -scale-clusters healthy clusters down one agent and back up (a
// merge patch of spec.agents.replicas, what `kubectl scale` changes through the scale
// subresource) and times status.observedGeneration catching up with the new generation,
// and the cluster being fully Ready at the new count.
func (b *bench) scaleLatencies(ctx context.Context) ([]scaleSample, error) {
	var out []scaleSample
	for i := range b.cfg.scaleClusters {
		name := b.clusterName(i)
		for _, delta := range []int32{-1, +1} {
			s, err := b.scaleOnce(ctx, name, delta)
			if err != nil {
				return out, err
			}
			logf("scaled %s %d -> %d: observedGeneration after %s, AgentsReady after %s", name, s.from, s.to,
				s.observed.Round(time.Millisecond), s.agents.Round(time.Millisecond))
			out = append(out, s)
			if err := sleep(ctx, 2*time.Second); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func (b *bench) scaleOnce(ctx context.Context, name string, delta int32) (scaleSample, error) {
	c := &v1alpha1.K3sCluster{}
	if err := b.env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, c); err != nil {
		return scaleSample{}, err
	}
	s := scaleSample{cluster: name, from: c.Spec.Agents.Replicas, to: c.Spec.Agents.Replicas + delta}
	patch := fmt.Sprintf(`{"spec":{"agents":{"replicas":%d}}}`, s.to)
	start := time.Now()
	if err := b.env.Client.Patch(ctx, c, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return s, fmt.Errorf("scaling %s: %w", name, err)
	}
	gen := c.Generation
	err := b.tr.waitFor(ctx, 2*time.Minute, func(objs map[string]*v1alpha1.K3sCluster) (bool, string) {
		o := objs[name]
		return o != nil && o.Status.ObservedGeneration >= gen, name + " " + describe(o)
	})
	if err != nil {
		return s, fmt.Errorf("scaling %s: observedGeneration %w", name, err)
	}
	s.observed = time.Since(start)
	err = b.tr.waitFor(ctx, 2*time.Minute, func(objs map[string]*v1alpha1.K3sCluster) (bool, string) {
		o := objs[name]
		return o != nil && o.Generation == gen && fullyReady(o), name + " " + describe(o)
	})
	if err != nil {
		return s, fmt.Errorf("scaling %s: AgentsReady %w", name, err)
	}
	s.agents = time.Since(start)
	return s, nil
}

// percentile is the nearest-rank q-quantile.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func numCPU() int { return runtime.NumCPU() }
