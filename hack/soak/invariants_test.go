package soak

import (
	"fmt"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
	"github.com/mesosk3s/mesosk3s/mesostest"
)

const (
	labelClusterUID = mesosbridge.LabelClusterUID
	// persistencePrefix starts every persistent volume ID the bridge creates:
	// mesosk3s-<cluster UID>-<task name>.
	persistencePrefix = "mesosk3s-"
)

var invariantNames = map[int]string{
	1: "no two non-terminal tasks of one name in a framework",
	2: "no live task of a deleted cluster",
	3: "no registered framework without its K3sCluster",
	4: "no reservation or volume without a live owner",
	5: "Ready / AgentsReady only with every desired task running",
	6: "every cluster Ready after the faults stop",
}

// snapshot is the K3sClusters (read first) and the emulator's /state (read second).
type snapshot struct {
	at       time.Time
	clusters map[string]*v1alpha1.K3sCluster
	state    mesostest.State
}

func (s *soak) snapshot() snapshot {
	list := &v1alpha1.K3sClusterList{}
	if err := s.env.Client.List(s.ctx, list, client.InNamespace(namespace)); err != nil {
		s.t.Fatalf("listing K3sClusters: %v", err)
	}
	snap := snapshot{at: time.Now(), clusters: map[string]*v1alpha1.K3sCluster{}}
	for i := range list.Items {
		snap.clusters[list.Items[i].Name] = &list.Items[i]
	}
	snap.state = s.mesos.State()
	for _, r := range s.clusters {
		if _, ok := snap.clusters[r.name]; !ok && !r.gone() {
			if r.deletedAt.IsZero() {
				s.fatalf(snap, "K3sCluster %s disappeared without being deleted", r.name)
			}
			r.goneAt = snap.at
			s.t.Logf("         %6.1fs %s deleted in %s", time.Since(s.started).Seconds(), r.name, snap.at.Sub(r.deletedAt).Round(100*time.Millisecond))
		}
	}
	return snap
}

func (s *soak) byUID() map[string]*clusterRec {
	out := map[string]*clusterRec{}
	for _, r := range s.clusters {
		out[r.uid] = r
	}
	return out
}

// check runs every invariant once. 1 and 5 must hold at every check (a candidate break
// gets confirmAfter to resolve, as the operator writes the status asynchronously); 2-4
// may be broken for -soak.eventual.
func (s *soak) check() snapshot {
	if err := s.op.exited(); err != nil {
		s.fatalf(s.snapshot(), "%v", err)
	}
	snap := s.snapshot()

	s.checks[1]++
	if dups := duplicates(snap.state); len(dups) > 0 {
		time.Sleep(confirmAfter)
		again := s.snapshot()
		still := duplicates(again.state)
		for key, d := range dups {
			if d2, ok := still[key]; ok && sameIDs(d, d2) {
				s.fatalf(again, "invariant 1 broken: framework %s has %d non-terminal tasks named %s for %s and more:\n  %s",
					d2.framework, len(d2.tasks), d2.name, confirmAfter, strings.Join(d2.tasks, "\n  "))
			}
			s.transient["1: duplicate task name, resolved"]++
		}
		snap = again
	}

	s.checks[5]++
	if miss := s.readyButMissing(snap); len(miss) > 0 {
		time.Sleep(confirmAfter)
		again := s.snapshot()
		still := s.readyButMissing(again)
		for name, m := range miss {
			if m2, ok := still[name]; ok && m2.since.Equal(m.since) && m.connected && m2.connected {
				s.fatalf(again, "invariant 5 broken: K3sCluster %s says %s=True (since %s) but in the emulator, with its framework subscribed, for %s and more: %s",
					name, m2.condition, m2.since.Format(time.RFC3339), confirmAfter, strings.Join(m2.missing, "; "))
			}
			s.transient["5: status behind Mesos, caught up"]++
		}
		snap = again
	}

	s.checks[2]++
	s.checks[3]++
	s.checks[4]++
	now := time.Now()
	current := map[string]bool{}
	for _, v := range s.eventualViolations(snap) {
		current[v.key] = true
		first, ok := s.firstSeen[v.key]
		if !ok {
			first = now
			s.firstSeen[v.key] = now
		}
		start := first
		if v.owner != nil && v.owner.gone() && v.owner.goneAt.After(start) {
			start = v.owner.goneAt
		}
		if now.Sub(start) > *soakEventual {
			s.fatalf(snap, "invariant %d broken (%s) for %s: %s: %s", v.inv, invariantNames[v.inv],
				now.Sub(start).Round(time.Second), v.cluster, v.evidence)
		}
	}
	for key := range s.firstSeen {
		if !current[key] {
			s.transient[key[:1]+": "+invariantNames[int(key[0]-'0')]+", resolved"]++
			delete(s.firstSeen, key)
		}
	}
	return snap
}

