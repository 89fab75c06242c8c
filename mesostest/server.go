package mesostest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
)

// Options configure a Server. The zero value gives Mesos' own defaults.
type Options struct {
	// AllocationInterval is how often unused resources are offered (Mesos
	// --allocation_interval, default 1s). Tests use e.g. 20ms.
	AllocationInterval time.Duration
	// HeartbeatInterval is the period of HEARTBEAT events (default 15s, as
	// the Mesos master's DEFAULT_HEARTBEAT_INTERVAL).
	HeartbeatInterval time.Duration
	// Credentials maps principal -> secret. When non-empty every scheduler
	// call needs HTTP basic authentication (as with --authenticate_http_frameworks).
	Credentials map[string]string
	// StagingDelay is how long a launched task stays TASK_STAGING before the
	// executor reports TASK_STARTING; StartingDelay is the time from
	// TASK_STARTING to TASK_RUNNING for simulated tasks. Default 10ms each.
	StagingDelay, StartingDelay time.Duration
	// KillGracePeriod is the time between SIGTERM and SIGKILL when neither
	// the KILL call nor the task carries a kill_policy (default 3s, as the
	// command executor).
	KillGracePeriod time.Duration
	// ExecutorShutdownGracePeriod is the Docker executor's default kill
	// grace period (the agent's --executor_shutdown_grace_period, default
	// 5s), used when neither the KILL call nor the task has a kill_policy.
	ExecutorShutdownGracePeriod time.Duration
	// StatusUpdateRetryInterval is the first retry interval of
	// unacknowledged status updates; it doubles up to 10 minutes, as the
	// agent's status update manager does (default 10s).
	StatusUpdateRetryInterval time.Duration
	// SandboxRoot is where process-mode sandboxes are created. Default: a
	// temporary directory, removed on Close.
	SandboxRoot string
	// Hostname is the master's advertised hostname (default 127.0.0.1);
	// it appears in MasterInfo and in redirect Location headers.
	Hostname string
	// AgentReregistrationDelay is how long after a master restart
	// (RestartMaster) or failover (FailoverTo) each agent reregisters;
	// until then the master knows no task of it. 0 (the default) makes
	// them reregister at once. A real agent notices a master that came back
	// without ZooKeeper only when its pings stop: 69 s were measured here,
	// bounded by the agent's ping timeout (agent_ping_timeout 15 s x
	// max_agent_ping_timeouts 5 = 75 s).
	AgentReregistrationDelay time.Duration
	// AgentReregisterTimeout is --agent_reregister_timeout (default 10
	// minutes): an agent that has not reregistered that long after a master
	// (re)start is marked unreachable.
	AgentReregisterTimeout time.Duration
	// MaxCompletedTasks bounds the completed-task history kept per framework
	// (default 1000, Mesos --max_completed_tasks_per_framework).
	MaxCompletedTasks int
	// MaxCompletedFrameworks bounds the removed frameworks remembered
	// (default 50, Mesos --max_completed_frameworks).
	MaxCompletedFrameworks int
	// ServeAdmin serves the fault injection endpoints (see AdminHandler)
	// under /admin on every master address.
	ServeAdmin bool
	// Logger receives what the emulator does. Default: discard.
	Logger logr.Logger
}

