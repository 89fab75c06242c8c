package mesostest

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func killWith(taskID string, grace *time.Duration) *scheduler.Call {
	k := &scheduler.Call_Kill{TaskID: mesos.TaskID{Value: taskID}}
	if grace != nil {
		k.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(*grace)}}
	}
	return &scheduler.Call{Type: scheduler.Call_KILL, Kill: k}
}

func withKillPolicy(ti mesos.TaskInfo, grace time.Duration) mesos.TaskInfo {
	ti.KillPolicy = &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(grace)}}
	return ti
}

// killAndWait kills a running task and returns its terminal update and how
// long it took.
func killAndWait(t *testing.T, c *rawClient, taskID string, grace *time.Duration) (mesos.TaskStatus, time.Duration) {
	t.Helper()
	start := time.Now()
	c.mustCall(killWith(taskID, grace))
	st := c.next(10*time.Second, func(e *scheduler.Event) bool {
		if e.Type != scheduler.Event_UPDATE || e.Update.Status.TaskID.Value != taskID {
			return false
		}
		c.ack(e.Update.Status)
		return isTerminal(e.Update.Status.GetState())
	}).Update.Status
	return st, time.Since(start)
}

// The command executor (src/launcher/executor.cpp), the Docker executor
// (src/docker/executor.cpp) and the default executor
// (src/launcher/default_executor.cpp): SIGTERM, then SIGKILL after the KILL
// call's grace, else the task's kill policy, else the executor's default.
// A task ignoring SIGTERM dies only at the end of the grace period.
func TestKillGracePeriodsOfSimulatedTasks(t *testing.T) {
	opts := testOptions()
	opts.KillGracePeriod = 600 * time.Millisecond
	opts.ExecutorShutdownGracePeriod = 900 * time.Millisecond
	opts.ServeAdmin = true
	s := newTestServer(t, opts, AgentConfig{Hostname: "127.0.0.1", CPUs: 8, MemMiB: 8192, DiskMiB: 8192})
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("kill", partitionAwareCaps...))
	o := c.nextOffer(2 * time.Second)
	agent := o.AgentID.Value
	short := 300 * time.Millisecond
	tasks := []mesos.TaskInfo{
		commandTask("polite", agent, "sleep 60", 0.1, 32),
		commandTask("deaf-default", agent, "sleep 60", 0.1, 32),
		withKillPolicy(commandTask("deaf-policy", agent, "sleep 60", 0.1, 32), 400*time.Millisecond),
		withKillPolicy(commandTask("deaf-override", agent, "sleep 60", 0.1, 32), 5*time.Second),
		dockerTask("docker-polite", agent),
		dockerTask("docker-deaf", agent),
	}
	c.mustCall(launchCall(o.ID, tasks...))
	for _, ti := range tasks {
		c.ack(c.nextUpdate(ti.TaskID.Value, mesos.TASK_STARTING, 2*time.Second))
		c.ack(c.nextUpdate(ti.TaskID.Value, mesos.TASK_RUNNING, 2*time.Second))
	}
	for _, id := range []string{"deaf-default", "deaf-policy", "deaf-override"} {
		if err := s.IgnoreSIGTERM(id, true); err != nil {
			t.Fatal(err)
		}
	}
	// The same fault over /admin.
	resp, err := http.PostForm(s.URL()+"/admin/ignore-sigterm", url.Values{"task": {"docker-deaf"}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/admin/ignore-sigterm: %v %v", resp, err)
	}
	resp.Body.Close()

	cases := []struct {
		task     string
		override *time.Duration
		msg      string
		min, max time.Duration
	}{
		{"polite", nil, "Command terminated with signal Terminated", 0, 300 * time.Millisecond},
		{"deaf-default", nil, "Command terminated with signal Killed", 600 * time.Millisecond, 1500 * time.Millisecond},
		{"deaf-policy", nil, "Command terminated with signal Killed", 400 * time.Millisecond, 1300 * time.Millisecond},
		{"deaf-override", &short, "Command terminated with signal Killed", 300 * time.Millisecond, 1200 * time.Millisecond},
		{"docker-polite", nil, "Container exited with status 143", 0, 300 * time.Millisecond},
		{"docker-deaf", nil, "Container exited with status 137", 900 * time.Millisecond, 1800 * time.Millisecond},
	}
	for _, tc := range cases {
		st, took := killAndWait(t, c, tc.task, tc.override)
		if st.GetState() != mesos.TASK_KILLED || st.GetMessage() != tc.msg || took < tc.min || took > tc.max {
			t.Errorf("%s: %s %q after %v, want TASK_KILLED %q after %v..%v", tc.task, st.GetState(), st.GetMessage(), took, tc.msg, tc.min, tc.max)
		}
	}
}

// A process task that ignores SIGTERM (the fault withholds the signal from
// its processes) is killed by SIGKILL at the end of its grace period.
func TestIgnoreSIGTERMInProcessMode(t *testing.T) {
	s := newTestServer(t, testOptions(), processAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaProtobuf)
	c.subscribe(frameworkInfo("deaf", partitionAwareCaps...))
	o := c.nextOffer(2 * time.Second)
	ti := withKillPolicy(commandTask("sleeper", o.AgentID.Value, "sleep 60", 0.1, 32), 500*time.Millisecond)
	c.mustCall(launchCall(o.ID, ti))
	c.ack(c.nextUpdate("sleeper", mesos.TASK_STARTING, 2*time.Second))
	c.ack(c.nextUpdate("sleeper", mesos.TASK_RUNNING, 2*time.Second))
	if err := s.IgnoreSIGTERM("sleeper", true); err != nil {
		t.Fatal(err)
	}
	st, took := killAndWait(t, c, "sleeper", nil)
	if st.GetState() != mesos.TASK_KILLED || st.GetMessage() != "Command terminated with signal Killed" || took < 500*time.Millisecond {
		t.Fatalf("%s %q after %v", st.GetState(), st.GetMessage(), took)
	}
	if err := s.IgnoreSIGTERM("no-such-task", true); err == nil {
		t.Fatal("IgnoreSIGTERM of an unknown task")
	}
}
