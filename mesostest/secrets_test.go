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

const testSecret = "s3cr3t-token-0815"

func secretVariable(name string, sec mesos.Secret) mesos.Environment_Variable {
	t := mesos.Environment_Variable_SECRET
	return mesos.Environment_Variable{Name: name, Type: &t, Secret: &sec}
}

func valueSecret(data string) mesos.Secret {
	return mesos.Secret{Type: mesos.Secret_VALUE, Value: &mesos.Secret_Value{Data: []byte(data)}}
}

func withEnvironment(ti mesos.TaskInfo, vars ...mesos.Environment_Variable) mesos.TaskInfo {
	ti.Command.Environment = &mesos.Environment{Variables: vars}
	return ti
}

// processInfo is one process of the machine, as /proc shows it.
type processInfo struct {
	pid, ppid int
	cmdline   []string
	environ   []byte
}

// containerProcesses lists the processes whose environment names sandbox
// as MESOS_SANDBOX.
func containerProcesses(t *testing.T, sandbox string) []processInfo {
	t.Helper()
	marker := []byte("MESOS_SANDBOX=" + sandbox + "\x00")
	var out []processInfo
	for _, st := range readProcStats() {
		dir := filepath.Join("/proc", strconv.Itoa(st.pid))
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		out = append(out, processInfo{pid: st.pid, ppid: st.ppid, environ: env,
			cmdline: strings.Split(strings.TrimSuffix(string(cmd), "\x00"), "\x00")})
	}
	return out
}

func cmdlineHas(procs []processInfo, s string) bool {
	for _, p := range procs {
		for _, arg := range p.cmdline {
			if strings.Contains(arg, s) {
				return true
			}
		}
	}
	return false
}

// A command task runs under a command executor started as the
// containerizer starts it (containerizer.cpp "--task_environment=",
// environment_secret.cpp): the resolved secret is on the executor's
// command line, the task's command is the executor's child and gets the
// secret in its environment. The environment is Mesos' own
// (executorEnvironment in slave.cpp), not the agent's.
func TestCommandTaskSecretsAreOnTheExecutorCommandLine(t *testing.T) {
	agent := processAgent("127.0.0.1")
	agent.ExecutorEnvironment = map[string]string{"FROM_AGENT_FLAG": "yes"}
	s := newTestServer(t, testOptions(), agent)
	c := newRawClient(t, s.URL(), mediaJSON)
	c.subscribe(frameworkInfo("secrets", partitionAwareCaps...))
	o := c.nextOffer(2 * time.Second)
	ti := withEnvironment(commandTask("holder", o.AgentID.Value, "sleep 30", 0.1, 32),
		mesos.Environment_Variable{Name: "PLAIN", Value: proto.String("plain")},
		secretVariable("TOKEN", valueSecret(testSecret)))
	c.mustCall(launchCall(o.ID, ti))
	c.ack(c.nextUpdate("holder", mesos.TASK_STARTING, 2*time.Second))
	c.ack(c.nextUpdate("holder", mesos.TASK_RUNNING, 5*time.Second))
	sandbox := stateTask(s, "holder").Sandbox

	var procs []processInfo
	eventually(t, 2*time.Second, "executor and task processes", func() bool {
		procs = containerProcesses(t, sandbox)
		return len(procs) >= 2
	})
	var executor, command *processInfo
	for i := range procs {
		if procs[i].cmdline[0] == "mesos-executor" {
			executor = &procs[i]
		}
	}
	if executor == nil {
		t.Fatalf("no mesos-executor among %+v", procs)
	}
	want := []string{"mesos-executor", "--launcher_dir=/usr/libexec/mesos",
		`--task_environment={"variables":[{"name":"TOKEN","type":"VALUE","value":"` + testSecret + `"}]}`}
	if strings.Join(executor.cmdline, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("executor command line %q\nwant %q", executor.cmdline, want)
	}
	for i := range procs {
		if procs[i].ppid == executor.pid {
			command = &procs[i]
		}
	}
	if command == nil || !bytes.Contains(command.environ, []byte("\x00TOKEN="+testSecret+"\x00")) {
		t.Fatalf("task command (child of the executor) without the secret: %+v", command)
	}
	if !cmdlineHas(procs, testSecret) {
		t.Fatal("the secret is not visible in any command line")
	}

	env, err := s.TaskEnvironment("holder")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"TOKEN": testSecret, "PLAIN": "plain", "MESOS_SANDBOX": sandbox,
		"MESOS_DIRECTORY": sandbox, "MESOS_EXECUTOR_ID": "holder", "MESOS_ALLOCATION_ROLE": "*",
		"FROM_AGENT_FLAG": "yes", "PATH": hostDefaultPath, "LIBPROCESS_PORT": "0"} {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	if _, inherited := env["HOME"]; inherited && os.Getenv("HOME") != "" {
		t.Error("the task inherited the agent's HOME")
	}
}

