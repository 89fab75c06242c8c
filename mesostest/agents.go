package mesostest

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// PortRange is an inclusive range of ports offered by an agent.
type PortRange struct {
	Begin, End uint64
}

// AgentConfig describes one emulated Mesos agent.
type AgentConfig struct {
	// Hostname defaults to 127.0.0.N for the Nth agent (N ≤ 254), which
	// resolves to the loopback interface so that process-mode tasks are
	// reachable at their agent's hostname.
	Hostname string
	// Resources. When all are zero the agent gets 4 CPUs, 8 GiB memory,
	// 64 GiB disk and ports 31000-32000.
	CPUs, MemMiB, DiskMiB float64
	Ports                 []PortRange
	// Attributes are text attributes (name -> value) carried in offers.
	Attributes map[string]string
	// RunProcesses makes plain command tasks (no container) run for real as
	// local processes in a sandbox directory; otherwise they are simulated.
	RunProcesses bool
	// ExecutorEnvironment is the agent's --executor_environment_variables:
	// the variables every executor, and so every task, starts with.
	// Executors do not inherit the agent's own environment (Mesos sets only
	// LIBPROCESS_IP from it, and PATH defaults to
	// /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
	ExecutorEnvironment map[string]string
	// OwnHost gives the agent a host of its own (see hosts.go): a network namespace with an
	// address that is also its Hostname. Its tasks' processes and health checks run there.
	// Needs root; use TryAddAgent to learn why it cannot be had.
	OwnHost bool
	// Cgroups runs its containers in cgroups of their own, as the Linux launcher with the
	// cgroups isolators does (see cgroups.go), so a destroyed container leaves no process.
	// Needs root and a cgroup v1 freezer hierarchy.
	Cgroups bool
}

// agent is an emulated Mesos agent.
type agent struct {
	id         string
	hostname   string
	cfg        AgentConfig
	attributes []mesos.Attribute
	url        *mesos.URL // shared by all its offers (never mutated)
	registered time.Time

	// total is everything the agent has, including dynamic reservations
	// and persistent volumes (the agent's checkpointed resources).
	total mesos.Resources
	// free is total minus what tasks, executors and outstanding offers use.
	free mesos.Resources

	offers map[string]*offer
	tasks  map[*task]struct{}
	host   *host // OwnHost's network namespace, or nil

	reachable        bool
	unreachableSince time.Time
	// recovered: a restarted master knows the agent from its registry but
	// the agent has not reregistered yet (its tasks are unknown to the
	// master meanwhile); reregistered is when it last did.
	recovered       bool
	reregistered    time.Time
	reregisterTimer *time.Timer
}

// AddAgent registers a new agent and returns its agent ID. Its resources are
// offered from the next allocation round. It panics where TryAddAgent fails.
func (s *Server) AddAgent(cfg AgentConfig) (agentID string) {
	id, err := s.TryAddAgent(cfg)
	if err != nil {
		panic("mesostest: " + err.Error())
	}
	return id
}

// TryAddAgent is AddAgent, with an error when the agent's OwnHost or Cgroups cannot be
// had on this machine.
func (s *Server) TryAddAgent(cfg AgentConfig) (agentID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("the emulator is closed")
	}
	if cfg.Cgroups && s.cgroups == nil {
		if os.Geteuid() != 0 {
			return "", errors.New("cgroups need root")
		}
		h, err := findCgroupHierarchies()
		if err != nil {
			return "", err
		}
		s.cgroups = h
		s.cgroupsRoot = "mesostest-" + s.instance
	}
	s.nextAgent++
	n := s.nextAgent
	var h *host
	if cfg.OwnHost {
		if err := canMakeHosts(); err != nil {
			return "", err
		}
		if h, err = s.addHostLocked(n); err != nil {
			return "", err
		}
		if cfg.Hostname != "" && cfg.Hostname != h.ip {
			h.remove()
			return "", fmt.Errorf("an agent with its own host is named by its address %s, not %q", h.ip, cfg.Hostname)
		}
		cfg.Hostname = h.ip
	}
	if cfg.Hostname == "" {
		if n <= 254 {
			cfg.Hostname = fmt.Sprintf("127.0.0.%d", n)
		} else {
			cfg.Hostname = fmt.Sprintf("agent-%d.mesostest", n)
		}
	}
	if cfg.CPUs == 0 && cfg.MemMiB == 0 && cfg.DiskMiB == 0 && len(cfg.Ports) == 0 {
		cfg.CPUs, cfg.MemMiB, cfg.DiskMiB = 4, 8192, 65536
		cfg.Ports = []PortRange{{31000, 32000}}
	}
	a := &agent{
		id:         fmt.Sprintf("%s-S%d", s.masterID, s.nextAgentID),
		hostname:   cfg.Hostname,
		cfg:        cfg,
		registered: time.Now(),
		offers:     map[string]*offer{},
		tasks:      map[*task]struct{}{},
		reachable:  true,
		host:       h,
	}
	s.nextAgentID++
	a.url = agentURL(a.hostname)
	a.total = agentResources(cfg)
	a.free = cloneResources(a.total)
	names := make([]string, 0, len(cfg.Attributes))
	for name := range cfg.Attributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a.attributes = append(a.attributes, mesos.Attribute{
			Name: name,
			Type: mesos.TEXT,
			Text: &mesos.Value_Text{Value: cfg.Attributes[name]},
		})
	}
	s.agents[a.id] = a
	s.agentsByHost[a.hostname] = a
	s.agentOrder = append(s.agentOrder, a)
	s.log.Info("agent registered", "agentID", a.id, "hostname", a.hostname,
		"resources", a.total.String(), "runProcesses", cfg.RunProcesses, "ownHost", cfg.OwnHost, "cgroups", cfg.Cgroups)
	s.triggerAllocation()
	return a.id, nil
}

// registeredWithMaster tells whether the master knows the agent as
// registered: reachable and not waiting to reregister after a master
// restart. Only then does it get offers, forward updates and show tasks.
func (a *agent) registeredWithMaster() bool { return a.reachable && !a.recovered }

func agentResources(cfg AgentConfig) mesos.Resources {
	star := "*"
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Role: &star, Scalar: &mesos.Value_Scalar{Value: v}}
	}
	var rs mesos.Resources
	if cfg.CPUs > 0 {
		rs.Add1(scalar("cpus", cfg.CPUs))
	}
	if cfg.MemMiB > 0 {
		rs.Add1(scalar("mem", cfg.MemMiB))
	}
	if cfg.DiskMiB > 0 {
		rs.Add1(scalar("disk", cfg.DiskMiB))
	}
	if len(cfg.Ports) > 0 {
		ranges := make([]mesos.Value_Range, 0, len(cfg.Ports))
		for _, p := range cfg.Ports {
			ranges = append(ranges, mesos.Value_Range{Begin: p.Begin, End: p.End})
		}
		rs.Add1(mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), Role: &star,
			Ranges: &mesos.Value_Ranges{Range: mesos.Ranges(ranges).Sort().Squash()}})
	}
	return rs
}

// agentPort is the port emulated agents claim to listen on (the Mesos
// agent's default); nothing listens there.
const agentPort = 5051

// agentURL is an agent's HTTP endpoint as offers advertise it.
func agentURL(hostname string) *mesos.URL {
	host := hostname
	path := "/slave(1)"
	return &mesos.URL{Scheme: "http", Address: mesos.Address{Hostname: &host, IP: &host, Port: agentPort}, Path: &path}
}
