package mesosbridge

import (
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// cluster is the bridge's state for one cluster: the controller's wishes (config,
// desired tasks, kills, teardown) and what Mesos reported. The controller's methods and
// the cluster's event loop meet here under mu; only the event loop talks to Mesos.
type cluster struct {
	key     ClusterKey
	opts    Options
	metrics *metrics
	log     logr.Logger
	notify  func()
	// decided observes each offer round's event-to-ACCEPT latency (tests, benchmarks).
	decided func(time.Duration)

	wake chan struct{} // something the loop should act on changed (capacity 1)
	done chan struct{} // closed when the loop has ended

	mu sync.Mutex
	// cfg is the latest config; connGen counts changes that need a new subscription.
	cfg     FrameworkConfig
	connGen uint64
	desired []TaskSpec
	// graces is the kill grace period each task name's spec last asked for.
	graces map[string]time.Duration
	// tasks is the task reported under each name; live holds every non-terminal task
	// by ID, including a duplicate that is being killed.
	tasks map[string]ObservedTask
	live  map[string]ObservedTask
	// unplaced is why the last offer round left desired tasks unlaunched.
	unplaced   map[string]string
	agentAttrs map[string]map[string]string
	conn       Connection
	// frameworkID is the ID the master gave; it survives reconnects.
	frameworkID string
	// kills are requested and not yet sent on the current subscription; killsSent are
	// sent and not yet terminal (sent again after a resubscription).
	kills     map[string]killOrder
	killsSent map[string]killOrder
	// ensures counts the controller's Ensure calls; endedAt holds, per task name, the
	// count at which its task last ended. A task that ended is relaunched only by a later
	// Ensure: the controller must have seen the end (to count a failure and wait out its
	// back-off) before a new incarnation can hide it.
	ensures uint64
	endedAt map[string]uint64
	// abandoned are tasks on an unreachable agent that the controller killed: Mesos cannot
	// confirm their end, so their name is free for a replacement, and the KILL (or the
	// duplicate check) ends them if their agent comes back (partition-aware replacement).
	abandoned map[string]bool
	teardown  teardownState
	sub       subscriptionState
	// removed are framework IDs the master said it removed: never subscribed with again,
	// whatever ID the controller still persists. removedFrameworkID is the latest.
	removed            map[string]bool
	removedFrameworkID string
	// exclusive is the HostExclusive class each task name's spec last asked for (kept
	// while a task no longer desired still runs); exclusiveHosts is the manager's view of
	// the other clusters' hosts (nil in tests of one cluster alone).
	exclusive      map[string]string
	exclusiveHosts *hostClaims
}

// subscriptionState is what a new subscription starts afresh.
type subscriptionState struct {
	active bool
	// reconciled: the reconciliation barrier was answered, so every task the master knows
	// has been reported and launching cannot duplicate one.
	reconciled bool
	barrierID  string
	// interestSent: SUPPRESS or REVIVE was sent on this subscription. Before that the
	// master may still hold decline filters of an earlier subscription, so the first
	// decision is sent whatever it is.
	interestSent bool
	suppressed   bool
}

func newCluster(key ClusterKey, opts Options, m *metrics, notify func(ClusterKey)) *cluster {
	c := &cluster{
		key:        key,
		opts:       opts,
		metrics:    m,
		log:        opts.Logger.WithValues("cluster", key.String()),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		tasks:      map[string]ObservedTask{},
		live:       map[string]ObservedTask{},
		agentAttrs: map[string]map[string]string{},
		kills:      map[string]killOrder{},
		killsSent:  map[string]killOrder{},
		endedAt:    map[string]uint64{},
		graces:     map[string]time.Duration{},
		abandoned:  map[string]bool{},
		removed:    map[string]bool{},
		exclusive:  map[string]string{},
		conn:       Connection{Reason: ConnSubscribing, Message: "not connected yet", Since: time.Now()},
	}
	c.notify = func() { notify(key) }
	return c
}

// poke wakes the event loop without blocking.
func (c *cluster) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// observed is a copy of what the controller may show.
func (c *cluster) observed() Observed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.observedLocked()
}

func (c *cluster) observedLocked() Observed {
	// The last round's reasons, for the tasks that are still desired and still pending.
	var unplaced map[string]string
	for _, spec := range pendingOf(c.desired, c.tasks) {
		if why, ok := c.unplaced[spec.Name]; ok {
			if unplaced == nil {
				unplaced = map[string]string{}
			}
			unplaced[spec.Name] = why
		}
	}
	return Observed{
		Connection:         c.conn,
		FrameworkID:        c.frameworkID,
		Tasks:              maps.Clone(c.tasks),
		Unplaced:           unplaced,
		RemovedFrameworkID: c.removedFrameworkID,
	}
}

// setConnLocked records the connection state; it reports whether it changed.
func (c *cluster) setConnLocked(connected bool, reason ConnectionReason, message string) bool {
	if c.conn.Connected == connected && c.conn.Reason == reason && c.conn.Message == message {
		return false
	}
	since := c.conn.Since
	if c.conn.Reason != reason || c.conn.Connected != connected {
		since = time.Now()
	}
	c.conn = Connection{Connected: connected, Reason: reason, Message: message, Since: since}
	return true
}

