package soak

import (
	"fmt"
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
)

// faultKinds are the steps the soak draws from, with their weights.
var faultKinds = []struct {
	name   string
	weight int
}{
	{"create", 2},
	{"delete", 2},
	{"scale", 3},
	{"kill-task", 3},
	{"drop-stream", 2},
	{"master-unavailable", 1}, // SetUnavailable: 503 "No leader elected", streams closed
	{"reject-calls", 1},       // RejectCalls(503 or 500): calls fail, streams stay
	{"master-failover", 1},    // FailoverTo another master: a recovered master, streams closed
	{"lose-agent", 2},         // LoseAgent, then RestoreAgent after 1-10 s
	{"kill-operator", 2},      // SIGKILL mid-deploy, started again after 0.2-3 s
}

// draw picks the next step's kind and eight uniform numbers in [0,1). It always draws the
// same amount from the RNG, whatever the world looks like, so that a seed replays the same
// sequence of decisions (which task or framework they hit depends on the world).
func (s *soak) draw() (string, [8]float64) {
	total := 0
	for _, k := range faultKinds {
		total += k.weight
	}
	n := s.rng.Intn(total)
	kind := faultKinds[len(faultKinds)-1].name
	for _, k := range faultKinds {
		if n < k.weight {
			kind = k.name
			break
		}
		n -= k.weight
	}
	var x [8]float64
	for i := range x {
		x[i] = s.rng.Float64()
	}
	return kind, x
}

func pick(x float64, n int) int {
	i := int(x * float64(n))
	if i >= n {
		i = n - 1
	}
	return i
}

func secs(base, spread, x float64) time.Duration {
	return time.Duration((base + spread*x) * float64(time.Second))
}

// overlapKinds are what may happen in the middle of a timed fault (x[6] < 0.5 says
// whether, x[7] which): a delete while an agent is lost, a task failing while no master
// leads, the operator killed while calls are rejected.
var overlapKinds = []string{"create", "delete", "scale", "kill-task", "kill-operator"}

// fit turns a kind that does not fit the world (no cluster to delete, no room for
// another) into one that does.
func (s *soak) fit(kind string) string {
	live := s.liveClusters()
	switch {
	case kind == "create" && len(live) >= maxClusters:
		return "scale"
	case (kind == "delete" || kind == "scale") && len(live) == 0:
		return "create"
	}
	return kind
}

// during runs a timed fault for d; half-way through, when x[6] says so, another action.
func (s *soak) during(d time.Duration, x [8]float64) string {
	if x[6] >= 0.5 {
		time.Sleep(d)
		return ""
	}
	time.Sleep(d / 2)
	kind := s.fit(overlapKinds[pick(x[7], len(overlapKinds))])
	s.faults[kind]++
	s.faults["(overlapping)"]++
	// Its own numbers: x[2..4] are unused by the timed faults; kill-operator gets short
	// delays (x[3], x[4] scaled down) so the step stays bounded.
	y := [8]float64{x[2], x[3], x[4], x[3] / 3, x[4] / 3}
	what := s.action(kind, y)
	time.Sleep(d - d/2)
	return "; meanwhile " + what
}

// apply injects one step and says what it did.
func (s *soak) apply(kind string, x [8]float64) string {
	kind = s.fit(kind)
	s.lastKind = kind
	s.faults[kind]++
	return s.action(kind, x)
}

func (s *soak) action(kind string, x [8]float64) string {
	live := s.liveClusters()
	switch kind {
	case "create":
		r := s.createCluster(pick(x[0], maxAgents+1))
		return "created " + r
	case "delete":
		r := live[pick(x[0], len(live))]
		s.deleteCluster(r)
		return "deleted " + r.name
	case "scale":
		r := live[pick(x[0], len(live))]
		return s.scaleCluster(r, x[1])
	case "kill-task":
		return s.killTask(x[0], x[1])
	case "drop-stream":
		st := s.mesos.State()
		var ids []string
		for _, f := range st.Frameworks {
			if f.Connected {
				ids = append(ids, f.ID+" "+f.Name)
			}
		}
		if len(ids) == 0 {
			return "no subscribed framework"
		}
		sort.Strings(ids)
		id := ids[pick(x[0], len(ids))]
		var fid string
		fmt.Sscan(id, &fid)
		if err := s.mesos.DropStream(fid); err != nil {
			return "drop-stream: " + err.Error()
		}
		return "dropped the stream of " + id
	case "master-unavailable":
		d := secs(1, 7, x[0])
		s.mesos.SetUnavailable(true)
		also := s.during(d, x)
		s.mesos.SetUnavailable(false)
		return fmt.Sprintf("no leader (503) for %s%s", d.Round(100*time.Millisecond), also)
	case "reject-calls":
		status := 503
		if x[1] >= 0.5 {
			status = 500
		}
		d := secs(1, 7, x[0])
		s.mesos.RejectCalls(status)
		also := s.during(d, x)
		s.mesos.RejectCalls(0)
		return fmt.Sprintf("calls answered %d for %s%s", status, d.Round(100*time.Millisecond), also)
	case "master-failover":
		urls, leader := s.mesos.MasterURLs(), s.mesos.LeaderURL()
		cur := 0
		for i, u := range urls {
			if u == leader {
				cur = i
			}
		}
		next := urls[(cur+1+pick(x[0], len(urls)-1))%len(urls)]
		if err := s.mesos.FailoverTo(next); err != nil {
			s.t.Fatal(err)
		}
		return fmt.Sprintf("failover %s -> %s", leader, next)
	case "lose-agent":
		host := s.hosts[pick(x[0], len(s.hosts))]
		d := secs(1, 9, x[1])
		if err := s.mesos.LoseAgent(host); err != nil {
			s.t.Fatal(err)
		}
		also := s.during(d, x)
		if err := s.mesos.RestoreAgent(host); err != nil {
			s.t.Fatal(err)
		}
		return fmt.Sprintf("agent %s lost for %s%s", host, d.Round(100*time.Millisecond), also)
	case "kill-operator":
		what := "operator"
		if x[0] < 0.6 {
			// Mid-deploy: something to launch first.
			if len(live) < maxClusters {
				what = "operator after creating " + s.createCluster(pick(x[1], maxAgents+1))
			} else {
				r := live[pick(x[1], len(live))]
				what = "operator after " + s.scaleCluster(r, x[2])
			}
		}
		before := secs(0, 3, x[3])
		time.Sleep(before)
		if err := s.op.exited(); err != nil {
			s.fatalf(s.snapshot(), "%v", err)
		}
		s.op.kill()
		down := secs(0.2, 2.8, x[4])
		time.Sleep(down)
		if err := s.op.start(); err != nil {
			s.t.Fatal(err)
		}
		return fmt.Sprintf("SIGKILLed the %s %s later, restarted after %s", what, before.Round(100*time.Millisecond), down.Round(100*time.Millisecond))
	}
	s.t.Fatalf("unknown fault kind %q", kind)
	return ""
}