// liveTasksOf: a framework's tasks in a state that is not terminal, as the master knows
// them (unreachable tasks are listed apart by the master and left out: their name may be
// reused once the operator gave them up, by design).
func liveTask(t mesostest.StateTask) bool {
	switch t.State {
	case "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING":
		return true
	}
	return false
}

type dup struct {
	framework, name string
	tasks           []string // "ID state agent"
}

func duplicates(st mesostest.State) map[string]dup {
	out := map[string]dup{}
	for _, f := range st.Frameworks {
		byName := map[string][]string{}
		for _, t := range f.Tasks {
			if liveTask(t) {
				byName[t.Name] = append(byName[t.Name], t.ID+" "+t.State+" on "+t.SlaveID)
			}
		}
		for name, ts := range byName {
			if len(ts) > 1 {
				sort.Strings(ts)
				out[f.ID+"/"+name] = dup{framework: f.ID + " (" + f.Name + ")", name: name, tasks: ts}
			}
		}
	}
	return out
}

func sameIDs(a, b dup) bool {
	ids := func(d dup) string {
		var out []string
		for _, t := range d.tasks {
			out = append(out, strings.Fields(t)[0])
		}
		return strings.Join(out, ",")
	}
	return ids(a) == ids(b)
}

type missing struct {
	condition string
	since     time.Time
	connected bool
	missing   []string
}

// readyButMissing: clusters whose Ready (servers) or AgentsReady (agents, at the current
// generation) is True while a task those conditions speak for does not run healthy in the
// emulator. Ready means the servers are healthy and the kubeconfig is written
// (docs/reference.md); agents are AgentsReady's.
func (s *soak) readyButMissing(snap snapshot) map[string]missing {
	out := map[string]missing{}
	for name, c := range snap.clusters {
		if c.DeletionTimestamp != nil {
			continue
		}
		fw := frameworkByID(snap.state, c.Status.FrameworkID)
		tasks := map[string][]mesostest.StateTask{}
		connected := false
		if fw != nil {
			connected = fw.Connected
			for _, t := range fw.Tasks {
				tasks[t.Name] = append(tasks[t.Name], t)
			}
		}
		check := func(cond string, want []string) {
			ready := meta.FindStatusCondition(c.Status.Conditions, cond)
			if ready == nil || ready.Status != metav1.ConditionTrue {
				return
			}
			var miss []string
			for _, n := range want {
				if why := notServing(tasks[n], strings.HasPrefix(n, "server-")); why != "" {
					miss = append(miss, n+": "+why)
				}
			}
			if len(miss) > 0 {
				key := name + " " + cond
				out[key] = missing{condition: cond, since: ready.LastTransitionTime.Time, connected: connected, missing: miss}
			}
		}
		check(v1alpha1.ConditionReady, taskNames("server", int(c.Spec.Servers.Replicas)))
		if c.Status.ObservedGeneration == c.Generation {
			check(v1alpha1.ConditionAgentsReady, taskNames("agent", int(c.Spec.Agents.Replicas)))
		}
	}
	return out
}