// Simulated tasks: the Docker containerizer resolves no secret (docker.cpp
// copies variable.value(), empty for a SECRET), the Mesos containerizer
// with an image does; secret references fail with the default resolver
// (secret/resolver.cpp); a command task without a command value makes the
// command executor abort.
func TestSimulatedTaskEnvironmentsAndSecretFailures(t *testing.T) {
	s := newTestServer(t, testOptions(), smallAgent("127.0.0.1"), processAgent("127.0.0.2"))
	c := newRawClient(t, s.URL(), mediaProtobuf)
	c.subscribe(frameworkInfo("environments", partitionAwareCaps...))
	offers := map[string]mesos.Offer{}
	for len(offers) < 2 {
		ev := c.next(2*time.Second, func(e *scheduler.Event) bool { return e.Type == scheduler.Event_OFFERS })
		for _, o := range ev.Offers.Offers {
			offers[o.GetHostname()] = o
		}
	}
	sim, proc := offers["127.0.0.1"], offers["127.0.0.2"]
	secret := secretVariable("TOKEN", valueSecret(testSecret))
	docker := withEnvironment(dockerTask("docker", sim.AgentID.Value), secret)
	ucr := withEnvironment(commandTask("ucr", sim.AgentID.Value, "k3s server", 0.1, 32), secret)
	mesosType := mesos.ContainerInfo_MESOS
	ucr.Container = &mesos.ContainerInfo{Type: &mesosType, Mesos: &mesos.ContainerInfo_MesosInfo{
		Image: &mesos.Image{Type: mesos.Image_DOCKER.Enum(), Docker: &mesos.Image_Docker{Name: "rancher/k3s"}}}}
	reference := mesos.Secret{Type: mesos.Secret_REFERENCE, Reference: &mesos.Secret_Reference{Name: "/k3s/token"}}
	simRef := withEnvironment(commandTask("sim-ref", sim.AgentID.Value, "true", 0.1, 32), secretVariable("TOKEN", reference))
	noValue := commandTask("no-value", sim.AgentID.Value, "", 0.1, 32)
	noValue.Command = &mesos.CommandInfo{Shell: proto.Bool(false)}
	c.mustCall(launchCall(sim.ID, docker, ucr, simRef, noValue))
	procRef := withEnvironment(commandTask("proc-ref", proc.AgentID.Value, "true", 0.1, 32), secretVariable("TOKEN", reference))
	procNoValue := commandTask("proc-no-value", proc.AgentID.Value, "", 0.1, 32)
	procNoValue.Command = &mesos.CommandInfo{Shell: proto.Bool(false)}
	c.mustCall(launchCall(proc.ID, procRef, procNoValue))

	for _, id := range []string{"docker", "ucr"} {
		c.ack(c.nextUpdate(id, mesos.TASK_STARTING, 2*time.Second))
		c.ack(c.nextUpdate(id, mesos.TASK_RUNNING, 2*time.Second))
	}
	env, err := s.TaskEnvironment("docker")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := env["TOKEN"]; !ok || v != "" || env["MESOS_SANDBOX"] != "/mnt/mesos/sandbox" ||
		!strings.HasPrefix(env["MESOS_CONTAINER_NAME"], "mesos-") {
		t.Fatalf("docker environment %v", env)
	}
	env, err = s.TaskEnvironment("ucr")
	if err != nil {
		t.Fatal(err)
	}
	if env["TOKEN"] != testSecret || env["MESOS_SANDBOX"] != "/mnt/mesos/sandbox" {
		t.Fatalf("UCR environment %v", env)
	}

	for _, id := range []string{"sim-ref", "proc-ref"} {
		st := c.nextUpdate(id, mesos.TASK_FAILED, 5*time.Second)
		if st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
			st.GetMessage() != "Failed to launch container: Default secret resolver cannot resolve references" {
			t.Errorf("%s: %s %q", id, st.GetReason(), st.GetMessage())
		}
	}
	for _, id := range []string{"no-value", "proc-no-value"} {
		c.ack(c.nextUpdate(id, mesos.TASK_STARTING, 5*time.Second))
		st := c.nextUpdate(id, mesos.TASK_FAILED, 5*time.Second)
		if st.GetReason() != mesos.REASON_EXECUTOR_TERMINATED || st.GetSource() != mesos.SOURCE_AGENT || st.GetMessage() != "Executor terminated" {
			t.Errorf("%s: %s %s %q", id, st.GetReason(), st.GetSource(), st.GetMessage())
		}
	}
	if _, err := s.TaskEnvironment("no-such-task"); err == nil {
		t.Fatal("environment of an unknown task")
	}
}
