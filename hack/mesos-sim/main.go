// Command mesos-sim runs the Mesos master emulator of package
// mesostest as a standalone process, for the local playground
// and for poking at schedulers by hand:
//
//	go run ./hack/mesos-sim --agents 3
//
// It serves the v1 scheduler API on --listen (127.0.0.1:5050 by default),
// GET /state and /health, and fault injection endpoints under /admin (GET
// /admin lists them). Plain command tasks run for real as local processes
// unless --run-processes=false. SIGINT or SIGTERM stops it, killing every
// task process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

type config struct {
	listen             string
	hostname           string
	agents             int
	agentCPUs          float64
	agentMem           float64
	agentDisk          float64
	agentPorts         string
	splitPorts         bool
	agentAttributes    string
	runProcesses       bool
	allocationInterval time.Duration
	heartbeatInterval  time.Duration
	statusRetry        time.Duration
	killGrace          time.Duration
	shutdownGrace      time.Duration
	reregDelay         time.Duration
	reregTimeout       time.Duration
	executorEnv        string
	credentials        string
	sandboxRoot        string
	logLevel           string
}

func main() {
	var c config
	flag.StringVar(&c.listen, "listen", "127.0.0.1:5050", "address of the (leading) master")
	flag.StringVar(&c.hostname, "hostname", "127.0.0.1", "hostname the master advertises (MasterInfo, redirects)")
	flag.IntVar(&c.agents, "agents", 3, "number of agents (hostnames 127.0.0.1, 127.0.0.2, ...)")
	flag.Float64Var(&c.agentCPUs, "agent-cpus", 4, "CPUs per agent")
	flag.Float64Var(&c.agentMem, "agent-mem", 8192, "memory per agent, MiB")
	flag.Float64Var(&c.agentDisk, "agent-disk", 65536, "disk per agent, MiB")
	flag.StringVar(&c.agentPorts, "agent-ports", "31000-32000", "port ranges offered by the agents")
	flag.BoolVar(&c.splitPorts, "split-ports", true,
		"give each agent a disjoint slice of --agent-ports, so real processes of different agents never bind the same port on this one machine")
	flag.StringVar(&c.agentAttributes, "agent-attributes", "", "text attributes of every agent, k=v,k2=v2 (each agent also gets agent=<n>)")
	flag.BoolVar(&c.runProcesses, "run-processes", true, "run plain command tasks as real local processes")
	flag.DurationVar(&c.allocationInterval, "allocation-interval", time.Second, "allocation interval (Mesos --allocation_interval)")
	flag.DurationVar(&c.heartbeatInterval, "heartbeat-interval", 15*time.Second, "interval of HEARTBEAT events")
	flag.DurationVar(&c.statusRetry, "status-update-retry", 10*time.Second, "first retry interval of unacknowledged status updates")
	flag.DurationVar(&c.killGrace, "kill-grace-period", 3*time.Second, "default SIGTERM to SIGKILL grace period of the command and default executors")
	flag.DurationVar(&c.shutdownGrace, "executor-shutdown-grace-period", 5*time.Second,
		"the agents' --executor_shutdown_grace_period: the Docker executor's default kill grace period")
	flag.DurationVar(&c.reregDelay, "agent-reregistration-delay", 0,
		"how long agents take to reregister after /admin/restart-master or /admin/failover (real agents without ZooKeeper: up to their 75s ping timeout)")
	flag.DurationVar(&c.reregTimeout, "agent-reregister-timeout", 10*time.Minute,
		"the master's --agent_reregister_timeout: agents not back by then are marked unreachable")
	flag.StringVar(&c.executorEnv, "executor-environment", "",
		"the agents' --executor_environment_variables, k=v,k2=v2: executors (and tasks) do not inherit this command's environment")
	flag.StringVar(&c.credentials, "credentials", "", "require HTTP basic auth: principal:secret[,principal2:secret2]")
	flag.StringVar(&c.sandboxRoot, "sandbox-root", "", "directory for task sandboxes and volumes (default: a temporary directory, removed at exit)")
	flag.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "mesos-sim:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	zl, err := newZapLogger(c.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = zl.Sync() }()
	log := zapr.NewLogger(zl)

	creds, err := parseCredentials(c.credentials)
	if err != nil {
		return err
	}
	agents, err := agentConfigs(c)
	if err != nil {
		return err
	}
	opts := mesostest.Options{
		AllocationInterval:          c.allocationInterval,
		HeartbeatInterval:           c.heartbeatInterval,
		StatusUpdateRetryInterval:   c.statusRetry,
		KillGracePeriod:             c.killGrace,
		ExecutorShutdownGracePeriod: c.shutdownGrace,
		AgentReregistrationDelay:    c.reregDelay,
		AgentReregisterTimeout:      c.reregTimeout,
		Credentials:                 creds,
		SandboxRoot:                 c.sandboxRoot,
		Hostname:                    c.hostname,
		ServeAdmin:                  true,
		Logger:                      log,
	}
	server, err := mesostest.NewServerAt(c.listen, opts, agents...)
	if err != nil {
		return err
	}
	log.Info("mesos-sim ready",
		"scheduler", server.URL()+"/api/v1/scheduler",
		"state", server.URL()+"/state",
		"admin", server.URL()+"/admin",
		"agents", len(agents), "runProcesses", c.runProcesses)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down: killing task processes")
	server.Close()
	return nil
}

func newZapLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.DisableStacktrace = true
	// logr's V(1) maps to zap's debug level.
	return cfg.Build()
}

func parseCredentials(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		principal, secret, ok := strings.Cut(pair, ":")
		if !ok || principal == "" {
			return nil, fmt.Errorf("--credentials: %q is not principal:secret", pair)
		}
		out[principal] = secret
	}
	return out, nil
}

func agentConfigs(c config) ([]mesostest.AgentConfig, error) {
	if c.agents < 0 {
		return nil, fmt.Errorf("--agents must not be negative")
	}
	ports, err := mesostest.ParsePortRanges(c.agentPorts)
	if err != nil {
		return nil, fmt.Errorf("--agent-ports: %v", err)
	}
	attrs, err := parseKeyValues("--agent-attributes", c.agentAttributes)
	if err != nil {
		return nil, err
	}
	executorEnv, err := parseKeyValues("--executor-environment", c.executorEnv)
	if err != nil {
		return nil, err
	}
	var out []mesostest.AgentConfig
	for i := 0; i < c.agents; i++ {
		agentPorts := ports
		if c.splitPorts && c.agents > 1 {
			if agentPorts, err = portSlice(ports, i, c.agents); err != nil {
				return nil, err
			}
		}
		a := mesostest.AgentConfig{
			CPUs: c.agentCPUs, MemMiB: c.agentMem, DiskMiB: c.agentDisk, Ports: agentPorts,
			Attributes: map[string]string{"agent": fmt.Sprint(i + 1)}, RunProcesses: c.runProcesses,
		}
		if len(executorEnv) > 0 {
			a.ExecutorEnvironment = executorEnv
		}
		for k, v := range attrs {
			a.Attributes[k] = v
		}
		out = append(out, a)
	}
	return out, nil
}

func parseKeyValues(flagName, spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not k=v", flagName, kv)
		}
		out[k] = v
	}
	return out, nil
}

// portSlice returns the i-th of n equal slices of the ports in ranges.
func portSlice(ranges []mesostest.PortRange, i, n int) ([]mesostest.PortRange, error) {
	var all []uint64
	for _, r := range ranges {
		for p := r.Begin; p <= r.End; p++ {
			all = append(all, p)
		}
	}
	per := len(all) / n
	if per == 0 {
		return nil, fmt.Errorf("--agent-ports has fewer ports than agents; use --split-ports=false")
	}
	chunk := all[i*per : (i+1)*per]
	var out []mesostest.PortRange
	for _, p := range chunk {
		if len(out) > 0 && out[len(out)-1].End+1 == p {
			out[len(out)-1].End = p
			continue
		}
		out = append(out, mesostest.PortRange{Begin: p, End: p})
	}
	return out, nil
}