// liveClusters are the soak's clusters that are not being deleted.
func (s *soak) liveClusters() []*clusterRec {
	var out []*clusterRec
	for _, r := range s.clusters {
		if r.deletedAt.IsZero() {
			out = append(out, r)
		}
	}
	return out
}

// createCluster applies a small cluster as `kubectl apply` would (unset fields take the
// CRD's defaults): one SQLite server, 0-3 agents, half a CPU each, a quick relaunch
// back-off so that killed tasks come back within a step.
func (s *soak) createCluster(agents int) string {
	s.nextName++
	name := fmt.Sprintf("c%d", s.nextName)
	res := map[string]any{"cpus": "500m", "memory": "512Mi"}
	spec := map[string]any{
		"servers": map[string]any{"resources": map[string]any{"cpus": "500m", "memory": "512Mi", "disk": "1Gi"}},
		"agents":  map[string]any{"replicas": int64(agents), "resources": res},
		"remediation": map[string]any{
			"relaunchBackoff": "1s", "maxRelaunchBackoff": "4s", "failureThreshold": int64(50),
		},
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("K3sCluster")
	u.SetNamespace(namespace)
	u.SetName(name)
	if err := s.env.Client.Create(s.ctx, u); err != nil {
		s.t.Fatalf("creating %s: %v", name, err)
	}
	s.clusters = append(s.clusters, &clusterRec{name: name, uid: string(u.GetUID()), created: time.Now()})
	return fmt.Sprintf("%s (%d agents)", name, agents)
}

func (s *soak) deleteCluster(r *clusterRec) {
	c := &v1alpha1.K3sCluster{}
	c.Namespace, c.Name = namespace, r.name
	if err := s.env.Client.Delete(s.ctx, c); err != nil {
		s.t.Fatalf("deleting %s: %v", r.name, err)
	}
	r.deletedAt = time.Now()
}

// scaleCluster sets spec.agents.replicas to another value in 0..3, as kubectl scale does.
func (s *soak) scaleCluster(r *clusterRec, x float64) string {
	c := &v1alpha1.K3sCluster{}
	if err := s.env.Client.Get(s.ctx, client.ObjectKey{Namespace: namespace, Name: r.name}, c); err != nil {
		s.t.Fatalf("reading %s: %v", r.name, err)
	}
	cur := int(c.Spec.Agents.Replicas)
	n := pick(x, maxAgents+1)
	if n == cur {
		n = (n + 1) % (maxAgents + 1)
	}
	patch := fmt.Sprintf(`{"spec":{"agents":{"replicas":%d}}}`, n)
	if err := s.env.Client.Patch(s.ctx, c, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		s.t.Fatalf("scaling %s: %v", r.name, err)
	}
	return fmt.Sprintf("scaled %s %d -> %d agents", r.name, cur, n)
}

// killTask fails one running task of a live cluster, as its executor or agent would.
func (s *soak) killTask(x0, x1 float64) string {
	live := map[string]bool{}
	for _, r := range s.liveClusters() {
		live[r.uid] = true
	}
	type cand struct{ id, desc string }
	var cands []cand
	for _, f := range s.mesos.State().Frameworks {
		if !live[labelOf(f.Labels, labelClusterUID)] {
			continue
		}
		for _, t := range f.Tasks {
			if t.State == "TASK_RUNNING" {
				cands = append(cands, cand{t.ID, f.Name + " " + t.Name})
			}
		}
	}
	if len(cands) == 0 {
		return "no running task"
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
	c := cands[pick(x0, len(cands))]
	state, reason := mesos.TASK_FAILED, mesos.REASON_COMMAND_EXECUTOR_FAILED
	if x1 >= 0.6 {
		state, reason = mesos.TASK_KILLED, mesos.REASON_EXECUTOR_TERMINATED
	}
	if err := s.mesos.FailTask(c.id, state, reason, "soak: injected "+state.String()); err != nil {
		return "kill-task: " + err.Error()
	}
	return fmt.Sprintf("%s of %s", state, c.desc)
}
