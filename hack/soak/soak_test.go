package soak

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mesosk3s/mesosk3s/hack/testenv"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

var (
	soakDuration = flag.Duration("soak.duration", 60*time.Second,
		"how long faults are injected (then every cluster must become Ready within -soak.final)")
	soakSeed = flag.Int64("soak.seed", 0,
		"seed of the fault RNG (0: from the clock); printed at the start, pass it to replay the fault sequence")
	soakEventual = flag.Duration("soak.eventual", 60*time.Second,
		"how long invariants 2-4 may stay broken (after the deletion finished, or from when first seen) before that is a break")
	soakFinal = flag.Duration("soak.final", 90*time.Second,
		"bound after the last fault within which every cluster is Ready and nothing is left over")
	soakLogDir = flag.String("soak.logdir", "",
		"keep operator.log and mesos.log in this directory (default: a temporary directory, removed)")
)

const (
	namespace   = "soak"
	maxClusters = 3
	maxAgents   = 3
	// nAgents hosts fit every agent of every cluster at once plus a spare for a lost one:
	// Host-network agents of different clusters never share a host.
	nAgents = maxClusters*maxAgents + 1
	// settleMin and settleSpread bound the time the system is left alone after each step
	// before the invariants are checked.
	settleMin    = time.Second
	settleSpread = 3 * time.Second
	// confirmAfter is how long a candidate break of invariants 1 and 5 is given to resolve
	// before it counts: the status is written by another process, and the check reads it
	// and the emulator one after the other.
	confirmAfter = 4 * time.Second
)

// soak is one run: the API server, the emulator, the operator process, the clusters it
// made, and what it counted.
type soak struct {
	t    *testing.T
	ctx  context.Context
	seed int64
	rng  *rand.Rand

	env   *testenv.Env
	mesos *mesostest.Server
	op    *operator
	hosts []string

	opLog, mesosLog string

	clusters []*clusterRec
	nextName int

	steps     int
	lastKind  string
	faults    map[string]int
	checks    map[int]int
	transient map[string]int
	// firstSeen is when each violation of an eventual invariant (2-4) was first seen.
	firstSeen map[string]time.Time
	started   time.Time
}

// clusterRec is a K3sCluster the soak created.
type clusterRec struct {
	name, uid string
	created   time.Time
	deletedAt time.Time // zero: not deleted
	goneAt    time.Time // when the soak first saw the object gone
}

func (r *clusterRec) gone() bool { return !r.goneAt.IsZero() }

func TestSoak(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: the soak needs a real kube-apiserver and etcd; " +
			"export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh), or run `make soak`")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("soak: seed %d (replay with -soak.seed %d), faults for %s", seed, seed, *soakDuration)
	s := setup(t, seed)
	s.initial()
	s.loop()
	s.final()
	s.report()
}

// setup starts the API server, the emulator (three masters, five agents) and the
// operator, each stopped by t.Cleanup, the operator first.
func setup(t *testing.T, seed int64) *soak {
	s := &soak{t: t, ctx: context.Background(), seed: seed, rng: rand.New(rand.NewSource(seed)),
		faults: map[string]int{}, checks: map[int]int{}, transient: map[string]int{}, firstSeen: map[string]time.Time{}}
	dir := *soakLogDir
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.opLog, s.mesosLog = filepath.Join(dir, "operator.log"), filepath.Join(dir, "mesos.log")
	t.Logf("soak: logs in %s", dir)

	// The operator builds while the API server starts.
	binary := filepath.Join(t.TempDir(), "manager")
	built := make(chan error, 1)
	go func() { built <- buildOperator(binary) }()
	env, err := testenv.Start()
	if err != nil {
		<-built
		t.Fatal(err)
	}
	s.env = env
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping envtest: %v", err)
		}
	})
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(s.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}

	mlog, err := os.OpenFile(s.mesosLog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mlog.Close() })
	// Simulated agents on loopback addresses, their ports in a range nothing on this
	// machine listens on (below the ephemeral range; controllers tests use 32100-32199,
	// the playground's real K3s 31000 and up): the operator's own /readyz probe of a
	// simulated server gets "connection refused", so readiness is Mesos' health checks
	// alone, as in controllers/harness_test.go.
	agents := make([]mesostest.AgentConfig, nAgents)
	for i := range agents {
		agents[i] = mesostest.AgentConfig{
			Hostname: fmt.Sprintf("127.0.0.%d", i+1), CPUs: 4, MemMiB: 8192, DiskMiB: 65536,
			Ports: []mesostest.PortRange{{Begin: 32400, End: 32499}},
		}
		s.hosts = append(s.hosts, agents[i].Hostname)
	}
	s.mesos = mesostest.NewServer(mesostest.Options{
		AllocationInterval:          100 * time.Millisecond,
		HeartbeatInterval:           time.Second,
		KillGracePeriod:             500 * time.Millisecond,
		ExecutorShutdownGracePeriod: 500 * time.Millisecond,
		StatusUpdateRetryInterval:   2 * time.Second,
		Logger: funcr.New(func(prefix, args string) {
			fmt.Fprintln(mlog, time.Now().Format("15:04:05.000"), prefix, args)
		}, funcr.Options{}),
	}, agents...)
	t.Cleanup(s.mesos.Close)
	s.mesos.AddMaster()
	s.mesos.AddMaster()

	s.op = &operator{binary: binary, kubeconfig: env.KubeconfigPath, logPath: s.opLog,
		masters: strings.Join(s.mesos.MasterURLs(), ",")}
	if err := s.op.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.op.stop(10 * time.Second) })
	s.started = time.Now()
	return s
}