func (o *Options) setDefaults() {
	if o.AllocationInterval <= 0 {
		o.AllocationInterval = time.Second
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 15 * time.Second
	}
	if o.StagingDelay <= 0 {
		o.StagingDelay = 10 * time.Millisecond
	}
	if o.StartingDelay <= 0 {
		o.StartingDelay = 10 * time.Millisecond
	}
	if o.KillGracePeriod <= 0 {
		o.KillGracePeriod = 3 * time.Second
	}
	if o.ExecutorShutdownGracePeriod <= 0 {
		o.ExecutorShutdownGracePeriod = 5 * time.Second
	}
	if o.StatusUpdateRetryInterval <= 0 {
		o.StatusUpdateRetryInterval = 10 * time.Second
	}
	if o.Hostname == "" {
		o.Hostname = "127.0.0.1"
	}
	if o.AgentReregisterTimeout <= 0 {
		o.AgentReregisterTimeout = 10 * time.Minute
	}
	if o.MaxCompletedTasks <= 0 {
		o.MaxCompletedTasks = 1000
	}
	if o.MaxCompletedFrameworks <= 0 {
		o.MaxCompletedFrameworks = 50
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
}

// Server is an emulated Mesos master (possibly several master addresses in
// front of one cluster state, see AddMaster) with its agents.
type Server struct {
	opts Options
	log  logr.Logger

	// masterID is the cluster's identity; it prefixes framework, agent and
	// offer IDs the way the real master's ID does.
	masterID   string
	firstURL   string
	sandboxDir string
	ownSandbox bool
	started    time.Time

	// mu guards everything below and all framework/agent/task/offer objects.
	mu       sync.Mutex
	closed   bool
	masters  []*master
	leader   *master // nil: no leader elected (503)
	noLeader bool    // SetUnavailable(true)

	agents       map[string]*agent // by agent ID
	agentsByHost map[string]*agent
	// goneAgents are the agents an operator marked gone (MarkAgentGone), and when.
	goneAgents map[string]time.Time
	agentOrder []*agent // registration order, walked by the allocator
	nextAgent  int

	frameworks          map[string]*framework
	completedFrameworks []*framework
	nextFramework       int
	// nextAgentID numbers the agents a master registers (its ID prefixes
	// theirs); recoveryTimer is --agent_reregister_timeout after a master
	// (re)start.
	nextAgentID   int
	recoveryTimer *time.Timer

	offers    map[string]*offer
	nextOffer int64

	// processes are the task processes started and not yet exited.
	processes map[*taskProcess]struct{}
	// instance names what this emulator makes on the machine (network namespaces, links,
	// cgroups), so that it can be told apart from another's; unlike the master ID it
	// survives master restarts.
	instance string
	// hostNet holds the network namespaces of agents with OwnHost; cgroups the cgroup
	// hierarchies of agents with Cgroups, whose containers live under cgroupsRoot
	// (the agent's --cgroups_root, unique per emulator).
	hostNet     *hostNet
	cgroups     *cgroupHierarchies
	cgroupsRoot string
	// groupCgroups are the executor containers' cgroups of task groups.
	groupCgroups map[*containerCgroup]struct{}

	// allocationDirty: something changed since the last allocation round;
	// nextFilterExpiry: when the earliest decline filter lapses.
	allocationDirty  bool
	nextFilterExpiry time.Time

	callDelay    time.Duration
	rejectStatus int

	timers   map[*time.Timer]struct{}
	tracker  goroutineTracker
	allocNow chan struct{}
	stop     chan struct{}

	// allocationRounds counts completed allocation rounds (for tests).
	allocationRounds atomic.Int64
}

// master is one listening address. Exactly one master (or none) leads.
type master struct {
	server   *Server
	listener net.Listener
	http     *http.Server
	url      string
	port     int
	started  bool
}

// NewServer starts an emulated master on 127.0.0.1:0 with the given agents.
// Call Close when done.
func NewServer(opts Options, agents ...AgentConfig) *Server {
	s := NewUnstartedServer(opts, agents...)
	s.Start()
	return s
}

// NewUnstartedServer returns a Server that listens on 127.0.0.1:0 (so URL
// is known) but neither serves nor allocates until Start is called.
func NewUnstartedServer(opts Options, agents ...AgentConfig) *Server {
	s, err := newServer("127.0.0.1:0", opts, agents)
	if err != nil {
		panic(fmt.Sprintf("mesostest: %v", err))
	}
	return s
}

// NewServerAt is NewServer listening on a given address (e.g.
// "127.0.0.1:5050"), for the standalone command.
func NewServerAt(addr string, opts Options, agents ...AgentConfig) (*Server, error) {
	s, err := newServer(addr, opts, agents)
	if err != nil {
		return nil, err
	}
	s.Start()
	return s, nil
}

func newServer(addr string, opts Options, agents []AgentConfig) (*Server, error) {
	opts.setDefaults()
	s := &Server{
		opts:         opts,
		log:          opts.Logger,
		masterID:     uuid.NewString(),
		instance:     strings.ReplaceAll(uuid.NewString(), "-", "")[:12],
		started:      time.Now(),
		agents:       map[string]*agent{},
		agentsByHost: map[string]*agent{},
		goneAgents:   map[string]time.Time{},
		frameworks:   map[string]*framework{},
		offers:       map[string]*offer{},
		processes:    map[*taskProcess]struct{}{},
		timers:       map[*time.Timer]struct{}{},
		allocNow:     make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	s.tracker.init()
	if opts.SandboxRoot == "" {
		dir, err := os.MkdirTemp("", "mesostest-sandboxes-")
		if err != nil {
			return nil, fmt.Errorf("creating sandbox root: %w", err)
		}
		s.sandboxDir, s.ownSandbox = dir, true
	} else {
		if err := os.MkdirAll(opts.SandboxRoot, 0o755); err != nil {
			return nil, fmt.Errorf("creating sandbox root: %w", err)
		}
		s.sandboxDir = opts.SandboxRoot
	}
	m, err := s.newMaster(addr)
	if err != nil {
		if s.ownSandbox {
			_ = os.RemoveAll(s.sandboxDir)
		}
		return nil, err
	}
	s.leader = m
	s.firstURL = m.url
	for _, a := range agents {
		s.AddAgent(a)
	}
	return s, nil
}

func (s *Server) newMaster(addr string) (*master, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	m := &master{server: s, listener: l}
	m.port = l.Addr().(*net.TCPAddr).Port
	m.url = fmt.Sprintf("http://%s", l.Addr().String())
	m.http = &http.Server{Handler: s.handler(m), ReadHeaderTimeout: 10 * time.Second}
	s.masters = append(s.masters, m)
	return m, nil
}

// Start begins serving and allocating. It is called by NewServer.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.masters {
		s.serveLocked(m)
	}
	s.tracker.goTracked(s.allocationLoop)
	s.log.Info("mesos master emulator started", "url", s.leader.url, "masterID", s.masterID,
		"agents", len(s.agents), "allocationInterval", s.opts.AllocationInterval.String())
}