func taskNames(role string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", role, i)
	}
	return out
}

// notServing says why none of the tasks of one name runs (healthy, for servers); "" when
// one does.
func notServing(ts []mesostest.StateTask, needHealth bool) string {
	if len(ts) == 0 {
		return "no task"
	}
	var states []string
	for _, t := range ts {
		if t.State == "TASK_RUNNING" && (!needHealth || lastHealth(t)) {
			return ""
		}
		h := ""
		if needHealth {
			h = fmt.Sprintf(" healthy=%v", lastHealth(t))
		}
		states = append(states, t.ID+" "+t.State+h)
	}
	return strings.Join(states, ", ")
}

func lastHealth(t mesostest.StateTask) bool {
	for i := len(t.Statuses) - 1; i >= 0; i-- {
		if h := t.Statuses[i].Healthy; h != nil {
			return *h
		}
	}
	return false
}

func frameworkByID(st mesostest.State, id string) *mesostest.StateFramework {
	if id == "" {
		return nil
	}
	for i := range st.Frameworks {
		if st.Frameworks[i].ID == id {
			return &st.Frameworks[i]
		}
	}
	return nil
}

func labelOf(labels []mesostest.StateLabel, key string) string {
	for _, l := range labels {
		if l.Key == key {
			return l.Value
		}
	}
	return ""
}

// violation is one broken eventual invariant (2, 3, 4).
type violation struct {
	inv      int
	key      string // stable across checks: inv, then what
	cluster  string
	owner    *clusterRec // nil: no cluster the soak made
	evidence string
}

func (s *soak) eventualViolations(snap snapshot) []violation {
	uids := s.byUID()
	ownerOf := func(uid string) (*clusterRec, string) {
		r := uids[uid]
		switch {
		case uid == "":
			return nil, "(no cluster UID label)"
		case r == nil:
			return nil, "(unknown cluster UID " + uid + ")"
		}
		return r, r.name
	}
	var out []violation
	for _, f := range snap.state.Frameworks {
		fuid := labelOf(f.Labels, labelClusterUID)
		// 2: tasks of deleted (or unknown) clusters.
		for _, t := range append(append([]mesostest.StateTask{}, f.Tasks...), f.UnreachableTasks...) {
			uid := labelOf(t.Labels, labelClusterUID)
			if uid == "" {
				uid = fuid
			}
			r, name := ownerOf(uid)
			if r != nil && !r.gone() {
				continue
			}
			if t.State != "TASK_UNREACHABLE" && !liveTask(t) {
				continue
			}
			out = append(out, violation{inv: 2, key: "2 task " + t.ID, cluster: name, owner: r,
				evidence: fmt.Sprintf("task %s (%s) %s on agent %s in framework %s (%s, active=%v connected=%v)",
					t.ID, t.Name, t.State, t.SlaveID, f.ID, f.Name, f.Active, f.Connected)})
		}
		// 3: frameworks without their cluster, or not the one the cluster's status names.
		r, name := ownerOf(fuid)
		if r == nil || r.gone() {
			out = append(out, violation{inv: 3, key: "3 framework " + f.ID, cluster: name, owner: r,
				evidence: fmt.Sprintf("framework %s (%s) registered, active=%v connected=%v, %d tasks, %d unreachable",
					f.ID, f.Name, f.Active, f.Connected, len(f.Tasks), len(f.UnreachableTasks))})
			continue
		}
		if c := snap.clusters[r.name]; c != nil && c.DeletionTimestamp == nil && c.Status.FrameworkID != "" && c.Status.FrameworkID != f.ID {
			out = append(out, violation{inv: 3, key: "3 framework " + f.ID, cluster: name, owner: r,
				evidence: fmt.Sprintf("framework %s (%s) registered, active=%v connected=%v, %d tasks, but the cluster's status.frameworkID is %s (abandoned)",
					f.ID, f.Name, f.Active, f.Connected, len(f.Tasks), c.Status.FrameworkID)})
		}
	}
	// 4: reservations and volumes whose cluster is gone (or unknown).
	for _, a := range snap.state.Slaves {
		for role, rs := range a.ReservedResourcesFull {
			for _, res := range rs {
				uid := reservationUID(res)
				r, name := ownerOf(uid)
				if r != nil && !r.gone() {
					continue
				}
				desc := describeResource(res)
				out = append(out, violation{inv: 4, key: "4 " + a.ID + " " + role + " " + desc, cluster: name, owner: r,
					evidence: fmt.Sprintf("agent %s (%s) role %s: %s", a.Hostname, a.ID, role, desc)})
			}
		}
	}
	return out
}

