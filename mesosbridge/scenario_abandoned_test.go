package mesosbridge

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mesosk3s/mesosk3s/mesostest"
)

// Found by the fault soak (hack/soak, docs/soak.md): an abandoned task (killed while its
// agent was unreachable, so that its name could be relaunched) must be killed when its
// agent comes back, even when its replacement has ended by then; and while its agent
// stays unreachable, the master's answer to each KILL (TASK_UNREACHABLE, by
// reconciliation) must not make the bridge send the KILL again at once.

// liveNamed counts the master's non-terminal tasks of a name.
func liveNamed(s *mesostest.Server, name string) (ids []string) {
	for _, f := range s.State().Frameworks {
		for _, t := range f.Tasks {
			if t.Name == name && t.State != "TASK_KILLED" && t.State != "TASK_FAILED" && t.State != "TASK_FINISHED" {
				ids = append(ids, t.ID+"="+t.State)
			}
		}
	}
	return ids
}

// observe waits, without an Ensure (so the bridge relaunches nothing meanwhile), until
// cond holds for what the bridge reports.
func observe(t *testing.T, b *testBridge, key ClusterKey, what string, cond func(Observed) bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		if o, ok := b.Observe(key); ok && cond(o) {
			return
		}
		if time.Now().After(deadline) {
			o, _ := b.Observe(key)
			t.Fatalf("timed out waiting for %s; observed: %s", what, describe(o))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAbandonedTaskReturningAfterItsReplacementEndedIsKilled: the old agent-0 comes back
// while its replacement has just failed; the next relaunch must not leave two agent-0
// running (the old one used to supersede the failed replacement unkilled, and, being
// abandoned, did not stop the relaunch).
func TestAbandonedTaskReturningAfterItsReplacementEndedIsKilled(t *testing.T) {
	s := newEmulator(t, mesostest.Options{})
	// The default reconciliation interval (a minute here, ten in the operator): a periodic
	// implicit reconciliation would report the old task again and hide the bug.
	b := newTestBridge(t)
	c := runningCluster(t, s, b, "abandoned")
	key := c.cfg.Key()
	lost := c.last.Tasks["agent-0"]
	if err := s.LoseAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	c.until("unreachable", func(o Observed) bool { return o.Tasks["agent-0"].State == TaskUnreachable })
	if err := b.Kill(context.Background(), key, "agent-0"); err != nil {
		t.Fatal(err)
	}
	replaced := c.until("replaced on another agent", func(o Observed) bool {
		t := o.Tasks["agent-0"]
		return t.TaskID != lost.TaskID && t.State == TaskRunning
	}).Tasks["agent-0"]

	if err := s.FailTask(replaced.TaskID, mesos.TASK_FAILED, mesos.REASON_COMMAND_EXECUTOR_FAILED, "replacement failed"); err != nil {
		t.Fatal(err)
	}
	observe(t, b, key, "the replacement failed", func(o Observed) bool {
		return o.Tasks["agent-0"].TaskID == replaced.TaskID && o.Tasks["agent-0"].State.Terminal()
	})
	if err := s.RestoreAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	observe(t, b, key, "the old task back from its agent", func(o Observed) bool {
		return o.Tasks["agent-0"].TaskID == lost.TaskID && o.Tasks["agent-0"].State != TaskUnreachable
	})

	// The controller relaunches the failed name; afterwards one agent-0 runs, for good.
	deadline := time.Now().Add(waitLong)
	stable := 0
	for stable < 20 {
		c.reconcile()
		live := liveNamed(s, "agent-0")
		if len(live) == 1 && !strings.HasPrefix(live[0], lost.TaskID) {
			stable++
		} else {
			stable = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent-0 live in the master after the partition healed: %v (the old task %s should be killed)", live, lost.TaskID)
		}
		time.Sleep(testAllocation)
	}
}

// TestKillOfAnUnreachableDuplicateIsNotResentInALoop: after a resubscription resends
// the KILL of an abandoned task whose replacement runs, the master answers it with
// TASK_UNREACHABLE; that answer must not queue the KILL again (it used to, as fast as
// the round trip, for as long as the partition lasted).
func TestKillOfAnUnreachableDuplicateIsNotResentInALoop(t *testing.T) {
	var kills atomic.Int64
	var lostID atomic.Value
	lostID.Store("")
	logger := funcr.New(func(prefix, args string) {
		if id := lostID.Load().(string); id != "" && strings.Contains(args, "kill of unknown task") && strings.Contains(args, id) {
			kills.Add(1)
		}
	}, funcr.Options{})
	s := newEmulator(t, mesostest.Options{Logger: logger})
	b := newTestBridge(t, func(o *Options) { o.ReconcileInterval = 10 * testAllocation })
	c := runningCluster(t, s, b, "killloop")
	key := c.cfg.Key()
	lost := c.last.Tasks["agent-0"]
	lostID.Store(lost.TaskID)
	if err := s.LoseAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	c.until("unreachable", func(o Observed) bool { return o.Tasks["agent-0"].State == TaskUnreachable })
	if err := b.Kill(context.Background(), key, "agent-0"); err != nil {
		t.Fatal(err)
	}
	c.until("replaced on another agent", func(o Observed) bool {
		t := o.Tasks["agent-0"]
		return t.TaskID != lost.TaskID && t.State == TaskRunning
	})
	// A dropped stream: the resubscription sends the unconfirmed KILL again.
	before := kills.Load()
	if err := s.DropStream(c.last.FrameworkID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	c.reconcile()
	if n := kills.Load() - before; n > 5 {
		t.Fatalf("%d KILLs of the unreachable task %s within a second of resubscribing (a KILL answered by reconciliation was sent again at once)", n, lost.TaskID)
	}
	if err := s.RestoreAgent(lost.Hostname); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		c.reconcile()
		live := liveNamed(s, "agent-0")
		if len(live) == 1 && !strings.HasPrefix(live[0], lost.TaskID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent-0 live after the partition healed: %v", live)
		}
		time.Sleep(testAllocation)
	}
}
