package mesostest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

func readLink(t *testing.T, path string) string {
	t.Helper()
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatalf("%s is not a symlink: %v", path, err)
	}
	return target
}

// default_executor.cpp, volume/sandbox_path.cpp, paths.cpp: the tasks of
// a group are nested containers of the default executor's container, with
// their own sandboxes and the tasks/<id> links; a task's persistent volume
// is linked into the executor's sandbox and reaches the task through a
// SANDBOX_PATH symlink; secrets reach the task's environment, never a
// command line; a killed task brings the group down; the executor's
// resources are freed with the last task.
func TestTaskGroupsRunAsNestedContainersOfTheDefaultExecutor(t *testing.T) {
	opts := testOptions()
	opts.SandboxRoot = t.TempDir()
	s := newTestServer(t, opts, processAgent("127.0.0.1"))
	c := newRawClient(t, s.URL(), mediaJSON)
	info := multiRoleInfo("pods", "k3s")
	info.Capabilities = append(info.Capabilities, mesos.FrameworkInfo_Capability{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE})
	c.subscribe(info)
	o := c.nextOffer(2 * time.Second)
	agent := o.AgentID.Value
	volume := persistentVolume("k3s", "pv-0", "data", 64)
	writer := withEnvironment(commandTask("writer", agent,
		`echo group > data/file && echo "$MESOS_SANDBOX" > sandbox.txt && exec sleep 30`, 0.1, 32),
		secretVariable("TOKEN", valueSecret(testSecret)))
	writer.Resources = []mesos.Resource{reservedFor("k3s", scalarResource("cpus", 0.1)), reservedFor("k3s", scalarResource("mem", 32)), volume}
	sidecar := commandTask("sidecar", agent, "exec sleep 30", 0.1, 32)
	exec := mesos.ExecutorInfo{
		Type:        mesos.ExecutorInfo_DEFAULT,
		ExecutorID:  mesos.ExecutorID{Value: "pod-0"},
		FrameworkID: &mesos.FrameworkID{Value: c.frameworkID},
		Resources:   []mesos.Resource{scalarResource("cpus", 0.1), scalarResource("mem", 32), scalarResource("disk", 32)},
	}
	c.mustCall(&scheduler.Call{Type: scheduler.Call_ACCEPT, Accept: &scheduler.Call_Accept{
		OfferIDs: []mesos.OfferID{o.ID},
		Operations: []mesos.Offer_Operation{
			{Type: mesos.Offer_Operation_RESERVE, Reserve: &mesos.Offer_Operation_Reserve{Resources: []mesos.Resource{
				reservedFor("k3s", scalarResource("cpus", 0.1)), reservedFor("k3s", scalarResource("mem", 32)),
				reservedFor("k3s", scalarResource("disk", 64))}}},
			{Type: mesos.Offer_Operation_CREATE, Create: &mesos.Offer_Operation_Create{Volumes: []mesos.Resource{volume}}},
			{Type: mesos.Offer_Operation_LAUNCH_GROUP, LaunchGroup: &mesos.Offer_Operation_LaunchGroup{
				Executor: exec, TaskGroup: mesos.TaskGroupInfo{Tasks: []mesos.TaskInfo{writer, sidecar}}}},
		},
		Filters: &mesos.Filters{RefuseSeconds: proto.Float64(0)},
	}})
	for _, id := range []string{"writer", "sidecar"} {
		st := c.nextUpdate(id, mesos.TASK_STARTING, 5*time.Second)
		if st.GetSource() != mesos.SOURCE_EXECUTOR || st.GetExecutorID().Value != "pod-0" {
			t.Fatalf("%s STARTING %+v", id, st)
		}
		c.ack(st)
		c.ack(c.nextUpdate(id, mesos.TASK_RUNNING, 5*time.Second))
	}

	execPrefix := filepath.Join(opts.SandboxRoot, "slaves", agent, "frameworks", c.frameworkID, "executors", "pod-0", "runs") + "/"
	taskSandbox := stateTask(s, "writer").Sandbox
	rest := strings.Split(strings.TrimPrefix(taskSandbox, execPrefix), "/")
	if !strings.HasPrefix(taskSandbox, execPrefix) || len(rest) != 3 || rest[1] != "containers" {
		t.Fatalf("task sandbox %q, want %s<executor container>/containers/<nested container>", taskSandbox, execPrefix)
	}
	execSandbox := execPrefix + rest[0]
	if got := readLink(t, filepath.Join(execSandbox, "tasks", "writer")); got != taskSandbox {
		t.Fatalf("tasks/writer -> %q, want %q", got, taskSandbox)
	}
	volumeDir := filepath.Join(opts.SandboxRoot, "volumes", "roles", "k3s", "pv-0")
	if got := readLink(t, filepath.Join(execSandbox, "data")); got != volumeDir {
		t.Fatalf("executor sandbox data -> %q, want the volume %q", got, volumeDir)
	}
	if got := readLink(t, filepath.Join(taskSandbox, "data")); got != filepath.Join(execSandbox, "data") {
		t.Fatalf("task sandbox data -> %q, want the executor's", got)
	}
	eventually(t, 2*time.Second, "the task wrote through the volume", func() bool {
		b, err := os.ReadFile(filepath.Join(volumeDir, "file"))
		return err == nil && string(b) == "group\n"
	})
	if b, _ := os.ReadFile(filepath.Join(taskSandbox, "sandbox.txt")); strings.TrimSpace(string(b)) != taskSandbox {
		t.Fatalf("MESOS_SANDBOX %q, want the task's own sandbox", b)
	}

	// The secret is in the task's environment, on no command line.
	procs := containerProcesses(t, taskSandbox)
	if len(procs) == 0 || !bytes.Contains(procs[0].environ, []byte("TOKEN="+testSecret+"\x00")) {
		t.Fatalf("task process without the secret: %+v", procs)
	}
	for _, st := range readProcStats() {
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.pid), "cmdline"))
		if bytes.Contains(cmd, []byte(testSecret)) {
			t.Fatalf("the secret is on the command line of %d: %q", st.pid, cmd)
		}
	}
	env, err := s.TaskEnvironment("writer")
	if err != nil {
		t.Fatal(err)
	}
	if env["TOKEN"] != testSecret || env["MESOS_SANDBOX"] != taskSandbox || env["MESOS_CONTAINER_IP"] != "127.0.0.1" ||
		env["MESOS_ALLOCATION_ROLE"] != "k3s" || env["MESOS_FRAMEWORK_ID"] != "" {
		t.Fatalf("nested environment %v", env)
	}

	// Killing one task makes the default executor kill the rest.
	c.mustCall(killWith("writer", nil))
	c.ack(c.nextUpdate("writer", mesos.TASK_KILLING, 2*time.Second))
	killed := c.nextUpdate("writer", mesos.TASK_KILLED, 5*time.Second)
	if killed.GetMessage() != "Command terminated with signal Terminated" {
		t.Fatalf("writer killed: %q", killed.GetMessage())
	}
	c.ack(killed)
	c.ack(c.nextUpdate("sidecar", mesos.TASK_KILLING, 2*time.Second))
	c.ack(c.nextUpdate("sidecar", mesos.TASK_KILLED, 5*time.Second))
	if _, err := os.Lstat(filepath.Join(execSandbox, "data")); !os.IsNotExist(err) {
		t.Fatalf("the ended task's volume is still linked in the executor sandbox: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(volumeDir, "file")); err != nil || string(b) != "group\n" {
		t.Fatalf("volume data %q %v", b, err)
	}
	eventually(t, 2*time.Second, "executor resources freed", func() bool {
		return s.State().Slaves[0].UsedResources.CPUs == 0
	})
}