// initial creates two clusters and waits until they are Ready: a setup that cannot get
// there is not a soak finding.
func (s *soak) initial() {
	for range 2 {
		s.createCluster(s.rng.Intn(maxAgents + 1))
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		snap := s.snapshot()
		ok, why := s.converged(snap)
		if ok {
			s.t.Logf("soak: %d clusters Ready after %s; injecting faults", len(s.clusters), time.Since(s.started).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			s.fatalf(snap, "setup: the first clusters did not become Ready within 90s (before any fault):\n  %s", strings.Join(why, "\n  "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// loop injects one step at a time until the duration is over, checking after each.
func (s *soak) loop() {
	deadline := time.Now().Add(*soakDuration)
	for time.Now().Before(deadline) {
		s.steps++
		kind, x := s.draw()
		at := time.Since(s.started).Seconds()
		what := s.apply(kind, x)
		settle := settleMin + time.Duration(x[5]*float64(settleSpread))
		s.t.Logf("step %3d %6.1fs %-18s %s; settle %s", s.steps, at, s.lastKind, what, settle.Round(100*time.Millisecond))
		time.Sleep(settle)
		s.check()
	}
}

// final: faults have stopped (every timed fault ends inside its step, the operator runs);
// within -soak.final every cluster is Ready as its spec says and nothing is left over.
func (s *soak) final() {
	s.t.Logf("soak: faults stopped after %d steps; waiting up to %s for every cluster to be Ready", s.steps, *soakFinal)
	if !s.op.running() {
		if err := s.op.exited(); err != nil {
			s.fatalf(s.snapshot(), "%v", err)
		}
		if err := s.op.start(); err != nil {
			s.t.Fatal(err)
		}
	}
	start := time.Now()
	deadline := start.Add(*soakFinal)
	for {
		snap := s.check()
		s.checks[6]++
		ok, why := s.converged(snap)
		if ok {
			s.t.Logf("soak: converged %s after the last fault", time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			s.fatalf(snap, "invariant 6 broken: %s after the faults stopped, not every cluster is Ready as specified (or a deletion is unfinished, or something is left over):\n  %s",
				*soakFinal, strings.Join(why, "\n  "))
		}
		time.Sleep(time.Second)
	}
}

// report prints the figures docs/soak.md tabulates.
func (s *soak) report() {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: seed %d, %d steps in %s (faults for %s), operator started %d times, %d clusters created\n",
		s.seed, s.steps, time.Since(s.started).Round(time.Second), *soakDuration, s.op.starts, len(s.clusters))
	fmt.Fprintf(&b, "| fault | injected |\n|---|---|\n")
	total := 0
	for _, k := range faultKinds {
		fmt.Fprintf(&b, "| %s | %d |\n", k.name, s.faults[k.name])
		total += s.faults[k.name]
	}
	fmt.Fprintf(&b, "| total | %d |\n| of which during a timed fault | %d |\n", total, s.faults["(overlapping)"])
	fmt.Fprintf(&b, "| invariant | checks |\n|---|---|\n")
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&b, "| %d %s | %d |\n", i, invariantNames[i], s.checks[i])
	}
	keys := make([]string, 0, len(s.transient))
	for k := range s.transient {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "transient (resolved within the confirmation or eventual bound): %s: %d\n", k, s.transient[k])
	}
	s.t.Log(b.String())
}

// fatalf fails the soak: the message, what the world looks like, the counts and the logs.
func (s *soak) fatalf(snap snapshot, format string, args ...any) {
	s.t.Helper()
	s.report()
	s.t.Logf("world at the break:\n%s", s.describe(snap))
	s.t.Logf("%s", tail(s.opLog, 150))
	s.t.Logf("%s", tail(s.mesosLog, 60))
	s.t.Fatalf("soak (seed %d, step %d, %s in): "+format, append([]any{s.seed, s.steps, time.Since(s.started).Round(100 * time.Millisecond)}, args...)...)
}