// reservationUID is the cluster a reserved resource belongs to: the bridge labels its
// reservations with the cluster UID, and names volumes mesosk3s-<uid>-<task>.
func reservationUID(r mesos.Resource) string {
	infos := append([]mesos.Resource_ReservationInfo{}, r.Reservations...)
	if r.Reservation != nil {
		infos = append(infos, *r.Reservation)
	}
	for _, info := range infos {
		for _, l := range info.GetLabels().GetLabels() {
			if l.Key == labelClusterUID && l.GetValue() != "" {
				return l.GetValue()
			}
		}
	}
	if id := r.GetDisk().GetPersistence().GetID(); strings.HasPrefix(id, persistencePrefix) && len(id) >= len(persistencePrefix)+36 {
		return id[len(persistencePrefix) : len(persistencePrefix)+36]
	}
	return ""
}

func describeResource(r mesos.Resource) string {
	out := r.Name
	if r.Scalar != nil {
		out += fmt.Sprintf(" %g", r.Scalar.Value)
	}
	if id := r.GetDisk().GetPersistence().GetID(); id != "" {
		out += " volume " + id
	}
	return out
}

// converged is invariant 6: every live cluster Ready, AgentsReady and not Stalled at its
// current generation, exactly its desired tasks running in the emulator; every deletion
// finished; nothing of invariants 1-4 left.
func (s *soak) converged(snap snapshot) (bool, []string) {
	var why []string
	for _, r := range s.clusters {
		c := snap.clusters[r.name]
		if c == nil {
			continue
		}
		if c.DeletionTimestamp != nil {
			why = append(why, fmt.Sprintf("%s: deletion requested %s ago not finished (phase %s; %s)",
				r.name, snap.at.Sub(r.deletedAt).Round(time.Second), c.Status.Phase, condSummary(c)))
			continue
		}
		var bad []string
		for _, t := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionAgentsReady} {
			if cond := meta.FindStatusCondition(c.Status.Conditions, t); cond == nil || cond.Status != metav1.ConditionTrue {
				bad = append(bad, t+" not True")
			}
		}
		if meta.IsStatusConditionTrue(c.Status.Conditions, v1alpha1.ConditionStalled) {
			bad = append(bad, "Stalled")
		}
		if c.Status.ObservedGeneration != c.Generation {
			bad = append(bad, fmt.Sprintf("observedGeneration %d of %d", c.Status.ObservedGeneration, c.Generation))
		}
		fw := frameworkByID(snap.state, c.Status.FrameworkID)
		if fw == nil {
			bad = append(bad, "framework "+c.Status.FrameworkID+" not registered")
		} else {
			tasks := map[string][]mesostest.StateTask{}
			for _, t := range fw.Tasks {
				if liveTask(t) {
					tasks[t.Name] = append(tasks[t.Name], t)
				}
			}
			want := append(taskNames("server", int(c.Spec.Servers.Replicas)), taskNames("agent", int(c.Spec.Agents.Replicas))...)
			for _, n := range want {
				if why := notServing(tasks[n], strings.HasPrefix(n, "server-")); why != "" {
					bad = append(bad, n+": "+why)
				}
				delete(tasks, n)
			}
			for n := range tasks {
				bad = append(bad, n+" runs but is not desired")
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			why = append(why, fmt.Sprintf("%s: %s (phase %s; %s)", r.name, strings.Join(bad, ", "), c.Status.Phase, condSummary(c)))
		}
	}
	for _, d := range duplicates(snap.state) {
		why = append(why, fmt.Sprintf("duplicate %s in %s: %v", d.name, d.framework, d.tasks))
	}
	for _, v := range s.eventualViolations(snap) {
		why = append(why, fmt.Sprintf("invariant %d: %s: %s", v.inv, v.cluster, v.evidence))
	}
	return len(why) == 0, why
}