// markSubscribing shows a subscription attempt, unless the last attempt failed: the
// failure's reason stays visible while the bridge retries, instead of flapping.
func (c *cluster) markSubscribing(message string) {
	c.mu.Lock()
	failing := !c.conn.Connected && (c.conn.Reason == ConnUnreachable || c.conn.Reason == ConnUnauthorized || c.conn.Reason == ConnRefused)
	c.mu.Unlock()
	if !failing {
		c.setConn(false, ConnSubscribing, message)
	}
}

func (c *cluster) setConn(connected bool, reason ConnectionReason, message string) {
	c.mu.Lock()
	changed := c.setConnLocked(connected, reason, message)
	c.mu.Unlock()
	if changed {
		c.log.Info("mesos connection", "reason", string(reason), "message", message)
		c.notify()
	}
}

// update applies an Ensure: new config, desired tasks, and the controller's memory of
// tasks (adopted if the bridge does not know them).
//
// It returns the observation taken under the same lock: no offer round can relaunch a
// task that ended between the update and the observation, so the controller always sees
// an end before the relaunch that this Ensure allows (and counts the failure).
func (c *cluster) update(cfg FrameworkConfig, desired []TaskSpec, known []ObservedTask) Observed {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyConfigLocked(cfg)
	c.ensures++
	c.desired = append([]TaskSpec(nil), desired...)
	for _, s := range desired {
		c.graces[s.Name] = s.KillGracePeriod
		c.exclusive[s.Name] = s.HostExclusive
	}
	for _, t := range known {
		c.adoptLocked(t)
	}
	return c.observedLocked()
}

// applyConfigLocked takes a new config; a change the master must see (address, TLS,
// credentials, FrameworkInfo fields, or a persisted framework ID other than the one
// subscribed) starts a new subscription.
func (c *cluster) applyConfigLocked(cfg FrameworkConfig) {
	if c.removed[cfg.FrameworkID] {
		cfg.FrameworkID = "" // a controller that has not caught up yet: the new framework wins
	}
	old := c.cfg
	c.cfg = cfg
	if cfg.FrameworkID == "" && old.FrameworkID != "" {
		// The controller dropped the ID it had persisted (say Mesos removed that framework
		// and refuses it): the next subscription starts a new framework.
		c.log.Info("controller dropped the framework ID; subscribing as a new framework", "old", old.FrameworkID)
		c.frameworkID = ""
		c.connGen++
		return
	}
	if cfg.FrameworkID != "" && cfg.FrameworkID != c.frameworkID {
		// The persisted ID wins: it is the framework that owns the cluster's tasks.
		if c.frameworkID != "" {
			c.log.Info("controller persisted another framework ID; resubscribing with it",
				"subscribed", c.frameworkID, "persisted", cfg.FrameworkID)
		}
		c.frameworkID = cfg.FrameworkID
		c.connGen++
		return
	}
	old.FrameworkID, cfg.FrameworkID = "", ""
	if !reflect.DeepEqual(old, cfg) {
		c.connGen++
	}
}

// adoptLocked takes a task the controller remembers: if the bridge knows nothing newer
// of that name, the task counts as live (so it is not launched again) until the
// master's reconciliation answer says otherwise, and it keeps its ports and spec hash.
func (c *cluster) adoptLocked(t ObservedTask) {
	if t.TaskID == "" || t.Name == "" || t.State.Terminal() {
		return
	}
	if _, known := c.live[t.TaskID]; known {
		return
	}
	if cur, ok := c.tasks[t.Name]; ok && cur.TaskID != "" {
		return
	}
	c.tasks[t.Name] = t
	c.live[t.TaskID] = t
}

// subscribeConfig is the config to subscribe with, under the framework ID the master
// gave this bridge or the controller persisted (none: a new framework).
func (c *cluster) subscribeConfig() (FrameworkConfig, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg := c.cfg
	if c.frameworkID != "" {
		cfg.FrameworkID = c.frameworkID
	}
	return cfg, c.connGen
}

func (c *cluster) configChanged(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connGen != gen
}

// launchReadyLocked: the controller has persisted the framework ID, the master has
// answered the reconciliation, and the cluster is not being torn down.
func (c *cluster) launchReadyLocked() bool {
	return c.sub.active && c.sub.reconciled && !c.teardown.requested && launchesAllowed(c.cfg, c.frameworkID)
}

// pendingLocked is what an offer round should launch now.
func (c *cluster) pendingLocked() []TaskSpec {
	if !c.launchReadyLocked() {
		return nil
	}
	tasks := c.tasks
	if len(c.abandoned) > 0 {
		tasks = maps.Clone(c.tasks)
		for name, t := range tasks {
			if c.abandoned[t.TaskID] {
				delete(tasks, name)
			}
		}
	}
	var pending []TaskSpec
	for _, spec := range pendingOf(c.desired, tasks) {
		if ended, ok := c.endedAt[spec.Name]; ok && ended == c.ensures {
			continue // ended since the last Ensure: the controller decides when to relaunch
		}
		pending = append(pending, spec)
	}
	return pending
}