func (s *Server) serveLocked(m *master) {
	if m.started {
		return
	}
	m.started = true
	s.tracker.goTracked(func() { _ = m.http.Serve(m.listener) })
}

// URL is the base URL of the first master, "http://127.0.0.1:PORT". The
// scheduler endpoint is URL()+"/api/v1/scheduler".
func (s *Server) URL() string { return s.firstURL }

// LeaderURL is the base URL of the currently leading master ("" if none).
func (s *Server) LeaderURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leader == nil || s.noLeader {
		return ""
	}
	return s.leader.url
}

// MasterID is the ID of the emulated master (prefix of all generated IDs).
func (s *Server) MasterID() string { return s.masterID }

// Close stops serving, kills every process started for tasks, closes all
// event streams and waits for every goroutine of the emulator to end.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	for t := range s.timers {
		t.Stop()
	}
	s.timers = map[*time.Timer]struct{}{}
	for _, fw := range s.frameworks {
		if fw.stream != nil {
			fw.stream.close()
		}
	}
	// Every process still running, whoever tracks its task (live,
	// unreachable, reported lost, or removed and being killed).
	procs := make([]*taskProcess, 0, len(s.processes))
	for p := range s.processes {
		procs = append(procs, p)
	}
	for _, a := range s.agentOrder {
		for t := range a.tasks {
			if t.health != nil {
				t.health.stop()
			}
		}
	}
	masters := append([]*master(nil), s.masters...)
	s.mu.Unlock()

	for _, p := range procs {
		p.destroy()
	}
	for _, m := range masters {
		_ = m.http.Close()
		_ = m.listener.Close()
	}
	s.tracker.closeAndWait()
	s.mu.Lock()
	groups := s.groupCgroupsLocked()
	s.closeHostsLocked()
	s.mu.Unlock()
	for _, c := range groups {
		_ = c.destroy()
	}
	if s.ownSandbox {
		_ = os.RemoveAll(s.sandboxDir)
	}
	s.log.Info("mesos master emulator stopped")
}

// after runs f (with s.mu held) after d, unless the server is closed first.
// The returned timer may be stopped by the caller (under s.mu).
func (s *Server) afterLocked(d time.Duration, f func()) *time.Timer {
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.tracker.goTrackedSync(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed {
				return
			}
			if _, live := s.timers[t]; !live {
				return // stopped after it fired
			}
			delete(s.timers, t)
			f()
		})
	})
	s.timers[t] = struct{}{}
	return t
}

// stopTimerLocked cancels a timer created by afterLocked.
func (s *Server) stopTimerLocked(t *time.Timer) {
	if t == nil {
		return
	}
	t.Stop()
	delete(s.timers, t)
}

// goroutineTracker lets Close wait for every goroutine the emulator started,
// refusing new ones once closing began (so no goroutine is left behind).
type goroutineTracker struct {
	mu      sync.Mutex
	n       int
	closing bool
	done    chan struct{}
}

func (g *goroutineTracker) init() { g.done = make(chan struct{}) }

func (g *goroutineTracker) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.n++
	return true
}

func (g *goroutineTracker) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.closing && g.n == 0 {
		close(g.done)
	}
}

// goTracked runs f in a new tracked goroutine; it reports false (and does
// not run f) once Close has begun.
func (g *goroutineTracker) goTracked(f func()) bool {
	if !g.add() {
		return false
	}
	go func() {
		defer g.release()
		f()
	}()
	return true
}

// goTrackedSync runs f in the calling goroutine, accounted as tracked.
func (g *goroutineTracker) goTrackedSync(f func()) {
	if !g.add() {
		return
	}
	defer g.release()
	f()
}

func (g *goroutineTracker) closeAndWait() {
	g.mu.Lock()
	g.closing = true
	if g.n == 0 {
		close(g.done)
	}
	g.mu.Unlock()
	<-g.done
}

// Instance names what the emulator makes on the machine: network namespaces mt<instance[:4]>-N,
// the bridge mtbr<instance[:4]>, veths mtv<instance[:4]>N and the cgroups root
// mesostest-<instance> (see hosts.go, cgroups.go).
func (s *Server) Instance() string { return s.instance }