func condSummary(c *v1alpha1.K3sCluster) string {
	var out []string
	for _, cond := range c.Status.Conditions {
		switch cond.Type {
		case v1alpha1.ConditionReady, v1alpha1.ConditionAgentsReady, v1alpha1.ConditionMesosConnected, v1alpha1.ConditionStalled:
			out = append(out, fmt.Sprintf("%s=%s %s: %s", cond.Type, cond.Status, cond.Reason, cond.Message))
		}
	}
	return strings.Join(out, "; ")
}

// describe renders the clusters' status and the emulator's frameworks, tasks and
// reservations, for a failure message.
func (s *soak) describe(snap snapshot) string {
	var b strings.Builder
	for _, r := range s.clusters {
		c := snap.clusters[r.name]
		switch {
		case c == nil && r.gone():
			fmt.Fprintf(&b, "%s uid %s: gone %s ago\n", r.name, r.uid, snap.at.Sub(r.goneAt).Round(time.Second))
			continue
		case c == nil:
			fmt.Fprintf(&b, "%s uid %s: not found\n", r.name, r.uid)
			continue
		}
		fmt.Fprintf(&b, "%s uid %s gen %d observed %d agents %d phase %s frameworkID %s deleting=%v\n",
			r.name, r.uid, c.Generation, c.Status.ObservedGeneration, c.Spec.Agents.Replicas, c.Status.Phase,
			c.Status.FrameworkID, c.DeletionTimestamp != nil)
		for _, cond := range c.Status.Conditions {
			fmt.Fprintf(&b, "    %s=%s %s (%s): %s\n", cond.Type, cond.Status, cond.Reason, cond.LastTransitionTime.Format("15:04:05"), cond.Message)
		}
		for _, t := range c.Status.Tasks {
			fmt.Fprintf(&b, "    task %s %s %s healthy=%v agent=%s failures=%d\n", t.Name, t.TaskID, t.State,
				ptr.Deref(t.Healthy, false), t.AgentHost, t.ConsecutiveFailures)
		}
	}
	fmt.Fprintf(&b, "emulator: leader %s, master %s\n", s.mesos.LeaderURL(), snap.state.ID)
	for _, f := range snap.state.Frameworks {
		fmt.Fprintf(&b, "  framework %s %s active=%v connected=%v recovered=%v\n", f.ID, f.Name, f.Active, f.Connected, f.Recovered)
		for _, t := range f.Tasks {
			fmt.Fprintf(&b, "    %s %s %s agent %s healthy=%v\n", t.Name, t.ID, t.State, t.SlaveID, lastHealth(t))
		}
		for _, t := range f.UnreachableTasks {
			fmt.Fprintf(&b, "    %s %s %s (unreachable) agent %s\n", t.Name, t.ID, t.State, t.SlaveID)
		}
	}
	for _, a := range snap.state.Slaves {
		for role, rs := range a.ReservedResourcesFull {
			for _, r := range rs {
				fmt.Fprintf(&b, "  agent %s reserved for %s: %s (cluster uid %s)\n", a.Hostname, role, describeResource(r), reservationUID(r))
			}
		}
	}
	for _, a := range snap.state.RecoveredSlaves {
		fmt.Fprintf(&b, "  agent %s recovered, not reregistered\n", a.Hostname)
	}
	return b.String()
}
